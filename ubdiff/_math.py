"""Math mode of GPU float32 products (mixed precision as an option of the backend).

``"fp32"`` (default): strict float32 everywhere, PyTorch's default for matmuls.
``"tf32-conv"``: the convolution GEMMs (forward and backward) on TF32 tensor cores, what
PyTorch/cuDNN enables by default for convolutions; other products strict.
``"tf32"``: every float32 product on TF32 (``torch.set_float32_matmul_precision("high")``).

TF32 rounds each operand to 10 mantissa bits and accumulates in float32;
benchmarks/RESULTS.md ("Mixed precision") records the estimated cost per layer. The mode
applies to models created after the call (a model keeps the mode it was created with);
the environment variable ``UBDIFF_MATH`` sets the start value. The CPU has no TF32: CPU
models compute in strict float32 in every mode, so their results never depend on it.
"""
from ._native import lib as _lib

MATH_MODES = ("fp32", "tf32-conv", "tf32")


def set_math_mode(mode: str) -> None:
    """Math mode of GPU models and ops created from now on: one of :data:`MATH_MODES`."""
    if not isinstance(mode, str) or mode not in MATH_MODES:
        raise ValueError(f"math mode must be one of {MATH_MODES}, got {mode!r}")
    _lib.set_math_mode(mode)


def math_mode() -> str:
    """The current math mode's name."""
    return _lib.math_mode()
