"""NumPy-facing wrappers of the normalisation and shape ops (csrc/norm.h,
csrc/shape_ops.h): convert inputs, allocate outputs.

Like ubdiff.ops these are for tests, notebooks and prototyping; models call
the C core directly. Backward functions return fresh gradient arrays (the core
accumulates with ``+=``, so they start from zeros). Arrays are channel-first:
(B, C) or (B, C, L) or (B, C, H, W).
"""
from __future__ import annotations

import numpy as np

from ._native import lib
from .ops import f32

BN_MOMENTUM = 0.1   # torch.nn.BatchNorm defaults
BN_EPS = 1e-5
GN_EPS = 1e-5       # torch.nn.GroupNorm default
LN_EPS = 1e-6       # the seismic decoder's LayerNorm (paper configuration)


def _running(a, name):
    """Running statistics are updated in place, so they must already be float32 C-contiguous."""
    if a is None:
        return None
    if not (isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous):
        raise TypeError(f"{name}: must be a float32 C-contiguous numpy array (it is updated in place)")
    return a


# ---- BatchNorm -------------------------------------------------------------------
def batchnorm_train(x, gamma, beta, running_mean=None, running_var=None, momentum=BN_MOMENTUM, eps=BN_EPS):
    """Training-mode BatchNorm over channels (axis 1) -> (out, mean, rstd).

    running_mean / running_var (C,), if given, are updated in place with the
    unbiased batch variance, as torch.nn.BatchNorm1d/2d."""
    x, gamma, beta = f32(x, "x"), f32(gamma, "gamma"), f32(beta, "beta")
    running_mean = _running(running_mean, "running_mean")
    running_var = _running(running_var, "running_var")
    if x.ndim < 2:
        raise ValueError(f"batchnorm_train: x must be (B, C, ...), got shape {x.shape}")
    C = x.shape[1]
    out = np.empty_like(x)
    mean = np.empty(C, np.float32)
    rstd = np.empty(C, np.float32)
    lib.batchnorm_forward_train(out, mean, rstd, running_mean, running_var, x, gamma, beta, float(momentum),
                                float(eps))
    return out, mean, rstd


def batchnorm_eval(x, gamma, beta, running_mean, running_var, eps=BN_EPS):
    """Eval-mode BatchNorm with the running statistics."""
    x = f32(x, "x")
    out = np.empty_like(x)
    lib.batchnorm_forward_eval(out, x, f32(gamma, "gamma"), f32(beta, "beta"), f32(running_mean, "running_mean"),
                               f32(running_var, "running_var"), float(eps))
    return out


def batchnorm_backward(dout, x, gamma, mean, rstd):
    """Gradients (dx, dgamma, dbeta) of batchnorm_train (batch statistics)."""
    dout, x, gamma = f32(dout, "dout"), f32(x, "x"), f32(gamma, "gamma")
    dx, dg, db = np.zeros_like(x), np.zeros_like(gamma), np.zeros_like(gamma)
    lib.batchnorm_backward(dx, dg, db, dout, x, gamma, f32(mean, "mean"), f32(rstd, "rstd"))
    return dx, dg, db


def batchnorm_backward_eval(dout, x, gamma, running_mean, running_var, eps=BN_EPS):
    """Gradients (dx, dgamma, dbeta) of batchnorm_eval (statistics constant)."""
    dout, x, gamma = f32(dout, "dout"), f32(x, "x"), f32(gamma, "gamma")
    dx, dg, db = np.zeros_like(x), np.zeros_like(gamma), np.zeros_like(gamma)
    lib.batchnorm_backward_eval(dx, dg, db, dout, x, gamma, f32(running_mean, "running_mean"),
                                f32(running_var, "running_var"), float(eps))
    return dx, dg, db


# ---- GroupNorm ----------------------------------------------------------------------
def groupnorm_forward(x, gamma, beta, groups: int, eps=GN_EPS):
    """GroupNorm of x (B, C, ...) in `groups` groups -> (out, mean (B,G), rstd (B,G))."""
    x = f32(x, "x")
    if x.ndim < 2:
        raise ValueError(f"groupnorm_forward: x must be (B, C, ...), got shape {x.shape}")
    if int(groups) <= 0:
        raise ValueError(f"groupnorm_forward: groups must be positive, got {groups}")
    out = np.empty_like(x)
    mean = np.empty((x.shape[0], int(groups)), np.float32)
    rstd = np.empty_like(mean)
    lib.groupnorm_forward(out, mean, rstd, x, f32(gamma, "gamma"), f32(beta, "beta"), float(eps))
    return out, mean, rstd


