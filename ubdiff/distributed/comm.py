"""The process group of a data-parallel run: MPI through mpi4py, or one process.

``world()`` is the group this process belongs to: MPI's COMM_WORLD when the
process was started by ``mpirun`` / ``mpiexec`` / ``srun`` (found from the
launcher's environment, so a plain run never initialises MPI), else a group of
one whose collectives return at once. Started by a launcher without mpi4py
installed, it raises ImportError naming the ``ubdiff[mpi]`` extra rather than
letting every rank train alone on the whole data.

All collectives work in place on C-contiguous NumPy buffers (the model's flat
gradient buffer is a zero-copy view, so nothing is copied on the way).
"""
from __future__ import annotations

import os
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
        """Run fn() on every rank; if it raised on any rank, raise on all of them (naming the
        ranks), so that no rank is left waiting in a collective for one that failed."""
        try:
            out, err = fn(), None
        except Exception as e:   # noqa: BLE001 -- reported to every rank below
            out, err = None, e
        errs = self.allgather(None if err is None else f"{type(err).__name__}: {err}")
        bad = [(r, m) for r, m in enumerate(errs) if m is not None]
        if bad:
            if err is not None and self.size == 1:
                raise err
            by_msg = {}
            for r, m in bad:
                by_msg.setdefault(m, []).append(str(r))
            msg = "; ".join(f"rank{'s' if len(rs) > 1 else ''} {', '.join(rs)}: {m}" for m, rs in by_msg.items())
            raise RuntimeError(f"{what} failed on {len(bad)} of {self.size} ranks ({msg})") from err
        return out

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


_WORLD = None


def world() -> Comm:
    """This process's group: MPI when started by an MPI launcher, else a group of one."""
    global _WORLD
    if _WORLD is None:
        if launched_ranks() > 1:
            _WORLD = MPIComm()
        else:
            _WORLD = Comm()
    return _WORLD


def default_threads(comm: Comm) -> int:
    """Threads per rank that do not oversubscribe: this machine's cores shared by its ranks."""
    from .._threads import available_cores
    return max(1, available_cores() // max(1, comm.local_size()))


def run_or_abort(comm: Comm, fn):
    """fn() on this rank; an uncaught exception on a rank of several prints its traceback
    and aborts the whole job (MPI_Abort), so the other ranks do not wait forever."""
    try:
        return fn()
    except SystemExit:
        raise
    except BaseException:
        if comm.size == 1:
            raise
        traceback.print_exc()
        comm.abort(1)
        raise
