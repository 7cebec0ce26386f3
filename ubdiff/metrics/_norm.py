"""OpenFWI normalisation to [-1, 1] (local copy for the metrics).

TODO: reuse ubdiff.data.openfwi once that module is merged; the transforms and
constants here follow the same convention (DESIGN.md, "Data conventions"):
- velocity: 2 (v - vmin) / (vmax - vmin) - 1 with label_min/label_max 1500/4500;
- seismic: sign(x) log1p|x|, then min-max to [-1, 1] with the log-transformed
  data_min / data_max of the dataset (specs/velocity_families.md).
"""
from __future__ import annotations

import numpy as np

VELOCITY_RANGE = (1500.0, 4500.0)

# Seismic data_min / data_max per OpenFWI family (specs/velocity_families.md).
SEISMIC_RANGES = {
    "FlatVel-A": (-26.95, 52.77), "FlatVel-B": (-27.17, 56.05),
    "CurveVel-A": (-27.11, 55.10), "CurveVel-B": (-29.04, 57.03),
    "FlatFault-A": (-26.10, 50.86), "FlatFault-B": (-24.86, 50.28),
    "CurveFault-A": (-26.48, 52.32), "CurveFault-B": (-24.93, 50.98),
    "Style-A": (-24.96, 48.93), "Style-B": (-23.76, 46.01),
}


def log_transform(x):
    """sign(x) log1p(|x|) (OpenFWI's LogTransform with k=1, c=0)."""
    x = np.asarray(x)
    return np.sign(x) * np.log1p(np.abs(x))


def inverse_log_transform(y):
    y = np.asarray(y)
    return np.sign(y) * np.expm1(np.abs(y))


def normalize_velocity(v, vmin: float = VELOCITY_RANGE[0], vmax: float = VELOCITY_RANGE[1]):
    v = np.asarray(v, dtype=np.float32)
    return (2.0 * (v - vmin) / (vmax - vmin) - 1.0).astype(np.float32)


def denormalize_velocity(y, vmin: float = VELOCITY_RANGE[0], vmax: float = VELOCITY_RANGE[1]):
    y = np.asarray(y, dtype=np.float32)
    return ((y + 1.0) * 0.5 * (vmax - vmin) + vmin).astype(np.float32)


def seismic_range(dataset: str | None = None, data_range=None) -> tuple[float, float]:
    """(data_min, data_max) from an explicit range or an OpenFWI family name."""
    if data_range is not None:
        lo, hi = float(data_range[0]), float(data_range[1])
        if not hi > lo:
            raise ValueError(f"seismic data_range must have max > min, got {data_range}")
        return lo, hi
    if dataset is not None:
        try:
            return SEISMIC_RANGES[dataset]
        except KeyError:
            raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(SEISMIC_RANGES)}") from None
    raise ValueError("seismic in physical units needs its data_min/data_max: pass "
                     "data_range=(min, max) or dataset=<OpenFWI family name>")


def normalize_seismic(x, data_min: float, data_max: float):
    lo, hi = float(log_transform(data_min)), float(log_transform(data_max))
    return (2.0 * (log_transform(np.asarray(x, np.float32)) - lo) / (hi - lo) - 1.0).astype(np.float32)


def denormalize_seismic(y, data_min: float, data_max: float):
    lo, hi = float(log_transform(data_min)), float(log_transform(data_max))
    y = np.asarray(y, np.float32)
    return inverse_log_transform((y + 1.0) * 0.5 * (hi - lo) + lo).astype(np.float32)
