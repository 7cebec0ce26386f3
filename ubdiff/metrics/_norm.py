"""Normalisation helpers of the metrics: ubdiff.data's transforms plus the
lookup of a seismic range from an explicit (min, max) or a family name."""
from __future__ import annotations

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
