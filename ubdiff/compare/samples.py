"""Generated samples of a method: an OpenFWI-layout folder (model{i}.npy in m/s,
data{i}.npy physical amplitudes when the method produces seismic, 500 per file)
with ``ubdiff_dataset.json``, written atomically (UBDiff.generate for the UB-Diff
methods, :func:`write_velocity` for velocity-only ones), so an interrupted run
leaves either no samples or all of them."""
from __future__ import annotations

import os

import numpy as np

from ..data import openfwi


def complete(folder: str, n: int, seed: int) -> bool:
    """Whether ``folder`` holds a finished generation of ``n`` samples drawn with ``seed``."""
    try:
        meta = openfwi.read_meta(folder)
    except Exception:   # damaged or incomplete: generate again
        return False
    return bool(meta and meta.get("complete") and meta.get("maps") == n and meta.get("seed") == seed)


def write_velocity(out_dir: str, n: int, draw, meta: dict, file_size: int = openfwi.FILE_SIZE) -> dict:
    """Write ``n`` velocity-only samples: ``draw(first, count)`` returns samples
    [first, first + count) as (count, 1, 70, 70) m/s. ``meta``: extra metadata
    (seed, method, ...); label_min/label_max are required."""
    from ..data import write_npy
    from ..data.files import atomic_folder
    from ..pipeline import GENERATED_FORMAT

    counts = [min(file_size, n - s) for s in range(0, n, file_size)]
    info = dict(format=GENERATED_FORMAT, family="generated", maps=int(n), paired=0, file_size=int(file_size),
                seismic_shape=[5, 1000, 70], data_min=None, data_max=None,
                velocity_files=[openfwi.velocity_name(i) for i in range(1, len(counts) + 1)],
                seismic_files=[], file_counts=counts, paired_counts=[], complete=False)
    info.update(meta)

    def owned(name):
        return name == openfwi.META_NAME or openfwi.is_velocity_name(name) or openfwi.is_seismic_name(name)

    with atomic_folder(out_dir, owned) as tmp:
        first = 0
        for i, cnt in enumerate(counts, 1):
            v = np.asarray(draw(first, cnt), np.float32)
            if v.shape != (cnt, 1, 70, 70) or not np.isfinite(v).all():
                raise ValueError(f"{out_dir}: draw({first}, {cnt}) returned shape {v.shape} "
                                 f"(finite: {bool(np.isfinite(v).all())}), expected ({cnt}, 1, 70, 70) finite")
            write_npy(os.path.join(tmp, openfwi.velocity_name(i)), v)
            first += cnt
        info["complete"] = True
        openfwi.write_meta(tmp, info)
    return info


def open_samples(folder: str) -> dict:
    """{'meta', 'velocity': dataset of the maps (m/s), 'pairs': paired dataset or None}."""
    from ..data import OpenFWIDataset
    meta = openfwi.read_meta(folder)
    vel = OpenFWIDataset.from_folder(folder, velocity_only=True)
    pairs = OpenFWIDataset.from_folder(folder) if meta["seismic_files"] else None
    return {"meta": meta, "velocity": vel, "pairs": pairs}
