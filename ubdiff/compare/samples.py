"""Generated samples of a method: an OpenFWI-layout folder (model{i}.npy in m/s,
data{i}.npy physical amplitudes when the method produces seismic, 500 per file)
with ``ubdiff_dataset.json``, written atomically (UBDiff.generate for the UB-Diff
methods, :func:`write_velocity` for velocity-only ones), so an interrupted run
leaves either no samples or all of them."""
from __future__ import annotations

import os

import numpy as np

from ..data import openfwi


#: The metadata of a seismic-only sample set (data{i}.npy, no maps): OpenFWI's layout (and
#: ubdiff_dataset.json) always has velocity files, so such a set records itself here instead.
SEISMIC_META = "ubdiff_seismic_samples.json"


def _read_seismic_meta(folder: str) -> dict | None:
    from ..data.files import read_json
    fn = os.path.join(folder, SEISMIC_META)
    return read_json(fn, "seismic samples metadata", ValueError) if os.path.lexists(fn) else None


def complete(folder: str, n: int, seed: int) -> bool:
    """Whether ``folder`` holds a finished generation of ``n`` samples drawn with ``seed``."""
    try:
        meta = _read_seismic_meta(folder) or openfwi.read_meta(folder)
    except Exception:   # damaged or incomplete: generate again
        return False
    return bool(meta and meta.get("complete") and meta.get("maps") == n and meta.get("seed") == seed)


def write_velocity(out_dir: str, n: int, draw, meta: dict, file_size: int = openfwi.FILE_SIZE) -> dict:
    """Write ``n`` velocity-only samples: ``draw(first, count)`` returns samples
    [first, first + count) as (count, 1, 70, 70) m/s. ``meta``: extra metadata
    (seed, method, ...); label_min/label_max are required."""
    return write_samples(out_dir, n, lambda first, count: (draw(first, count), None), meta, seismic=False,
                         file_size=file_size)


def write_samples(out_dir: str, n: int, draw, meta: dict, velocity: bool = True, seismic: bool = True,
                  seismic_shape=(5, 1000, 70), file_size: int = openfwi.FILE_SIZE) -> dict:
    """Write ``n`` samples of the modalities a method produces: ``draw(first, count)``
    returns (velocity (count, 1, 70, 70) m/s or None, seismic (count, *seismic_shape)
    physical or None) of samples [first, first + count). A seismic-only set has data
    files, no model files and :data:`SEISMIC_META` (read back by :func:`open_samples`). ``meta``: extra
    metadata (seed, method, ...; label_min/label_max, and data_min/data_max with seismic)."""
    from ..data import write_npy
    from ..data.files import atomic_folder
    from ..pipeline import GENERATED_FORMAT

    if not (velocity or seismic):
        raise ValueError("write_samples: nothing to write (velocity and seismic both off)")
    counts = [min(file_size, n - s) for s in range(0, n, file_size)]
    k = len(counts)
    info = dict(format=GENERATED_FORMAT, family="generated", maps=int(n), paired=int(n) if velocity and seismic else 0,
                file_size=int(file_size), seismic_shape=list(seismic_shape), data_min=None, data_max=None,
                velocity_files=[openfwi.velocity_name(i) for i in range(1, k + 1)] if velocity else [],
                seismic_files=[openfwi.seismic_name(i) for i in range(1, k + 1)] if seismic else [],
                file_counts=counts, paired_counts=counts if velocity and seismic else [], complete=False)
    info.update(meta)

    def owned(name):
        return (name in (openfwi.META_NAME, SEISMIC_META) or openfwi.is_velocity_name(name)
                or openfwi.is_seismic_name(name))

    def check(a, shape, what, first, cnt):
        if a is None or a.shape != shape or not np.isfinite(a).all():
            got = None if a is None else (a.shape, bool(np.isfinite(a).all()))
            raise ValueError(f"{out_dir}: draw({first}, {cnt}) gave {what} {got}, expected {shape} finite")

    with atomic_folder(out_dir, owned) as tmp:
        first = 0
        for i, cnt in enumerate(counts, 1):
            v, s = draw(first, cnt)
            if velocity:
                v = np.asarray(v, np.float32) if v is not None else None
                check(v, (cnt, 1, 70, 70), "velocity", first, cnt)
                write_npy(os.path.join(tmp, openfwi.velocity_name(i)), v)
            if seismic:
                s = np.asarray(s, np.float32) if s is not None else None
                check(s, (cnt, *seismic_shape), "seismic", first, cnt)
                write_npy(os.path.join(tmp, openfwi.seismic_name(i)), s)
            first += cnt
        info["complete"] = True
        if velocity:
            openfwi.write_meta(tmp, info)
        else:
            import json
            with open(os.path.join(tmp, SEISMIC_META), "w") as f:
                json.dump(info, f, indent=1)
    return info


class SeismicSamples:
    """The records of a seismic-only sample folder (data{i}.npy, physical units), read a batch
    at a time like a dataset's ``seismic(idx)``; OpenFWI datasets always hold velocity maps."""

    def __init__(self, folder: str, meta: dict):
        self.files = [np.load(os.path.join(folder, f), mmap_mode="r") for f in meta["seismic_files"]]
        self.offsets = np.cumsum([0] + [len(a) for a in self.files])
        if int(self.offsets[-1]) != int(meta["maps"]):
            raise ValueError(f"{folder}: {int(self.offsets[-1])} records on disk, the metadata says {meta['maps']}")

    def __len__(self):
        return int(self.offsets[-1])

    def seismic(self, idx) -> np.ndarray:
        idx = np.asarray(idx)
        f = np.searchsorted(self.offsets, idx, side="right") - 1
        return np.stack([np.asarray(self.files[a][i - self.offsets[a]], np.float32) for a, i in zip(f, idx)])


def open_samples(folder: str) -> dict:
    """{'meta', 'velocity': dataset of the maps (m/s) or None (seismic only), 'pairs': paired dataset,
    SeismicSamples (seismic only) or None (velocity only)}."""
    from ..data import OpenFWIDataset
    meta = _read_seismic_meta(folder)
    if meta is not None:
        return {"meta": meta, "velocity": None, "pairs": SeismicSamples(folder, meta)}
    meta = openfwi.read_meta(folder)
    vel = OpenFWIDataset.from_folder(folder, velocity_only=True)
    pairs = OpenFWIDataset.from_folder(folder) if meta["seismic_files"] else None
    return {"meta": meta, "velocity": vel, "pairs": pairs}
