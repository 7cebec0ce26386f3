"""Write a simulated OpenFWI-layout dataset: M velocity maps, N of them with seismic.

Layout of ``out_dir`` (OpenFWI's Vel/Style naming for every family):

    model1.npy ... modelK.npy   velocity (<=500, 1, 70, 70) float32 m/s, all M maps
    data1.npy  ... dataJ.npy    seismic  (<=500, 5, nt, 70) float32 of the first N maps
                                (data{i}[j] is the gather of model{i}[j])
    ubdiff_dataset.json         parameters, file lists, per-file seismic min/max and the
                                dataset constants data_min/data_max, label_min/label_max
    preview.png                 a few maps and their middle shot gathers

Files hold 500 samples; the last velocity file holds M mod 500 when that is
not 0, and the last seismic file N mod 500 (it is then shorter than its
velocity partner: its samples pair with the first ones of that file).

Velocity file i (1-based) holds ``generate_velocity(family, count_i,
seed=[seed, i])``, so each file is reproducible on its own. Every file is
written atomically, which makes the run resumable: a rerun with the same
parameters keeps every complete file and writes only the missing ones; a rerun
with different parameters into the same folder is refused.

Interruptions: ``ubdiff_dataset.json`` says ``"complete": false`` from the
first write until the last, so readers refuse a half-made dataset (unless
asked for ``partial=True``: then only the files recorded as finished are
read); temporaries of a killed run are removed by the next run. A full disk
(or a file size limit) is an OSError raised before a seismic file is mapped
(its blocks are reserved first), with the temporary file removed.

With a Dask client (``make_dataset(..., client=c)``, CLI ``--workers N`` /
``--scheduler ADDRESS``) the same files are written by the cluster's workers:
one task per velocity file and per chunk of maps to simulate, resumable per
chunk (ubdiff/distributed/dataset_shards.py).
"""
from __future__ import annotations

import os

import numpy as np

from . import openfwi
from .errors import DataError
from .families import generate_velocity
from .files import clean_stale, is_temp_name
from .npyio import min_max, npy_writer, open_npy, write_npy

FORMAT = "ubdiff-openfwi-1"
_SAME = ("family", "maps", "paired", "seed", "freq", "nt", "dt", "file_size")


def _plan(maps, paired, file_size):
    """Per velocity file: (sample count, paired count)."""
    plan = []
    for start in range(0, maps, file_size):
        count = min(file_size, maps - start)
        plan.append((count, int(np.clip(paired - start, 0, count))))
    return plan


def _valid(path, shape):
    """True if ``path`` is a complete float32 file of exactly ``shape``."""
    if not os.path.exists(path):
        return False
    try:
        return open_npy(path, shape[1:]).shape == tuple(shape)
    except DataError:
        return False


def make_dataset(family, maps, paired, out_dir, seed=0, simulate=None, freq=15.0, nt=1000,
                 dt=1e-3, progress=True, file_size=openfwi.FILE_SIZE, chunk=50,
                 preview=True, simulate_kwargs=None, client=None, threads=None, device="auto"):
    """Generate ``maps`` velocity maps of ``family`` and simulate seismic for ``paired`` of them.

    ``simulate(velocity (k,1,70,70), freq=, nt=, dt=, **simulate_kwargs) -> (k,5,nt,70)``
    defaults to :func:`ubdiff.physics.forward_model` on ``device`` ("cpu",
    "cuda" or "auto": the GPU when one is usable; only the default simulator
    takes it); it is called on ``chunk`` maps at a time (bounded memory:
    seismic files are written through a memmap).
    ``client``: a ``distributed.Client``; then every velocity file and every chunk of
    maps to simulate is a task of its own on the Dask cluster (``threads`` ubdiff
    threads each; default: the worker machine's cores shared by its workers), with
    the same files as a single-process run, bit for bit (ubdiff/distributed/dataset_shards.py).
    Returns the dataset's metadata (also in ``ubdiff_dataset.json``).
    """
    key = openfwi.family_key(family)
    maps, paired, file_size = int(maps), int(paired), int(file_size)
    if maps < 1 or not 0 <= paired <= maps:
        raise ValueError("need maps >= 1 and 0 <= paired <= maps,"
                         f" got maps={maps}, paired={paired}")
    if file_size < 1 or chunk < 1 or nt < 1 or dt <= 0 or freq <= 0:
        raise ValueError("file_size, chunk, nt, dt and freq must be positive")
    if simulate is None and paired > 0:
        try:   # lazy: the C physics core is only needed to simulate
            from ubdiff.physics import forward_model as simulate
        except ImportError as e:
            raise ImportError("make_dataset needs ubdiff.physics.forward_model to simulate"
                              f" seismic data ({e}); pass simulate=... or paired=0") from e
    simulate_kwargs = dict(simulate_kwargs or {})
    if getattr(simulate, "__module__", None) == "ubdiff.physics":
        simulate_kwargs.setdefault("device", device)
    os.makedirs(out_dir, exist_ok=True)

    plan = _plan(maps, paired, file_size)
    meta = dict(format=FORMAT, family=key, maps=maps, paired=paired, seed=int(seed),
                freq=float(freq), nt=int(nt), dt=float(dt), file_size=file_size,
                label_min=1500.0, label_max=4500.0, data_min=None, data_max=None,
                seismic_shape=[5, int(nt), 70],
                velocity_files=[openfwi.velocity_name(i) for i in range(1, len(plan) + 1)],
                seismic_files=[openfwi.seismic_name(i) for i, (_, p) in enumerate(plan, 1) if p],
                file_counts=[c for c, _ in plan], paired_counts=[p for _, p in plan if p],
                generator="ubdiff.data.families.generate_velocity(family, file_counts[i-1],"
                          " seed=[seed, i]) for file i",
                simulator=getattr(simulate, "__module__", "") + "." +
                getattr(simulate, "__qualname__", type(simulate).__name__) if simulate else None,
                file_stats={}, complete=False)
    clean_stale(out_dir, is_temp_name)   # temporaries a killed run left
    old = openfwi.read_meta(out_dir, partial=True)
    if old is not None:
        diff = [k for k in _SAME if old.get(k) != meta[k]]
        if diff or old.get("format") != FORMAT:
            raise DataError(f"{os.path.join(out_dir, openfwi.META_NAME)}: folder holds a different"
                            f" dataset ({', '.join(diff) or 'format'} differ); use another folder")
        meta["seismic_shape"] = old.get("seismic_shape", meta["seismic_shape"])
        meta["file_stats"] = dict(old.get("file_stats", {}))
    openfwi.write_meta(out_dir, meta)

    sim_kwargs = dict(freq=freq, nt=nt, dt=dt, **simulate_kwargs)
    if client is not None:
        from ..distributed.dataset_shards import write_sharded
        write_sharded(client, out_dir, meta, plan, int(seed), simulate, chunk, sim_kwargs, threads, progress)
    else:
        _write_files(out_dir, meta, plan, key, int(seed), simulate, chunk, sim_kwargs, progress)

    stats = [meta["file_stats"][f] for f in meta["seismic_files"]]
    if stats:
        meta["data_min"] = float(min(s[0] for s in stats))
        meta["data_max"] = float(max(s[1] for s in stats))
    meta["complete"] = True
    openfwi.write_meta(out_dir, meta)
    if preview:
        _preview(out_dir, meta)
    return meta


