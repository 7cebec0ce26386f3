"""The Dask flags shared by make-dataset, generate and evaluate."""
from __future__ import annotations

import contextlib

from ._deps import DASK_HINT


def add_dask_arguments(p) -> None:
    g = p.add_argument_group(f"more than one process (Dask; {DASK_HINT})")
    x = g.add_mutually_exclusive_group()
    x.add_argument("--workers", type=int, default=None, metavar="N",
                   help="run the shards on a LocalCluster of N worker processes on this machine")
    x.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the shards on an existing Dask cluster (tcp://HOST:8786, or a scheduler file "
                        "*.json); its workers must see the output folder at the same path")
    g.add_argument("--worker-threads", type=int, default=None, metavar="T",
                   help="ubdiff threads per shard (default: each worker machine's cores shared by its workers)")


@contextlib.contextmanager
def client_from_args(args):
    """The Dask client the flags ask for (None without --workers / --scheduler)."""
    workers, scheduler = getattr(args, "workers", None), getattr(args, "scheduler", None)
    if workers is None and scheduler is None:
        yield None
        return
    if workers is not None and workers < 1:
        raise SystemExit(f"--workers must be at least 1, got {workers}")
    if args.worker_threads is not None and args.worker_threads < 1:
        raise SystemExit(f"--worker-threads must be at least 1, got {args.worker_threads}")
    from .dask_jobs import dask_client
    cm = dask_client(workers=workers, scheduler=scheduler)
    try:
        client = cm.__enter__()
    except ImportError as e:
        raise SystemExit(f"{'--workers' if workers is not None else '--scheduler'}: {e}") from None
    try:
        yield client
    except BaseException as e:
        if not cm.__exit__(type(e), e, e.__traceback__):
            raise
    else:
        cm.__exit__(None, None, None)


def run_on_ranks(comm, fn, name: str) -> int:
    """fn() (-> exit code) on this rank of ``comm``. With several ranks, an error every rank
    raised together (comm.agree / comm.check: RanksError; a non-finite global loss) is said
    once, by rank 0, and exits 1; so does a SystemExit with a message (argument errors: the
    same arguments on every rank; whatever depends on a rank's file system goes through
    comm.agree). Any other exception on this rank prints its traceback and aborts the job
    (MPI_Abort), since the other ranks would wait for it forever in a collective."""
    import sys

    from .comm import _abort_with, raised_on_all_ranks
    if comm.size == 1:
        return fn()
    try:
        return fn()
    except SystemExit as e:
        if isinstance(e.code, str):
            if comm.is_root:
                print(e.code, file=sys.stderr)
            return 1
        raise
    except BaseException as e:
        if not raised_on_all_ranks(e):
            _abort_with(comm, e, f"ubdiff {name}")
            raise
        if comm.is_root:
            print(f"ubdiff {name}: error: {e}", file=sys.stderr)
        return 1
