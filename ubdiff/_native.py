"""Loads the compiled core `ubdiff._ubdiff`.

The extension links against the OpenBLAS of the `scipy-openblas32` wheel. A
regular install finds it through the extension's rpath; an editable install
or a relocated environment may not, so the library is preloaded here with
RTLD_GLOBAL before the extension is imported.
"""
import ctypes
import os

try:
    import scipy_openblas32 as _sob

    _lib = os.path.join(_sob.get_lib_dir(), "lib" + _sob.get_library() + ".so")
    if os.path.exists(_lib):
        ctypes.CDLL(_lib, mode=ctypes.RTLD_GLOBAL)
except ImportError:  # a build against a system BLAS needs no preload
    pass

# Waiting OpenMP threads sleep instead of spinning unless the user chose a
# policy: on a busy machine a spinning thread takes the core from the sibling
# it waits for (benchmarks/RESULTS.md, "Threads under load"). libgomp reads
# this once, when the extension loads it, so it is set here, before.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "passive"

from . import _ubdiff as lib  # noqa: E402

__all__ = ["lib"]
