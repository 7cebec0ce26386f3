"""Thread control shared by OpenMP loops and the BLAS."""
import os

from ._native import lib


def available_cores() -> int:
    """Cores this process may run on (respects affinity masks / containers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def max_num_threads() -> int:
    """The largest thread count set_num_threads accepts: min(1024, 64 x the
    processors OpenMP sees). Far more threads than cores only slows the
    layers down, and libgomp ends the process when it cannot start them."""
    return lib.max_num_threads()


def set_num_threads(n: int) -> None:
    """Sets the number of threads for ubdiff's OpenMP loops and the BLAS,
    1 <= n <= max_num_threads() (ValueError otherwise)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    lib.set_num_threads(n)


def get_num_threads() -> int:
    """Current thread count of ubdiff's C core."""
    return lib.get_num_threads()
