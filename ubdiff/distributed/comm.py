"""The process group of a data-parallel run: MPI through mpi4py, or one process.

``world()`` is the group this process belongs to: MPI's COMM_WORLD when the
process was started by ``mpirun`` / ``mpiexec`` / ``srun`` (found from the
launcher's environment, so a plain run never initialises MPI), else a group of
one whose collectives return at once. Started by a launcher without mpi4py
installed, it raises ImportError naming the ``ubdiff[mpi]`` extra rather than
letting every rank train alone on the whole data.

All collectives work in place on C-contiguous NumPy buffers (the model's flat
gradient buffer is a zero-copy view, so nothing is copied on the way).

A rank that fails must not leave the others waiting in a collective forever:

- errors every rank can learn of are *agreed*: :meth:`Comm.agree` (setup: loading,
  opening data, checks) and :meth:`Comm.check` (one flag all-reduced per training step
  before its gradient all-reduce: a batch that cannot be read, a forward / backward that
  raised) raise :class:`RanksError` on every rank together, naming the ranks that failed;
  errors raised on every rank after an all-reduce (a non-finite global loss) are marked
  with :func:`on_all_ranks`. Such errors are ordinary exceptions on every rank.
- anything else raised on one rank of several inside a data-parallel call
  (:meth:`Comm.guard`), and any exception a script under ``mpirun`` leaves uncaught
  (:func:`world` installs a ``sys.excepthook``), prints its traceback naming the rank
  and ends the whole job with MPI_Abort, as ``python -m mpi4py`` does.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback

import numpy as np

from ._deps import require_mpi

# Set by the launchers of MPICH / Intel MPI (PMI), Open MPI and Slurm to the number of ranks.
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")


def launched_ranks() -> int:
    """How many ranks the MPI launcher started (1 when not started by one)."""
    for var in _SIZE_VARS:
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) >= 1:
            return int(v)
    return 1


class RanksError(RuntimeError):
    """An error raised on every rank of the group together (no rank is left waiting)."""

    all_ranks = True


def on_all_ranks(exc: BaseException) -> BaseException:
    """Mark ``exc`` as raised on every rank together (e.g. after an all-reduce of the losses)."""
    exc.all_ranks = True
    return exc


def raised_on_all_ranks(exc: BaseException) -> bool:
    return bool(getattr(exc, "all_ranks", False))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return str(exc.code)
    return f"{type(exc).__name__}: {exc}"


def _buffer(buf: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(buf, np.ndarray) or not buf.flags.c_contiguous or not buf.flags.writeable:
        raise ValueError(f"{what}: needs a writable C-contiguous NumPy array, got {type(buf).__name__}")
    if buf.dtype not in (np.float32, np.float64):
        raise ValueError(f"{what}: needs float32 or float64, got {buf.dtype}")
    return buf


class Comm:
    """A group of one process: rank 0 of 1, every collective a no-op."""

    rank = 0
    size = 1
    backend = "single process"

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce_sum(self, buf: np.ndarray) -> np.ndarray:
        """buf <- the sum of buf over all ranks (in place); returns buf."""
        return _buffer(buf, "allreduce_sum")

    def bcast_array(self, buf: np.ndarray, root: int = 0) -> np.ndarray:
        """buf <- root's buf (in place); returns buf."""
        return _buffer(buf, "bcast_array")

    def bcast(self, obj, root: int = 0):
        """root's (picklable) obj on every rank."""
        return obj

    def allgather(self, obj) -> list:
        return [obj]

    def barrier(self) -> None:
        pass

    def local_size(self) -> int:
        """How many ranks of the group run on this machine (they share its cores)."""
        return 1

    def abort(self, code: int = 1) -> None:
        raise SystemExit(code)

    def agree(self, fn, what: str):
        """Run fn() on every rank; if it raised on any rank, raise :class:`RanksError` on all of
        them (naming the ranks), so that no rank is left waiting in a collective for one that
        failed. One process: fn's own exception. fn must not run collectives itself unless
        every rank reaches them (a failing rank would skip them)."""
        try:
            out, err = fn(), None
        except (Exception, SystemExit) as e:   # noqa: BLE001 -- reported to every rank below
            out, err = None, e
        if self.size == 1:
            if err is not None:
                raise err
            return out
        self._raise_if_any(err, what, self.allgather(None if err is None else _describe(err)))
        return out

    def check(self, err: BaseException | None, what: str) -> None:
        """Every rank passes its own exception (or None); if any rank has one, every rank raises
        :class:`RanksError` naming them. One all-reduce of one number when all is well (a cheap
        per-step check), the messages gathered only when something failed."""
        if self.size == 1:
            if err is not None:
                raise err
            return
        flag = self.allreduce_sum(np.array([0.0 if err is None else 1.0]))
        if flag[0] > 0:
            self._raise_if_any(err, what, self.allgather(None if err is None else _describe(err)))

    def _raise_if_any(self, err, what, msgs):
        bad = [(r, m) for r, m in enumerate(msgs) if m is not None]
        if not bad:
            return
        by_msg = {}
        for r, m in bad:
            by_msg.setdefault(m, []).append(str(r))
        msg = "; ".join(f"rank{'s' if len(rs) > 1 else ''} {', '.join(rs)}: {m}" for m, rs in by_msg.items())
        raise RanksError(f"{what} failed on {len(bad)} of {self.size} ranks ({msg})") from err

    @contextlib.contextmanager
    def guard(self, what: str):
        """``with comm.guard("training"):`` -- an exception on one rank of several that the
        others cannot learn of (not raised on all ranks together) prints its traceback naming
        the rank and aborts the whole job (MPI_Abort): the other ranks would wait for it
        forever in their next collective. One process, or an agreed error: raised as it is."""
        try:
            yield
        except BaseException as e:
            if self.size == 1 or raised_on_all_ranks(e):
                raise
            _abort_with(self, e, what)
            raise

    def __repr__(self):
        return f"<ubdiff comm: rank {self.rank} of {self.size}, {self.backend}>"


