"""ubdiff — UB-Diff (paired seismic / velocity-map diffusion) with a C/CUDA core.

Quick look::

    import ubdiff
    print(ubdiff.build_info())
    ubdiff.set_num_threads(2)
"""
__version__ = "0.1.0"

from ._native import lib as _lib  # noqa: F401  (loads the extension)
from ._threads import available_cores, get_num_threads, max_num_threads, set_num_threads
from ._build_info import build_info, cuda_compiled, gpu_count
from . import ops  # noqa: F401
from .pipeline import UBDiff  # noqa: E402

def _default_threads() -> int:
    """OMP_NUM_THREADS when set to a positive int (at most max_num_threads()),
    else the cores this process may use."""
    import os
    import warnings
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        n = 0
    n = n if n > 0 else available_cores()
    if n > max_num_threads():
        warnings.warn(f"ubdiff: {n} threads (OMP_NUM_THREADS) is more than max_num_threads() = "
                      f"{max_num_threads()}; using {max_num_threads()}", RuntimeWarning, stacklevel=2)
        n = max_num_threads()
    return n


set_num_threads(_default_threads())

__all__ = [
    "__version__",
    "build_info",
    "cuda_compiled",
    "gpu_count",
    "set_num_threads",
    "get_num_threads",
    "max_num_threads",
    "available_cores",
    "ops",
    "UBDiff",
]
