"""Normalisation helpers of the metrics: ubdiff.data's transforms, the
lookup of a seismic range from an explicit (min, max) or a family name, and
the finiteness check every metric applies to its inputs."""
from __future__ import annotations

import numpy as np

from ..data import openfwi
from ..data.normalize import (denormalize_seismic, denormalize_velocity, log_transform,  # noqa: F401
                              normalize_seismic, normalize_velocity)
from ..data.normalize import exp_transform as inverse_log_transform  # noqa: F401

VELOCITY_RANGE = (1500.0, 4500.0)


def seismic_range(dataset: str | None = None, data_range=None) -> tuple[float, float]:
    """(data_min, data_max) from an explicit range or an OpenFWI family name."""
    if data_range is not None:
        lo, hi = float(data_range[0]), float(data_range[1])
        if not hi > lo:
            raise ValueError(f"seismic data_range must have max > min, got {data_range}")
        return lo, hi
    if dataset is not None:
        inf = openfwi.info(dataset)
        return float(inf.data_min), float(inf.data_max)
    raise ValueError("seismic in physical units needs its data_min/data_max: pass "
                     "data_range=(min, max) or dataset=<OpenFWI family name>")


def check_finite(a, name: str, offset: int = 0) -> None:
    """Raise ValueError naming the argument ``name`` if ``a`` holds NaN or Inf.

    A metric of non-finite inputs is meaningless, and some paths would hide
    them (ReLU-based feature networks, clipping, nan-aware means) and return a
    finite number; ``offset`` is the index of ``a[0]`` in the caller's array.
    """
    a = np.asarray(a)
    if a.size and not np.isfinite(a.sum(dtype=np.float64)):   # finite sum <=> all finite (float32 in float64)
        flat = ~np.isfinite(a.reshape(a.shape[0], -1) if a.ndim > 1 else a.reshape(-1, 1)).all(axis=1)
        i = int(np.flatnonzero(flat)[0])
        where = f"sample {offset + i}" if a.ndim > 1 else f"element {offset + i}"
        raise ValueError(f"{name}: non-finite value (NaN/Inf) in {where}")
