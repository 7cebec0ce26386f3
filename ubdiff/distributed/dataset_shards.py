"""make_dataset on a Dask cluster: velocity files and forward modelling as shards.

Shards, keyed by index (never by worker):

1. velocity file i: ``generate_velocity(family, count_i, seed=[seed, i])`` -> model{i}.npy
   (exactly what the single-process run writes);
2. forward-model part (i, s): maps [s, s + chunk) of file i -> a part file in
   ``DIR/.ubdiff-shards/``; the same chunks as a single-process run, and the
   simulation of a map does not depend on which others share its call, so the
   parts hold the same bits whatever the number of workers;
3. seismic file i: its parts concatenated into data{i}.npy (streamed through a
   memmap), its [min, max] reported to the client, which records it in
   ubdiff_dataset.json as the single-process run does.

Every file is written atomically (ubdiff.data.npyio), so a worker killed
mid-shard leaves only a stale temporary: the scheduler reruns that shard, and
a rerun of the whole command keeps every finished velocity file, part and
seismic file and computes only what is missing. The workers must see DIR at
the same path as the client (a shared file system; trivially so for a
LocalCluster). ``.ubdiff-shards`` is removed when the dataset is complete.
"""
from __future__ import annotations

import os

import numpy as np

from ..data import openfwi
from ..data.errors import DataError
from ..data.files import clean_stale, is_temp_name
from ..data.npyio import npy_writer, open_npy, write_npy
from .dask_jobs import run_shards

SHARD_DIR = ".ubdiff-shards"


def part_name(i: int, start: int, stop: int) -> str:
    """The part file of maps [start, stop) of seismic file i."""
    return f"{openfwi.seismic_name(i)[:-4]}.{start:06d}-{stop:06d}.npy"


def _count_ok(path, count):
    """Shape[1:] of a complete float32 4-D file of ``count`` samples, else None."""
    if not os.path.exists(path):
        return None
    try:
        a = open_npy(path, ndim=4)
    except DataError:
        return None
    return list(a.shape[1:]) if a.shape[0] == count else None


# ---- the shards (run on workers) --------------------------------------------------------
def velocity_file(out_dir: str, family: str, count: int, seed: int, i: int) -> str:
    from ..data.families import generate_velocity
    path = os.path.join(out_dir, openfwi.velocity_name(i))
    write_npy(path, generate_velocity(family, count, seed=[seed, i]))
    return path


def forward_part(vpath: str, part: str, start: int, stop: int, simulate, kwargs: dict) -> list:
    """Simulate maps [start, stop) of a velocity file into ``part``; returns their sample shape."""
    from ..data.builder import _run
    vel = np.array(open_npy(vpath, openfwi.VELOCITY_SHAPE, "velocity")[start:stop])
    seis = _run(simulate, vel, kwargs, part)
    if len(seis) != stop - start:
        raise DataError(f"{part}: simulator returned shape {seis.shape} for {stop - start} maps")
    write_npy(part, seis)
    return list(seis.shape[1:])


def assemble_file(spath: str, parts: list, count: int) -> list:
    """Concatenate the parts into ``spath`` (atomic); returns its [min, max]; removes the parts."""
    arrays = [open_npy(p, ndim=4, what="forward-model part") for p in parts]
    shape = arrays[0].shape[1:]
    if sum(len(a) for a in arrays) != count or any(a.shape[1:] != shape for a in arrays):
        raise DataError(f"{spath}: its parts hold {[a.shape for a in arrays]}, expected {count} samples in all")
    lo, hi = np.inf, -np.inf
    with npy_writer(spath, (count,) + tuple(shape)) as out:
        s = 0
        for a in arrays:
            block = np.asarray(a)
            out[s:s + len(block)] = block
            lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
            s += len(block)
    del arrays
    for p in parts:
        os.unlink(p)
    return [lo, hi]


# ---- the client side -----------------------------------------------------------------------
def write_sharded(client, out_dir: str, meta: dict, plan: list, seed: int, simulate, chunk: int,
                  sim_kwargs: dict, threads=None, progress: bool = True) -> None:
    """Write every missing file of ``plan`` (make_dataset's) through ``client``; fills
    meta["file_stats"] (written to ubdiff_dataset.json after every seismic file)."""
    from ..data.builder import _valid
    from ..data.npyio import min_max

    family = meta["family"]
    shards = os.path.join(out_dir, SHARD_DIR)
    os.makedirs(shards, exist_ok=True)
    clean_stale(shards, is_temp_name)   # temporaries of killed workers
    run = dict(client=client, threads=threads, progress=progress)

    velocity = [(out_dir, family, count, seed, i) for i, (count, _) in enumerate(plan, 1)
                if not _valid(os.path.join(out_dir, openfwi.velocity_name(i)), (count,) + openfwi.VELOCITY_SHAPE)]
    run_shards(fn=velocity_file, shards=velocity, name="velocity-files", resumable=True,
               desc=f"{family}: velocity files", ids=[f"model{v[-1]}" for v in velocity], **run)

    parts, files = [], []   # files: (i, seismic path, [part paths], count)
    for i, (_, npair) in enumerate(plan, 1):
        if npair == 0:
            continue
        name = openfwi.seismic_name(i)
        spath = os.path.join(out_dir, name)
        if _valid(spath, [npair] + list(meta["seismic_shape"])):
            if name not in meta["file_stats"]:
                meta["file_stats"][name] = list(min_max(open_npy(spath)))
                openfwi.write_meta(out_dir, meta)
            continue
        vpath = os.path.join(out_dir, openfwi.velocity_name(i))
        mine = []
        for s in range(0, npair, chunk):
            e = min(s + chunk, npair)
            p = os.path.join(shards, part_name(i, s, e))
            mine.append(p)
            if _count_ok(p, e - s) is None:
                parts.append((vpath, p, s, e, simulate, sim_kwargs))
        files.append((i, spath, mine, npair))
    run_shards(fn=forward_part, shards=parts, name="forward-model", resumable=True, desc=f"{family}: simulating",
               ids=[os.path.basename(p[1])[:-4] for p in parts], **run)

    for i, spath, mine, _ in files:   # one sample shape for all, as the single-process run checks
        for p in mine:
            shape = open_npy(p, ndim=4, what="forward-model part").shape[1:]
            if list(shape) != list(meta["seismic_shape"]):
                if meta["file_stats"]:
                    raise DataError(f"{p}: simulator returned samples of shape {tuple(shape)}, but earlier "
                                    f"files hold {tuple(meta['seismic_shape'])}")
                meta["seismic_shape"] = list(shape)

    def done(k, lohi):
        meta["file_stats"][os.path.basename(files[k][1])] = lohi
        openfwi.write_meta(out_dir, meta)
    run_shards(fn=assemble_file, shards=[(spath, mine, count) for _, spath, mine, count in files],
               name="seismic-files", resumable=True, desc=f"{family}: seismic files", on_result=done,
               ids=[os.path.basename(f[1])[:-4] for f in files], **run)
    if all(n in meta["file_stats"] for n in meta["seismic_files"]):
        import shutil
        shutil.rmtree(shards, ignore_errors=True)
