"""OpenFWI normalisation to [-1, 1] and its exact inverses (DESIGN.md "Data conventions").

velocity: y = 2 (v - vmin) / (vmax - vmin) - 1 with the dataset's label_min/max.
seismic:  y = 2 (L(x) - L(dmin)) / (L(dmax) - L(dmin)) - 1, L(x) = sign(x) log1p(|x|),
          with the dataset's data_min/data_max.
Computed in float64, returned as float32.
"""
from __future__ import annotations

import numpy as np


def log_transform(x):
    """sign(x) log1p(|x|): odd, monotone, compresses the large direct-wave amplitudes."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.log1p(np.abs(x))


def exp_transform(y):
    """Inverse of :func:`log_transform`: sign(y) expm1(|y|)."""
    y = np.asarray(y, dtype=np.float64)
    return np.sign(y) * np.expm1(np.abs(y))


def _minmax(x, lo, hi):
    return (2.0 * (x - lo) / (hi - lo) - 1.0).astype(np.float32)


def _unminmax(y, lo, hi):
    return (np.asarray(y, dtype=np.float64) + 1.0) * 0.5 * (hi - lo) + lo


def normalize_velocity(v, label_min=1500.0, label_max=4500.0):
    return _minmax(np.asarray(v, dtype=np.float64), float(label_min), float(label_max))


def denormalize_velocity(y, label_min=1500.0, label_max=4500.0):
    return _unminmax(y, float(label_min), float(label_max)).astype(np.float32)


def normalize_seismic(x, data_min, data_max):
    lo, hi = log_transform(float(data_min)), log_transform(float(data_max))
    return _minmax(log_transform(x), lo, hi)


def denormalize_seismic(y, data_min, data_max):
    lo, hi = log_transform(float(data_min)), log_transform(float(data_max))
    return exp_transform(_unminmax(y, lo, hi)).astype(np.float32)


class Normalizer:
    """The four transforms bound to one dataset's constants (a DatasetInfo or a dict)."""

    def __init__(self, info):
        get = info.get if isinstance(info, dict) else (lambda k: getattr(info, k))
        self.data_min, self.data_max = float(get("data_min")), float(get("data_max"))
        self.label_min, self.label_max = float(get("label_min")), float(get("label_max"))

    def velocity(self, v):
        return normalize_velocity(v, self.label_min, self.label_max)

    def velocity_inverse(self, y):
        return denormalize_velocity(y, self.label_min, self.label_max)

    def seismic(self, x):
        return normalize_seismic(x, self.data_min, self.data_max)

    def seismic_inverse(self, y):
        return denormalize_seismic(y, self.data_min, self.data_max)
