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
    """Fixes the number of threads of ubdiff's C core (OpenMP loops and the
    products; OpenBLAS itself runs on one thread), 1 <= n <= max_num_threads()
    (ValueError otherwise). Ends adaptive mode."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    lib.set_num_threads(n)


def set_num_threads_adaptive(max_threads: int | None = None) -> None:
    """Adaptive mode (the default unless OMP_NUM_THREADS is set): up to
    ``max_threads`` (default: the available cores) threads, fewer while other
    processes keep the cores busy, re-decided before each long call. Results
    do not depend on the thread count, so this changes speed only. Ended by
    set_num_threads. At most max_num_threads() (ValueError beyond)."""
    n = min(available_cores(), max_num_threads()) if max_threads is None else max_threads
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads_adaptive: max_threads must be an int, got {type(n).__name__}")
    lib.set_num_threads_adaptive(n)


def threads_adaptive() -> bool:
    """True when the thread count adapts to the machine's load."""
    return bool(lib.threads_adaptive())


def get_num_threads() -> int:
    """Current thread count of ubdiff's C core."""
    return lib.get_num_threads()
