"""ubdiff — UB-Diff (paired seismic / velocity-map diffusion) with a C/CUDA core.

Quick look::

    import ubdiff
    print(ubdiff.build_info())
    ubdiff.set_num_threads(2)
    maps = ubdiff.data.generate_velocity("flatvel-a", 4, seed=0)   # (4, 1, 70, 70) m/s
    rec = ubdiff.physics.forward_model(maps)                       # (4, 5, 1000, 70)

The submodules (data, physics, metrics, models, checkpoint, the *_ops layer
wrappers, official) and :class:`UBDiff` are attributes of the package, imported
on first use (PEP 562 module ``__getattr__``): ``import ubdiff`` loads only the
extension, NumPy and ``ops``, while ``ubdiff.data`` pulls in SciPy and
``ubdiff.UBDiff`` the whole pipeline.
"""
import importlib as _importlib

__version__ = "0.1.0"

from ._native import lib as _lib  # noqa: F401  (loads the extension)
from ._threads import (available_cores, get_num_threads, max_num_threads, set_num_threads,
                       set_num_threads_adaptive, threads_adaptive)
from ._build_info import build_info, cuda_compiled, gpu_count
from ._math import MATH_MODES, math_mode, set_math_mode
from . import ops  # noqa: F401

# Public submodules, imported on first attribute access.
_LAZY_SUBMODULES = ("attn_ops", "checkpoint", "compare", "conv_ops", "data", "metrics", "models",
                    "norm_ops", "official", "physics", "pipeline")
# Public names defined in a submodule: name -> submodule.
_LAZY_NAMES = {"UBDiff": "pipeline"}


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        # import_module also binds the submodule as an attribute of this package.
        return _importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_NAMES:
        value = getattr(_importlib.import_module(f"{__name__}.{_LAZY_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES) | set(_LAZY_NAMES))


def _env_threads() -> int:
    """OMP_NUM_THREADS when set to a positive int (at most max_num_threads(),
    with a warning), else 0."""
    import os
    import warnings
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        n = 0
    if n > max_num_threads():
        warnings.warn(f"ubdiff: {n} threads (OMP_NUM_THREADS) is more than max_num_threads() = "
                      f"{max_num_threads()}; using {max_num_threads()}", RuntimeWarning, stacklevel=2)
        n = max_num_threads()
    return max(n, 0)


def _default_threads() -> int:
    """OMP_NUM_THREADS when set to a positive int, else the cores this process may use."""
    return _env_threads() or min(available_cores(), max_num_threads())


def _set_default_threads() -> None:
    """OMP_NUM_THREADS fixes the count; otherwise adaptive, up to the available
    cores (fewer while other processes keep them busy: on a partly loaded machine
    a fixed count of all cores measured up to 2.5x slower than one thread;
    benchmarks/RESULTS.md, "Threads under load"). Results do not depend on it."""
    n = _env_threads()
    if n:
        set_num_threads(n)
    else:
        set_num_threads_adaptive(min(available_cores(), max_num_threads()))


_set_default_threads()

__all__ = [
    "__version__",
    "build_info",
    "cuda_compiled",
    "gpu_count",
    "set_num_threads",
    "get_num_threads",
    "max_num_threads",
    "set_num_threads_adaptive",
    "threads_adaptive",
    "available_cores",
    "MATH_MODES",
    "math_mode",
    "set_math_mode",
    "ops",
    "UBDiff",
]
