"""Thread control shared by OpenMP loops and the BLAS."""
import os

from ._native import lib


def available_cores() -> int:
    """Cores this process may run on (respects affinity masks / containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_num_threads(n: int) -> None:
    """Sets the number of threads for ubdiff's OpenMP loops and the BLAS."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    lib.set_num_threads(n)


def get_num_threads() -> int:
    """Current thread count of ubdiff's C core."""
    return lib.get_num_threads()