def _write_files(out_dir, meta, plan, key, seed, simulate, chunk, kwargs, progress):
    """The single-process writer: every missing file of ``plan``, in order."""
    from tqdm.auto import tqdm
    bar = tqdm(total=meta["paired"], desc=f"{key}: simulating", unit="map", disable=not progress)
    try:
        for i, (count, npair) in enumerate(plan, 1):
            vpath = os.path.join(out_dir, openfwi.velocity_name(i))
            if _valid(vpath, (count,) + openfwi.VELOCITY_SHAPE):
                vel = None                                 # kept from an earlier run
            else:
                vel = generate_velocity(key, count, seed=[seed, i])
                write_npy(vpath, vel)
            if npair == 0:
                continue
            name = openfwi.seismic_name(i)
            spath = os.path.join(out_dir, name)
            if _valid(spath, [npair] + list(meta["seismic_shape"])):
                if name not in meta["file_stats"]:
                    meta["file_stats"][name] = list(min_max(open_npy(spath)))
                    openfwi.write_meta(out_dir, meta)
                bar.update(npair)
                continue
            if vel is None:
                vel = np.array(open_npy(vpath, openfwi.VELOCITY_SHAPE, "velocity")[:npair])
            meta["file_stats"][name] = _simulate_file(
                spath, vel[:npair], simulate, meta, chunk, bar, kwargs)
            openfwi.write_meta(out_dir, meta)
    finally:
        bar.close()


def _simulate_file(path, vel, simulate, meta, chunk, bar, kwargs):
    """Simulate ``vel`` chunk by chunk into ``path`` (atomic); return its [min, max]."""
    lo, hi = np.inf, -np.inf
    first = _run(simulate, vel[:chunk], kwargs, path)
    shape = list(first.shape[1:])
    if shape != list(meta["seismic_shape"]):
        if meta["file_stats"]:
            raise DataError(f"{path}: simulator returned samples of shape {tuple(shape)}, but"
                            f" earlier files hold {tuple(meta['seismic_shape'])}")
        meta["seismic_shape"] = shape
    with npy_writer(path, (len(vel),) + tuple(shape)) as out:
        for s in range(0, len(vel), chunk):
            seis = first if s == 0 else _run(simulate, vel[s:s + chunk], kwargs, path)
            if list(seis.shape) != [min(chunk, len(vel) - s)] + shape:
                raise DataError(f"{path}: simulator returned shape {seis.shape} for"
                                f" {min(chunk, len(vel) - s)} maps")
            out[s:s + len(seis)] = seis
            lo, hi = min(lo, float(seis.min())), max(hi, float(seis.max()))
            bar.update(len(seis))
    return [lo, hi]


def _run(simulate, vel, kwargs, path):
    seis = np.asarray(simulate(np.ascontiguousarray(vel, dtype=np.float32), **kwargs),
                      dtype=np.float32)
    if seis.ndim != 4:
        raise DataError(f"{path}: simulator returned shape {seis.shape},"
                        " expected (k, shots, nt, receivers)")
    if not np.isfinite(seis).all():
        raise DataError(f"{path}: simulator returned NaN/Inf (unstable time step dt?)")
    return seis


def _preview(out_dir, meta, k=4):
    from .preview import save_preview
    vel = np.array(open_npy(os.path.join(out_dir, meta["velocity_files"][0]))[:k])
    seis = None
    if meta["seismic_files"]:
        seis = np.array(open_npy(os.path.join(out_dir, meta["seismic_files"][0]))[:k])
    title = f"{meta['family']}: {meta['maps']} maps, {meta['paired']} with seismic"
    save_preview(os.path.join(out_dir, "preview.png"), vel, seis, title)