class MPIComm(Comm):
    """MPI's COMM_WORLD through mpi4py."""

    def __init__(self, comm=None):
        MPI = require_mpi("data-parallel training")
        self._MPI = MPI
        self._c = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self._c.Get_rank(), self._c.Get_size()
        self.backend = MPI.Get_library_version().splitlines()[0].strip()

    def allreduce_sum(self, buf):
        _buffer(buf, "allreduce_sum")
        if self.size > 1:
            self._c.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        return buf

    def bcast_array(self, buf, root=0):
        _buffer(buf, "bcast_array")
        if self.size > 1:
            self._c.Bcast(buf, root=root)
        return buf

    def bcast(self, obj, root=0):
        return self._c.bcast(obj, root=root)

    def allgather(self, obj):
        return self._c.allgather(obj)

    def barrier(self):
        self._c.Barrier()

    def local_size(self):
        node = self._c.Split_type(self._MPI.COMM_TYPE_SHARED)
        try:
            return node.Get_size()
        finally:
            node.Free()

    def abort(self, code=1):
        self._c.Abort(code)
        os._exit(code)   # MPICH's MPI_Abort may return before the launcher ends this process: end it now


def _abort_with(comm: Comm, exc: BaseException, what: str) -> None:
    """Say which rank failed and why, then end every rank (MPI_Abort)."""
    try:
        sys.stderr.write(f"ubdiff: rank {comm.rank} of {comm.size} failed in {what}; ending all ranks "
                         "(MPI_Abort):\n" + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        sys.stderr.flush()
        sys.stdout.flush()
        # The launcher's proxy forwards this rank's stderr through a pipe, and MPI_Abort
        # kills the proxy: what it has not read yet is lost (seen on a loaded machine: the
        # job ended with an empty stderr). Give it a moment to forward the message.
        time.sleep(0.5)
    finally:
        comm.abort(1)


def _install_excepthook(comm: Comm) -> None:
    """An exception a script leaves uncaught on one rank ends the job instead of leaving the
    other ranks waiting in a collective (the previous hook runs for agreed errors)."""
    previous = sys.excepthook

    def hook(etype, value, tb):
        if raised_on_all_ranks(value) or issubclass(etype, SystemExit):
            previous(etype, value, tb)
        else:
            _abort_with(comm, value, "the script (an uncaught exception)")
    sys.excepthook = hook


_WORLD = None


def world() -> Comm:
    """This process's group: MPI when started by an MPI launcher, else a group of one.
    With several ranks it also installs a ``sys.excepthook`` that aborts the job on an
    exception left uncaught on one rank (see the module docstring)."""
    global _WORLD
    if _WORLD is None:
        if launched_ranks() > 1:
            _WORLD = MPIComm()
            if _WORLD.size > 1:
                _install_excepthook(_WORLD)
        else:
            _WORLD = Comm()
    return _WORLD


def default_threads(comm: Comm) -> int:
    """Threads per rank that do not oversubscribe: this machine's cores shared by its ranks."""
    from .._threads import available_cores
    return max(1, available_cores() // max(1, comm.local_size()))


def run_or_abort(comm: Comm, fn, what: str = "a data-parallel call"):
    """fn() under :meth:`Comm.guard`."""
    with comm.guard(what):
        return fn()
