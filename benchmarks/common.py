"""Shared helpers for the benchmark scripts: timing and machine description."""
import os
import platform
import statistics
import time


def median_time(fn, repeat=5, warmup=1):
    """Median wall time (s) of fn() over `repeat` runs after `warmup` runs."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def machine() -> str:
    import ubdiff
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = ubdiff.build_info()
    return (f"{cpu}, {ubdiff.get_num_threads()} threads (of {os.cpu_count()} cores), "
            f"{info['blas'].split(' DYNAMIC')[0]}")


def table(rows, headers):
    """Plain Markdown table as a string."""
    w = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(str(c).rjust(w[i]) for i, c in enumerate(cells)) + " |"  # noqa: E731
    out = [line(headers), "|" + "|".join("-" * (x + 2) for x in w) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)
