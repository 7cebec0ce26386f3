"""NCCL on GPUs: the data-parallel all-reduce of a CUDA model's flat gradient buffer.

:class:`NCCLComm` is the :class:`.Comm` that :class:`.DataParallel` uses when the model is
on "cuda" and the group has several ranks: the host collectives (objects, checks, the
losses) stay MPI's, the model's device buffers go through NCCL
(csrc/cuda/nccl_comm.cu: ncclAllReduce / ncclBroadcast on the CUDA backend's stream), so the
gradient never leaves the GPU. Rank 0 makes the NCCL unique id and MPI broadcasts it
(mpi4py); every rank joins on its current CUDA device, the one its models were made on --
each rank needs a GPU of its own.

NCCL is compiled in only when setup.py finds nccl.h (the CUDA toolkit's or the
nvidia-nccl wheel's); ``nccl_compiled()`` and ``ubdiff.build_info()["nccl"]`` say whether
it was. Not yet run on GPUs by the project's tests (they skip without two GPUs).

The model side of the protocol (DataParallel, GPU models):

    device == "cuda"
    device_collective(kind, nccl, root=None)   # kind: "grad" | "param" | "m" | "v" | "stats";
                                               # root None: sum over the ranks, else root's values
"""
from __future__ import annotations

from .._native import lib
from .comm import Comm


def nccl_compiled() -> bool:
    """True when this ubdiff was built with NCCL."""
    return bool(lib.nccl_compiled()[0])


def nccl_version() -> int:
    """NCCL's version code (e.g. 22703 for 2.27.3), 0 without NCCL."""
    return int(lib.nccl_compiled()[1])


class NCCLComm(Comm):
    """The ranks of ``comm`` (MPI) with a NCCL communicator for device buffers."""

    def __init__(self, comm: Comm, device: int = -1):
        if not nccl_compiled():
            raise RuntimeError("data-parallel training of a model on the GPU needs NCCL: this ubdiff was built "
                               "without it (setup.py compiles it in when nccl.h is found: the CUDA toolkit's or "
                               "`pip install nvidia-nccl-cu13`); or train on the CPU (--device cpu)")
        self.mpi, self.rank, self.size = comm, comm.rank, comm.size
        self.backend = f"NCCL {nccl_version()} over {comm.backend}"
        uid = comm.agree(lambda: lib.nccl_unique_id() if comm.is_root else None, "making the NCCL id")
        uid = comm.bcast(uid, root=0)
        # collective inside NCCL: a rank failing here may leave the others in ncclCommInitRank (Comm.guard)
        self.handle = lib.nccl_comm_create(uid, comm.size, comm.rank, int(device))

    # host collectives: MPI's
    def allreduce_sum(self, buf):
        return self.mpi.allreduce_sum(buf)

    def bcast_array(self, buf, root=0):
        return self.mpi.bcast_array(buf, root)

    def bcast(self, obj, root=0):
        return self.mpi.bcast(obj, root)

    def allgather(self, obj):
        return self.mpi.allgather(obj)

    def barrier(self):
        self.mpi.barrier()

    def local_size(self):
        return self.mpi.local_size()

    def abort(self, code=1):
        self.mpi.abort(code)

    # device buffers: NCCL's
    def device_sum(self, model, kind: str) -> None:
        """The model's device buffer ``kind`` <- its sum over the ranks (in place)."""
        model.device_collective(kind, self)

    def device_bcast(self, model, kind: str, root: int = 0) -> None:
        """The model's device buffer ``kind`` <- rank root's."""
        model.device_collective(kind, self, root=root)