def groupnorm_backward(dout, x, gamma, mean, rstd):
    """Gradients (dx, dgamma, dbeta) of groupnorm_forward."""
    dout, x, gamma = f32(dout, "dout"), f32(x, "x"), f32(gamma, "gamma")
    dx, dg, db = np.zeros_like(x), np.zeros_like(gamma), np.zeros_like(gamma)
    lib.groupnorm_backward(dx, dg, db, dout, x, gamma, f32(mean, "mean"), f32(rstd, "rstd"))
    return dx, dg, db


# ---- LayerNorm ----------------------------------------------------------------------
def layernorm_forward(x, gamma, beta, eps=LN_EPS):
    """LayerNorm over the last axis of x (..., C) -> (out, mean (N,), rstd (N,)), N = x.size // C."""
    x = f32(x, "x")
    if x.ndim < 1 or x.size == 0:
        raise ValueError(f"layernorm_forward: x must be a non-empty (..., C) array, got shape {x.shape}")
    N = x.size // x.shape[-1]
    out = np.empty_like(x)
    mean = np.empty(N, np.float32)
    rstd = np.empty(N, np.float32)
    lib.layernorm_forward(out, mean, rstd, x, f32(gamma, "gamma"), f32(beta, "beta"), float(eps))
    return out, mean, rstd


def layernorm_backward(dout, x, gamma, mean, rstd):
    """Gradients (dx, dgamma, dbeta) of layernorm_forward."""
    dout, x, gamma = f32(dout, "dout"), f32(x, "x"), f32(gamma, "gamma")
    dx, dg, db = np.zeros_like(x), np.zeros_like(gamma), np.zeros_like(gamma)
    lib.layernorm_backward(dx, dg, db, dout, x, gamma, f32(mean, "mean"), f32(rstd, "rstd"))
    return dx, dg, db


# ---- RMSNorm (1-D U-Net) ---------------------------------------------------------------
def rmsnorm_forward(x, g):
    """x (B, C, L) / max(||x||_channels, 1e-12) * g * sqrt(C) -> (out, rnorm (B, L))."""
    x = f32(x, "x")
    if x.ndim != 3:
        raise ValueError(f"rmsnorm_forward: x must be (B, C, L), got shape {x.shape}")
    out = np.empty_like(x)
    rnorm = np.empty((x.shape[0], x.shape[2]), np.float32)
    lib.rmsnorm_forward(out, rnorm, x, f32(g, "g").reshape(-1))
    return out, rnorm


def rmsnorm_backward(dout, x, g, rnorm):
    """Gradients (dx, dg) of rmsnorm_forward."""
    dout, x, g = f32(dout, "dout"), f32(x, "x"), f32(g, "g").reshape(-1)
    dx, dg = np.zeros_like(x), np.zeros_like(g)
    lib.rmsnorm_backward(dx, dg, dout, x, g, f32(rnorm, "rnorm"))
    return dx, dg


# ---- shape ops --------------------------------------------------------------------------
def upsample_nearest(x):
    """Nearest x2 upsampling of (B, C, L) or (B, C, H, W)."""
    x = f32(x, "x")
    if x.ndim == 3:
        out = np.empty(x.shape[:2] + (2 * x.shape[2],), np.float32)
        lib.upsample1d_forward(out, x)
    elif x.ndim == 4:
        out = np.empty(x.shape[:2] + (2 * x.shape[2], 2 * x.shape[3]), np.float32)
        lib.upsample2d_forward(out, x)
    else:
        raise ValueError(f"upsample_nearest: x must be (B, C, L) or (B, C, H, W), got shape {x.shape}")
    return out


