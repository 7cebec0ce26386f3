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
    """Fixes the number of threads of ubdiff's C core (OpenMP loops and the
    products; OpenBLAS itself runs on one thread). Ends adaptive mode."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    lib.set_num_threads(n)


def set_num_threads_adaptive(max_threads: int | None = None) -> None:
    """Adaptive mode (the default unless OMP_NUM_THREADS is set): up to
    ``max_threads`` (default: the available cores) threads, fewer while other
    processes keep the cores busy, re-decided before each long call. Results
    do not depend on the thread count, so this changes speed only. Ended by
    set_num_threads."""
    n = available_cores() if max_threads is None else max_threads
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads_adaptive: max_threads must be an int, got {type(n).__name__}")
    lib.set_num_threads_adaptive(n)


def threads_adaptive() -> bool:
    """True when the thread count adapts to the machine's load."""
    return bool(lib.threads_adaptive())


def get_num_threads() -> int:
    """Current thread count of ubdiff's C core."""
    return lib.get_num_threads()
