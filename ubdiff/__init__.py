"""ubdiff — UB-Diff (paired seismic / velocity-map diffusion) with a C/CUDA core.

Quick look::

    import ubdiff
    print(ubdiff.build_info())
    ubdiff.set_num_threads(2)
"""
__version__ = "0.1.0"

from ._native import lib as _lib  # noqa: F401  (loads the extension)
from ._threads import available_cores, get_num_threads, set_num_threads, set_num_threads_adaptive, threads_adaptive
from ._build_info import build_info, cuda_compiled, gpu_count
from . import ops  # noqa: F401
from .pipeline import UBDiff  # noqa: E402

def _env_threads() -> int:
    """OMP_NUM_THREADS when set to a positive int, else 0."""
    import os
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        n = 0
    return max(n, 0)


def _default_threads() -> int:
    """OMP_NUM_THREADS when set to a positive int, else the cores this process may use."""
    return _env_threads() or available_cores()


def _set_default_threads() -> None:
    """OMP_NUM_THREADS, else the available cores: a fixed count. (The adaptive
    mode, ubdiff.set_num_threads_adaptive, is opt-in: with the products split by
    ubdiff and passive waiting, a fixed count of all cores measured as fast or
    faster than one thread on a busy machine; benchmarks/RESULTS.md.)"""
    set_num_threads(_default_threads())


_set_default_threads()

__all__ = [
    "__version__",
    "build_info",
    "cuda_compiled",
    "gpu_count",
    "set_num_threads",
    "get_num_threads",
    "set_num_threads_adaptive",
    "threads_adaptive",
    "available_cores",
    "ops",
    "UBDiff",
]