def upsample_nearest_backward(dout):
    """Gradient of upsample_nearest: sums each block of copies."""
    dout = f32(dout, "dout")
    if dout.ndim not in (3, 4) or any(s % 2 for s in dout.shape[2:]):
        raise ValueError(f"upsample_nearest_backward: dout must be (B, C, 2L) or (B, C, 2H, 2W), got {dout.shape}")
    dx = np.zeros(dout.shape[:2] + tuple(s // 2 for s in dout.shape[2:]), np.float32)
    (lib.upsample1d_backward if dout.ndim == 3 else lib.upsample2d_backward)(dx, dout)
    return dx


def _crop_shape(shape, top, bottom, left, right):
    if len(shape) != 4:
        raise ValueError(f"crop2d: x must be (B, C, H, W), got shape {shape}")
    H, W = shape[2] - top - bottom, shape[3] - left - right
    if H <= 0 or W <= 0:
        raise ValueError(f"crop2d: cropping ({top}, {bottom}, {left}, {right}) is larger than the "
                         f"{shape[2]}x{shape[3]} map")
    return shape[:2] + (H, W)


def crop2d(x, top, bottom=None, left=None, right=None):
    """Crop (positive) or zero-pad (negative) the borders of (B, C, H, W).
    crop2d(x, 5) crops 5 from every side (OpenFWI's 80 -> 70)."""
    bottom = top if bottom is None else bottom
    left = top if left is None else left
    right = left if right is None else right
    x = f32(x, "x")
    out = np.empty(_crop_shape(x.shape, top, bottom, left, right), np.float32)
    lib.crop2d_forward(out, x, int(top), int(bottom), int(left), int(right))
    return out


def crop2d_backward(dout, in_shape, top, bottom=None, left=None, right=None):
    """Gradient of crop2d with respect to its input of shape in_shape."""
    bottom = top if bottom is None else bottom
    left = top if left is None else left
    right = left if right is None else right
    dout = f32(dout, "dout")
    _crop_shape(tuple(in_shape), top, bottom, left, right)
    dx = np.zeros(tuple(in_shape), np.float32)
    lib.crop2d_backward(dx, dout, int(top), int(bottom), int(left), int(right))
    return dx


def concat(a, b):
    """Channel (axis 1) concatenation."""
    a, b = f32(a, "a"), f32(b, "b")
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"concat: a and b must be (B, C, ...), got {a.shape} and {b.shape}")
    out = np.empty((a.shape[0], a.shape[1] + b.shape[1]) + a.shape[2:], np.float32)
    lib.concat_forward(out, a, b)
    return out


def concat_backward(dout, c1: int):
    """Split dout (B, C1+C2, ...) into (da, db) at channel c1."""
    dout = f32(dout, "dout")
    if dout.ndim < 2 or not 0 < c1 < dout.shape[1]:
        raise ValueError(f"concat_backward: split {c1} does not fit dout of shape {dout.shape}")
    da = np.zeros((dout.shape[0], c1) + dout.shape[2:], np.float32)
    db = np.zeros((dout.shape[0], dout.shape[1] - c1) + dout.shape[2:], np.float32)
    lib.concat_backward(da, db, dout, int(c1))
    return da, db


def time_embedding(t, dim: int):
    """Sinusoidal embedding (B, dim) of timesteps t (B,): [sin(t f), cos(t f)]."""
    t = f32(t, "t").reshape(-1)
    out = np.empty((t.size, int(dim)), np.float32)
    lib.time_embedding(out, t)
    return out


def scale_shift(x, ss):
    """x (B, C, L) * (1 + scale) + shift with ss (B, 2C) = [scale | shift]."""
    x = f32(x, "x")
    out = np.empty_like(x)
    lib.scale_shift_forward(out, x, f32(ss, "ss"))
    return out


def scale_shift_backward(dout, x, ss):
    """Gradients (dx, dss) of scale_shift."""
    dout, x, ss = f32(dout, "dout"), f32(x, "x"), f32(ss, "ss")
    dx, dss = np.zeros_like(x), np.zeros_like(ss)
    lib.scale_shift_backward(dx, dss, dout, x, ss)
    return dx, dss


def axpy(y, x, a: float) -> None:
    """y += a * x in place (y float32 C-contiguous)."""
    lib.axpy(y, f32(x, "x"), float(a))
