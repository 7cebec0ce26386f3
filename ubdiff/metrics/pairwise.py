"""Pairwise metrics between predicted and true velocity maps (OpenFWI / Table 3).

MAE and MSE are computed on velocity normalised to [-1, 1]. SSIM follows the
OpenFWI evaluation, which calls pytorch_ssim.SSIM(window_size=11) on maps mapped
from [-1, 1] to [0, 1] (x / 2 + 0.5): 11x11 Gaussian window (sigma 1.5, weights
summing to 1), zero padding of 5 so the map keeps its size, C1 = 0.01^2,
C2 = 0.03^2 (data range 1), mean of the SSIM map. The window is separable, so
the five local moments are two 1-D correlations each (scipy.ndimage, zero
'constant' boundary), vectorised over the batch.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from . import _norm

WINDOW = 11
SIGMA = 1.5
C1 = 0.01 ** 2
C2 = 0.03 ** 2


def gaussian_window_1d(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    """pytorch_ssim's window: exp(-(x - size//2)^2 / (2 sigma^2)), normalised to sum 1."""
    x = np.arange(size) - size // 2
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def _as_maps(a, name, normalized, vmin, vmax) -> np.ndarray:
    """(..., H, W) float64 maps in [-1, 1]; a leading (N, 1, H, W) is kept as is."""
    a = np.asarray(a)
    if a.ndim < 2:
        raise ValueError(f"{name}: expected maps of shape (..., H, W), got {a.shape}")
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name}: must be a real numeric array, got dtype {a.dtype}")
    _norm.check_finite(a, name)
    if not normalized:
        a = _norm.normalize_velocity(a, vmin, vmax)
    return a.astype(np.float64)


def _pair(pred, true, normalized, vmin, vmax):
    p = _as_maps(pred, "pred", normalized, vmin, vmax)
    t = _as_maps(true, "true", normalized, vmin, vmax)
    if p.shape != t.shape:
        raise ValueError(f"pred and true shapes differ: {p.shape} vs {t.shape}")
    if p.size == 0:
        raise ValueError("pred and true are empty")
    return p, t


def _filter(x, w):
    # Separable 'same' correlation with zeros outside the map (= conv2d padding=5).
    y = ndimage.correlate1d(x, w, axis=-1, mode="constant", cval=0.0)
    return ndimage.correlate1d(y, w, axis=-2, mode="constant", cval=0.0)


def ssim_map(pred, true, normalized: bool = True, vmin: float = _norm.VELOCITY_RANGE[0],
             vmax: float = _norm.VELOCITY_RANGE[1]) -> np.ndarray:
    """Per-pixel SSIM, same shape as the inputs (maps taken from [-1, 1] to [0, 1])."""
    p, t = _pair(pred, true, normalized, vmin, vmax)
    x, y = p * 0.5 + 0.5, t * 0.5 + 0.5
    w = gaussian_window_1d()
    mx, my = _filter(x, w), _filter(y, w)
    sxx = _filter(x * x, w) - mx * mx
    syy = _filter(y * y, w) - my * my
    sxy = _filter(x * y, w) - mx * my
    return ((2 * mx * my + C1) * (2 * sxy + C2)) / ((mx * mx + my * my + C1) * (sxx + syy + C2))


def ssim(pred, true, normalized: bool = True, reduction: str = "mean",
         vmin: float = _norm.VELOCITY_RANGE[0], vmax: float = _norm.VELOCITY_RANGE[1]):
    """SSIM, OpenFWI convention. Inputs (N, 1, H, W), (N, H, W) or (H, W), in [-1, 1]
    (normalized=True) or m/s. reduction "mean": one float (mean over each map,
    then over the batch); "none": one value per leading index."""
    m = ssim_map(pred, true, normalized, vmin, vmax)
    return _reduce(m, reduction)


def _reduce(v, reduction):
    if reduction == "mean":
        return float(v.mean())
    if reduction == "none":
        return v.reshape(v.shape[0], -1).mean(axis=1) if v.ndim > 2 else np.asarray(v.mean())
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def mae(pred, true, normalized: bool = True, reduction: str = "mean",
        vmin: float = _norm.VELOCITY_RANGE[0], vmax: float = _norm.VELOCITY_RANGE[1]):
    """Mean absolute error on velocity normalised to [-1, 1]."""
    p, t = _pair(pred, true, normalized, vmin, vmax)
    return _reduce(np.abs(p - t), reduction)


def mse(pred, true, normalized: bool = True, reduction: str = "mean",
        vmin: float = _norm.VELOCITY_RANGE[0], vmax: float = _norm.VELOCITY_RANGE[1]):
    """Mean squared error on velocity normalised to [-1, 1]."""
    p, t = _pair(pred, true, normalized, vmin, vmax)
    return _reduce((p - t) ** 2, reduction)
