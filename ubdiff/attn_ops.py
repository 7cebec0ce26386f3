"""NumPy-facing wrappers of softmax and the attention cores (csrc/attention.h).

Each forward allocates its outputs plus whatever its backward needs and
returns them; each backward allocates the scratch it needs and returns a
fresh gradient (the core accumulates with ``+=``, so it starts from zeros).
Models call the C core directly and do not go through here.

Layouts:
  * ``mhsa``: token layout, ``qkv (B, T, 3C)`` as the qkv Linear of a ViT block
    produces it, ``out (B, T, C)``; scale is ``1/sqrt(C/num_heads)``.
  * ``full_attention`` / ``linear_attention``: the 1-D U-Net's channels-first
    layout, ``qkv (B, 3*NH*HD, L)`` as its Conv1d(k=1) produces it, ``out
    (B, NH*HD, L)``; scale defaults to ``HD ** -0.5``.
"""
from __future__ import annotations

import numpy as np

from ._native import lib
from .ops import f32


def _heads(qkv: np.ndarray, num_heads: int, what: str) -> tuple[int, int, int]:
    """(B, HD, L) of a channels-first qkv (B, 3*NH*HD, L)."""
    if qkv.ndim != 3:
        raise ValueError(f"{what}: qkv must be (B, 3*NH*HD, L), got shape {qkv.shape}")
    num_heads = int(num_heads)
    if num_heads <= 0 or qkv.shape[1] % (3 * num_heads):
        raise ValueError(f"{what}: qkv has {qkv.shape[1]} channels, not a multiple of 3*num_heads={3 * num_heads}")
    return qkv.shape[0], qkv.shape[1] // (3 * num_heads), qkv.shape[2]


def _scale(scale, hd: int) -> float:
    return float(hd) ** -0.5 if scale is None else float(scale)


# ---- softmax ----------------------------------------------------------------
def softmax(x) -> np.ndarray:
    """Softmax over the last axis."""
    x = f32(x, "x")
    out = np.empty_like(x)
    lib.softmax_forward(out, x)
    return out


def softmax_backward(dout, out) -> np.ndarray:
    """Gradient w.r.t. the input of softmax, given its output `out`."""
    dout, out = f32(dout, "dout"), f32(out, "out")
    dx = np.zeros_like(out)
    lib.softmax_backward(dx, dout, out)
    return dx


# ---- multi-head self-attention (token layout) ----------------------------------
def mhsa_forward(qkv, num_heads: int):
    """(out (B, T, C), att (B, NH, T, T)) of the ViT attention core."""
    qkv = f32(qkv, "qkv")
    if qkv.ndim != 3 or qkv.shape[2] % 3:
        raise ValueError(f"mhsa_forward: qkv must be (B, T, 3C), got shape {qkv.shape}")
    B, T, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
    num_heads = int(num_heads)
    if num_heads <= 0:
        raise ValueError(f"mhsa_forward: num_heads must be positive, got {num_heads}")
    out = np.empty((B, T, C), np.float32)
    att = np.empty((B, num_heads, T, T), np.float32)
    lib.mhsa_forward(out, att, qkv)
    return out, att


def mhsa_backward(dout, qkv, att) -> np.ndarray:
    """dqkv (B, T, 3C) of mhsa_forward (heads taken from att)."""
    dout, qkv, att = f32(dout, "dout"), f32(qkv, "qkv"), f32(att, "att")
    dqkv = np.zeros_like(qkv)
    lib.mhsa_backward(dqkv, np.empty_like(att), dout, qkv, att)
    return dqkv


# ---- 1-D U-Net full attention -------------------------------------------------------
def full_attention_forward(qkv, num_heads: int, scale=None):
    """(out (B, NH*HD, L), att (B, NH, L, L)); scale defaults to HD**-0.5."""
    qkv = f32(qkv, "qkv")
    B, HD, L = _heads(qkv, num_heads, "full_attention_forward")
    out = np.empty((B, num_heads * HD, L), np.float32)
    att = np.empty((B, num_heads, L, L), np.float32)
    lib.full_attention_forward(out, att, qkv, _scale(scale, HD))
    return out, att


def full_attention_backward(dout, qkv, att, scale=None) -> np.ndarray:
    """dqkv (B, 3*NH*HD, L) of full_attention_forward (heads taken from att)."""
    dout, qkv, att = f32(dout, "dout"), f32(qkv, "qkv"), f32(att, "att")
    if att.ndim != 4:
        raise ValueError(f"full_attention_backward: att must be (B, NH, L, L), got shape {att.shape}")
    _, HD, _ = _heads(qkv, att.shape[1], "full_attention_backward")
    dqkv = np.zeros_like(qkv)
    lib.full_attention_backward(dqkv, np.empty_like(att), dout, qkv, att, _scale(scale, HD))
    return dqkv


# ---- 1-D U-Net linear attention ---------------------------------------------------------
def linear_attention_forward(qkv, num_heads: int, scale=None):
    """(out, qs, ks (B, NH*HD, L), context (B, NH, HD, HD)); scale defaults to HD**-0.5."""
    qkv = f32(qkv, "qkv")
    B, HD, L = _heads(qkv, num_heads, "linear_attention_forward")
    out = np.empty((B, num_heads * HD, L), np.float32)
    qs, ks = np.empty_like(out), np.empty_like(out)
    context = np.empty((B, num_heads, HD, HD), np.float32)
    lib.linear_attention_forward(out, qs, ks, context, qkv, _scale(scale, HD))
    return out, qs, ks, context


def linear_attention_work_size(B: int, num_heads: int, HD: int, L: int) -> int:
    """Floats of scratch linear_attention_backward needs."""
    return 2 * B * num_heads * HD * L + B * num_heads * HD * HD


def linear_attention_backward(dout, qkv, qs, ks, context, scale=None) -> np.ndarray:
    """dqkv (B, 3*NH*HD, L) of linear_attention_forward (heads taken from context)."""
    dout, qkv = f32(dout, "dout"), f32(qkv, "qkv")
    qs, ks, context = f32(qs, "qs"), f32(ks, "ks"), f32(context, "context")
    if context.ndim != 4:
        raise ValueError(f"linear_attention_backward: context must be (B, NH, HD, HD), got shape {context.shape}")
    B, HD, L = _heads(qkv, context.shape[1], "linear_attention_backward")
    dqkv = np.zeros_like(qkv)
    work = np.empty(linear_attention_work_size(B, context.shape[1], HD, L), np.float32)
    lib.linear_attention_backward(dqkv, work, dout, qkv, qs, ks, context, _scale(scale, HD))
    return dqkv
