"""NumPy-facing wrappers of the convolutions (csrc/conv.h): allocate outputs.

Layouts are PyTorch's: conv2d weight (OC, C, KH, KW), conv_transpose2d weight
(C, OC, KH, KW), conv1d weight (OC, C, K). stride / padding / output_padding
are an int or a pair. Backward functions return fresh gradients (the core
accumulates with ``+=``, so they start from zeros); ``bias=False`` skips dbias.
"""
from __future__ import annotations

import numpy as np

from ._native import lib
from .ops import f32


def _pair(v, name):
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    try:
        a, b = v
        return int(a), int(b)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected an int or a pair of ints, got {v!r}") from None


def _ndim(x, n, fn, name):
    if x.ndim != n:
        raise ValueError(f"{fn}: {name} must be {n}-D, got shape {x.shape}")


def conv_out_size(n, k, s, p):
    """Output length of a convolution along one axis (invalid input: the core raises)."""
    return (n + 2 * p - k) // s + 1 if s > 0 else 1


def convt_out_size(n, k, s, p, op=0):
    """Output length of a transposed convolution along one axis."""
    return (n - 1) * s - 2 * p + k + op


# ---- conv2d ------------------------------------------------------------------
def conv2d(x, weight, bias=None, stride=1, padding=0) -> np.ndarray:
    """x (B, C, H, W), weight (OC, C, KH, KW), bias (OC,) -> (B, OC, OH, OW)."""
    x, weight = f32(x, "x"), f32(weight, "weight")
    bias = None if bias is None else f32(bias, "bias")
    _ndim(x, 4, "conv2d", "x")
    _ndim(weight, 4, "conv2d", "weight")
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    oh = conv_out_size(x.shape[2], weight.shape[2], sh, ph)
    ow = conv_out_size(x.shape[3], weight.shape[3], sw, pw)
    out = np.empty((x.shape[0], weight.shape[0], max(oh, 1), max(ow, 1)), np.float32)
    lib.conv2d_forward(out, x, weight, bias, stride=(sh, sw), padding=(ph, pw))  # checks the shapes
    return out


def conv2d_backward(dout, x, weight, bias: bool = True, stride=1, padding=0):
    """Gradients (dx, dweight, dbias or None) of conv2d."""
    dout, x, weight = f32(dout, "dout"), f32(x, "x"), f32(weight, "weight")
    dx, dw = np.zeros_like(x), np.zeros_like(weight)
    db = np.zeros(weight.shape[0], np.float32) if bias else None
    lib.conv2d_backward(dx, dw, db, dout, x, weight, stride=_pair(stride, "stride"), padding=_pair(padding, "padding"))
    return dx, dw, db


# ---- conv_transpose2d ----------------------------------------------------------
def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0) -> np.ndarray:
    """x (B, C, H, W), weight (C, OC, KH, KW), bias (OC,) -> (B, OC, OH, OW),
    OH = (H - 1) stride - 2 padding + KH + output_padding (PyTorch's ConvTranspose2d)."""
    x, weight = f32(x, "x"), f32(weight, "weight")
    bias = None if bias is None else f32(bias, "bias")
    _ndim(x, 4, "conv_transpose2d", "x")
    _ndim(weight, 4, "conv_transpose2d", "weight")
    st, pd, op = _pair(stride, "stride"), _pair(padding, "padding"), _pair(output_padding, "output_padding")
    oh = convt_out_size(x.shape[2], weight.shape[2], st[0], pd[0], op[0])
    ow = convt_out_size(x.shape[3], weight.shape[3], st[1], pd[1], op[1])
    out = np.empty((x.shape[0], weight.shape[1], max(oh, 1), max(ow, 1)), np.float32)
    lib.convt2d_forward(out, x, weight, bias, stride=st, padding=pd, output_padding=op)
    return out


def conv_transpose2d_backward(dout, x, weight, bias: bool = True, stride=1, padding=0, output_padding=0):
    """Gradients (dx, dweight, dbias or None) of conv_transpose2d."""
    dout, x, weight = f32(dout, "dout"), f32(x, "x"), f32(weight, "weight")
    dx, dw = np.zeros_like(x), np.zeros_like(weight)
    db = np.zeros(weight.shape[1], np.float32) if bias else None
    lib.convt2d_backward(dx, dw, db, dout, x, weight, stride=_pair(stride, "stride"),
                         padding=_pair(padding, "padding"), output_padding=_pair(output_padding, "output_padding"))
    return dx, dw, db


# ---- conv1d ----------------------------------------------------------------------
def conv1d(x, weight, bias=None, stride: int = 1, padding: int = 0) -> np.ndarray:
    """x (B, C, L), weight (OC, C, K), bias (OC,) -> (B, OC, OL)."""
    x, weight = f32(x, "x"), f32(weight, "weight")
    bias = None if bias is None else f32(bias, "bias")
    _ndim(x, 3, "conv1d", "x")
    _ndim(weight, 3, "conv1d", "weight")
    ol = conv_out_size(x.shape[2], weight.shape[2], int(stride), int(padding))
    out = np.empty((x.shape[0], weight.shape[0], max(ol, 1)), np.float32)
    lib.conv1d_forward(out, x, weight, bias, stride=int(stride), padding=int(padding))
    return out


def conv1d_backward(dout, x, weight, bias: bool = True, stride: int = 1, padding: int = 0):
    """Gradients (dx, dweight, dbias or None) of conv1d."""
    dout, x, weight = f32(dout, "dout"), f32(x, "x"), f32(weight, "weight")
    dx, dw = np.zeros_like(x), np.zeros_like(weight)
    db = np.zeros(weight.shape[0], np.float32) if bias else None
    lib.conv1d_backward(dx, dw, db, dout, x, weight, stride=int(stride), padding=int(padding))
    return dx, dw, db


# ---- algorithm -------------------------------------------------------------------
def conv_algorithm(name: str | None = None) -> str:
    """The CPU algorithm of stride-1 convolutions with (3, 3), (1, 3) or (3, 1)
    kernels and >= 16 channels in and out (conv1d's k = 3 included): ``"auto"``
    (Winograd's minimal filtering, 2-2.25x fewer multiplications; the default) or
    ``"im2col"`` (im2col + sgemm, like every other shape). With ``name``, sets it
    process-wide and returns the new setting; without, returns the current one.
    The initial setting is ``UBDIFF_CONV`` (``auto`` when unset)."""
    return lib.conv_algo() if name is None else lib.conv_algo(name)   # the binding checks the name


class using_conv_algorithm:
    """``with using_conv_algorithm("im2col"): ...`` — the setting for a block, then back."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.prev = conv_algorithm()
        conv_algorithm(self.name)
        return self

    def __exit__(self, *exc):
        conv_algorithm(self.prev)
