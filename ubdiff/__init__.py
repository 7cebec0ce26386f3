"""ubdiff — UB-Diff (paired seismic / velocity-map diffusion) with a C/CUDA core.

Quick look::

    import ubdiff
    print(ubdiff.build_info())
    ubdiff.set_num_threads(2)
"""
__version__ = "0.1.0"

from ._native import lib as _lib  # noqa: F401  (loads the extension)
from ._threads import available_cores, get_num_threads, set_num_threads
from ._build_info import build_info, cuda_compiled, gpu_count
from . import ops  # noqa: F401
from .pipeline import UBDiff  # noqa: E402

# Default: as many threads as this process may use.
set_num_threads(available_cores())

__all__ = [
    "__version__",
    "build_info",
    "cuda_compiled",
    "gpu_count",
    "set_num_threads",
    "get_num_threads",
    "available_cores",
    "ops",
    "UBDiff",
]
