"""The optional engines, imported on demand with an error that names the extra to install."""
from __future__ import annotations

DASK_HINT = "pip install 'ubdiff[distributed]'  (dask.distributed)"
MPI_HINT = "pip install 'ubdiff[mpi]'  (mpi4py and MPICH from their wheels)"


def require_dask(what: str = "this"):
    """The ``distributed`` module (Dask's scheduler), else ImportError naming the extra."""
    try:
        import distributed
    except ImportError as e:
        raise ImportError(f"{what} needs Dask, which is not installed ({e}): {DASK_HINT}") from None
    return distributed


def require_mpi(what: str = "this"):
    """mpi4py's ``MPI`` module (initialising MPI), else ImportError naming the extra."""
    try:
        from mpi4py import MPI
    except ImportError as e:   # also: mpi4py present but no MPI library it can load
        raise ImportError(f"{what} needs mpi4py and an MPI library ({e}): {MPI_HINT}") from None
    return MPI
