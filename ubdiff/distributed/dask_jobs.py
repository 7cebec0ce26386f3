"""Shards on a Dask cluster: one task per shard, keyed by the shard's index.

The stages that split into independent pieces -- forward modelling in
make_dataset, sampling + decoding in UBDiff.generate, feature extraction,
InversionNet prediction and forward-model checks in evaluate -- hand
:func:`run_shards` a function and one argument tuple per shard. What a shard
computes depends only on its index and arguments, never on which worker runs
it or how many there are; the callers give shards the same batch sizes as a
single-process run, so on one machine with the same thread count the results
are the same bits (README, "Reproducibility").

Threads: every task first sets the worker's ubdiff thread count
(OpenMP + BLAS, :func:`ubdiff.set_num_threads`): ``threads`` when given, else
the cores of the worker's machine divided by the Dask worker threads running
on that machine (so 2 single-threaded workers on 2 cores run 1 thread each and
one worker runs 2). Dask's nanny already starts workers with
``OMP_NUM_THREADS=1`` and ``OPENBLAS_NUM_THREADS=1`` for NumPy.

Failures: a worker that dies mid-task costs that task only -- the scheduler
runs it again elsewhere (Dask's ``allowed-failures``, 3 by default); a shard
that fails for good lets the others finish before :class:`ShardError` is
raised, so their output stays for a rerun.
"""
from __future__ import annotations

import contextlib
import secrets
from collections import Counter

import numpy as np

from ._deps import require_dask

_SCATTER_BYTES = 1 << 20   # array arguments larger than this travel through client.scatter


class ShardError(RuntimeError):
    """Some shards of a job failed; ``failed`` maps shard id -> exception."""

    def __init__(self, name: str, failed: dict, total: int, hint: str = ""):
        self.failed = failed
        first = next(iter(failed))
        super().__init__(f"{name}: {len(failed)} of {total} shards failed (first: shard {first}: "
                         f"{type(failed[first]).__name__}: {failed[first]}){'; ' + hint if hint else ''}")


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None):
    """A ``distributed.Client``: of an existing cluster (``scheduler`` address, e.g.
    ``tcp://10.0.0.1:8786``, or a scheduler file path ending in .json) or of a new
    ``LocalCluster`` of ``workers`` single-threaded worker processes on this machine
    (its dashboard on a free port). Closed (and the local cluster shut down) on exit."""
    if (workers is None) == (scheduler is None):
        raise ValueError("give exactly one of workers= (a LocalCluster) and scheduler= (an existing cluster)")
    distributed = require_dask("a Dask cluster")
    if scheduler is not None:
        kw = {"scheduler_file": scheduler} if str(scheduler).endswith(".json") else {"address": scheduler}
        with distributed.Client(**kw) as client:
            yield client
        return
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    with distributed.LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        yield client


def _cores() -> int:
    from .._threads import available_cores
    return available_cores()


def worker_threads(client) -> dict:
    """worker address -> ubdiff threads for its tasks: its machine's cores divided by the
    Dask worker threads on that machine (at least 1)."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    if not info:
        raise RuntimeError("the Dask cluster has no workers")
    cores = client.run(_cores)
    per_host = Counter()
    for w in info.values():
        per_host[w["host"]] += int(w["nthreads"])
    return {addr: max(1, int(cores.get(addr, 1)) // per_host[w["host"]]) for addr, w in info.items()}


def _call(fn, args, kwargs, threads):
    """A shard on a worker: set the thread count, then run. Arrays arrive from the network
    possibly unaligned (deserialised in place): those are copied, as the C core needs."""
    import ubdiff
    args = tuple(np.require(a, requirements=("C", "A")) if isinstance(a, np.ndarray) else a for a in args)
    if not isinstance(threads, int):
        from distributed import get_worker
        threads = threads.get(get_worker().address, 1)
    ubdiff.set_num_threads(int(threads))
    return fn(*args, **kwargs)


def _scatter_big(client, values):
    out = []
    for v in values:
        if isinstance(v, np.ndarray) and v.nbytes > _SCATTER_BYTES:
            v = client.scatter(np.ascontiguousarray(v), hash=False)
        out.append(v)
    return tuple(out)


def run_shards(client, fn, shards, *, name: str, threads: int | None = None, kwargs: dict | None = None,
               progress: bool = False, desc: str | None = None, on_result=None, resumable: bool = False,
               ids=None) -> list:
    """Run ``fn(*shards[i], **kwargs)`` for every i as one task each; returns the results in
    shard order. ``on_result(i, result)`` (in this process) sees each result as it arrives.
    ``fn`` must be importable on the workers (a module-level function). Large NumPy arrays
    among the arguments are scattered first rather than embedded in the task graph.
    resumable: the shards write files that a rerun keeps (said in the error when some fail).
    ids: a name for each shard (default its position), in task keys and errors."""
    distributed = require_dask(name)
    shards = [tuple(s) for s in shards]
    if not shards:
        return []
    if threads is None:
        threads = worker_threads(client)
    elif isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    else:
        threads = int(threads)
    ids = list(range(len(shards))) if ids is None else [str(x) for x in ids]
    if len(ids) != len(shards) or len(set(ids)) != len(ids):
        raise ValueError(f"run_shards: need {len(shards)} distinct ids, got {ids!r}")
    token = secrets.token_hex(4)
    kwargs = dict(kwargs or {})
    futures = {client.submit(_call, fn, _scatter_big(client, args), kwargs, threads,
                             key=f"ubdiff-{name}-{ids[i]}-{token}", pure=False): i for i, args in enumerate(shards)}
    results, failed = [None] * len(shards), {}
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(shards), desc=desc or name, unit="shard")
    try:
        for fut in distributed.as_completed(list(futures)):
            i = futures[fut]
            if fut.status == "error":
                failed[ids[i]] = fut.exception()
            else:
                results[i] = fut.result()
                if on_result is not None:
                    on_result(i, results[i])
            if bar is not None:
                bar.update(1)
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        if bar is not None:
            bar.close()
    if failed:
        raise ShardError(name, failed, len(shards),
                         "the finished shards are kept: rerun the same command to complete the rest" if resumable else "")
    return results
