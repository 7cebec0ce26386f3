"""Argument checks shared by the model classes: an exception naming the
argument and the accepted range, raised before anything reaches the C core
(which checks again, as defence in depth: csrc/cpu/optim.c ubd_adam_check).

Seeds are integers in 0 .. 2**64 - 1 — the Philox key is 64 bits, and a seed
outside would otherwise wrap modulo 2**64 (seed 2**64 silently equal to 0).
"""
from __future__ import annotations

import math
from numbers import Real

import numpy as np

SEED_MAX = 2**64 - 1


def int_arg(x, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """`x` as an int (Python or NumPy integer, not bool) in [lo, hi]."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    x = int(x)
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        lo_s = "-inf" if lo is None else str(lo)
        hi_s = "inf" if hi is None else ("2**64 - 1" if hi == SEED_MAX else str(hi))
        raise ValueError(f"{name} must lie in {lo_s} .. {hi_s}, got {x}")
    return x


def seed_arg(x, name: str = "seed") -> int:
    """A Philox seed: an int in 0 .. 2**64 - 1."""
    return int_arg(x, name, 0, SEED_MAX)


def float_arg(x, name: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
              hi_open: bool = False) -> float:
    """`x` as a finite float in the interval given by lo / hi (open ends when asked)."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    v = float(x)
    ok = math.isfinite(v)
    if ok and lo is not None:
        ok = v > lo if lo_open else v >= lo
    if ok and hi is not None:
        ok = v < hi if hi_open else v <= hi
    if not ok:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        rng = f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
        raise ValueError(f"{name} must be finite and lie in {rng}, got {x!r}")
    return v


def adam_args(lr, betas, eps, weight_decay) -> tuple:
    """(lr, beta1, beta2, eps, weight_decay) checked as PyTorch's Adam(W) does, NaN refused."""
    if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return (float_arg(lr, "lr", 0.0), float_arg(betas[0], "betas[0]", 0.0, 1.0, hi_open=True),
            float_arg(betas[1], "betas[1]", 0.0, 1.0, hi_open=True), float_arg(eps, "eps", 0.0, lo_open=True),
            float_arg(weight_decay, "weight_decay", 0.0))


def weights_arg(ws, name: str, n: int) -> tuple:
    """n loss weights, each finite and >= 0."""
    if isinstance(ws, (str, bytes)) or not hasattr(ws, "__len__") or len(ws) != n:
        raise ValueError(f"{name} must be a sequence of {n} numbers, got {ws!r}")
    return tuple(float_arg(w, f"{name}[{i}]", 0.0) for i, w in enumerate(ws))
