"""NumPy-facing wrappers of the core ops: allocate outputs, convert inputs.

The raw binding (`ubdiff._ubdiff`) borrows float32 C-contiguous arrays without
copying and rejects anything else. These wrappers convert explicitly (a copy
only when the input is not already float32 C-contiguous) and allocate the
outputs, so they are convenient for tests, notebooks and prototyping. Models
call the C core directly and do not go through here.

Backward functions return fresh gradient arrays (the core accumulates with
``+=``, so they start from zeros).
"""
from __future__ import annotations

import numpy as np

from ._native import lib

ACTIVATIONS = {"relu": 0, "leaky_relu": 1, "tanh": 2, "silu": 3, "gelu": 4}


def f32(x, name: str = "array") -> np.ndarray:
    """`x` as a float32 C-contiguous array (copied only if needed)."""
    a = np.asarray(x)
    if a.dtype == object:
        raise TypeError(f"{name}: object arrays are not accepted")
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name}: expected a numeric array, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float32)


def _act_kind(name: str) -> int:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}") from None


# ---- linear -------------------------------------------------------------
def linear_forward(x, weight, bias=None) -> np.ndarray:
    """y = x @ weight.T + bias; x (B, C), weight (OC, C), bias (OC,) -> (B, OC)."""
    x, weight = f32(x, "x"), f32(weight, "weight")
    bias = None if bias is None else f32(bias, "bias")
    if x.ndim != 2 or weight.ndim != 2:
        raise ValueError(f"linear_forward: x and weight must be 2-D, got {x.shape} and {weight.shape}")
    out = np.empty((x.shape[0], weight.shape[0]), np.float32)
    lib.linear_forward(out, x, weight, bias)
    return out


def linear_backward(dout, x, weight, bias: bool = True):
    """Gradients (dx, dweight, dbias or None) of linear_forward."""
    dout, x, weight = f32(dout, "dout"), f32(x, "x"), f32(weight, "weight")
    dx = np.zeros_like(x)
    dw = np.zeros_like(weight)
    db = np.zeros(weight.shape[0], np.float32) if bias else None
    lib.linear_backward(dx, dw, db, dout, x, weight)
    return dx, dw, db


# ---- activations ----------------------------------------------------------
def act_forward(x, kind: str, param: float = 0.0) -> np.ndarray:
    """Elementwise relu | leaky_relu (param = slope) | tanh | silu | gelu (erf)."""
    x = f32(x, "x")
    out = np.empty_like(x)
    lib.act_forward(out, x, _act_kind(kind), float(param))
    return out


def act_backward(dout, x, kind: str, param: float = 0.0) -> np.ndarray:
    """dx = dout * f'(x)."""
    dout, x = f32(dout, "dout"), f32(x, "x")
    dx = np.zeros_like(x)
    lib.act_backward(dx, dout, x, _act_kind(kind), float(param))
    return dx


def relu(x):
    return act_forward(x, "relu")


def leaky_relu(x, slope: float = 0.2):
    return act_forward(x, "leaky_relu", slope)


def tanh(x):
    return act_forward(x, "tanh")


def silu(x):
    return act_forward(x, "silu")


def gelu(x):
    return act_forward(x, "gelu")


# ---- losses -----------------------------------------------------------------
def l1_loss(pred, target) -> float:
    return lib.l1_forward(f32(pred, "pred"), f32(target, "target"))


def mse_loss(pred, target) -> float:
    return lib.mse_forward(f32(pred, "pred"), f32(target, "target"))


def l1_loss_backward(pred, target, scale: float = 1.0) -> np.ndarray:
    pred, target = f32(pred, "pred"), f32(target, "target")
    d = np.zeros_like(pred)
    lib.l1_backward(d, pred, target, float(scale))
    return d


def mse_loss_backward(pred, target, scale: float = 1.0) -> np.ndarray:
    pred, target = f32(pred, "pred"), f32(target, "target")
    d = np.zeros_like(pred)
    lib.mse_backward(d, pred, target, float(scale))
    return d


# ---- optimiser (in place on float32 arrays) ---------------------------------
def adam_update(param, m, v, grad, t: int, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                weight_decay=0.0, decoupled=True) -> None:
    """One Adam (decoupled=False, L2 in the gradient) or AdamW step, in place."""
    lib.adam_update(param, m, v, f32(grad, "grad"), int(t), float(lr), float(betas[0]),
                    float(betas[1]), float(eps), float(weight_decay), bool(decoupled))


def ema_update(ema, param, decay: float) -> None:
    lib.ema_update(ema, f32(param, "param"), float(decay))


def grad_norm(grad) -> float:
    return lib.grad_norm(f32(grad, "grad"))


def clip_grad_norm(grad, max_norm: float) -> float:
    """Scales `grad` (float32, in place) to norm <= max_norm; returns the norm before."""
    return lib.clip_grad_norm(grad, float(max_norm))


# ---- random -------------------------------------------------------------------
def rand_uniform(shape, seed: int, stream: int = 0, offset: int = 0) -> np.ndarray:
    """Philox-4x32-10 uniforms in (0, 1); element k is a function of (seed, stream, offset + k)."""
    out = np.empty(shape, np.float32)
    lib.rand_uniform(out, int(seed), int(stream), int(offset))
    return out


def rand_normal(shape, seed: int, stream: int = 0, offset: int = 0) -> np.ndarray:
    """Philox-4x32-10 standard normals (Box-Muller)."""
    out = np.empty(shape, np.float32)
    lib.rand_normal(out, int(seed), int(stream), int(offset))
    return out
