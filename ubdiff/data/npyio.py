"""Validated, memory-mapped reading and atomic writing of OpenFWI .npy files.

Reading always goes through ``np.load(path, mmap_mode='r')`` with pickles
refused, so opening a file reads only its header and indexing one sample
touches only that sample's pages. Every failure is a :class:`DataError`
naming the file.
"""
from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np

from .errors import DataError

_CHUNK_BYTES = 64 << 20   # NaN/Inf scan granularity: bounded memory on huge files


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def open_npy(path: str, sample_shape: tuple | None = None, what: str = "array") -> np.memmap:
    """Memory-map ``path`` read-only and check it holds float32 (N, *sample_shape).

    Checks the header only (dtype, order, shape) and that the file is long
    enough for it (np.memmap refuses a truncated file); no sample is read.
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing {what} file")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:   # pickled/object arrays, truncated data, bad header
        raise DataError(f"{path}: unreadable {what} file ({e})") from e
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: unreadable {what} file ({type(e).__name__}: {e})") from e
    if not isinstance(arr, np.memmap):   # e.g. an .npz archive
        if hasattr(arr, "close"):
            arr.close()
        raise DataError(f"{path}: not a single .npy array")
    if arr.dtype != np.dtype(np.float32):   # also rejects byte-swapped '>f4'
        raise DataError(f"{path}: {what} must be float32, got dtype {arr.dtype.str}")
    if not arr.flags.c_contiguous:
        raise DataError(f"{path}: {what} must be C-ordered, got Fortran order")
    if sample_shape is not None and (arr.ndim != 1 + len(sample_shape)
                                     or tuple(arr.shape[1:]) != tuple(sample_shape)):
        raise DataError(f"{path}: {what} must have shape (N, {', '.join(map(str, sample_shape))}),"
                        f" got {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{path}: {what} file holds no sample")
    return arr


def check_finite(arr: np.ndarray, path: str, chunk_bytes: int = _CHUNK_BYTES) -> None:
    """Raise DataError naming ``path`` if ``arr`` holds NaN or Inf.

    Scans ``chunk_bytes`` at a time along the first axis, so a memory-mapped
    file of any size is checked with bounded memory.
    """
    per = max(1, chunk_bytes // max(1, arr[:1].nbytes))
    for s in range(0, arr.shape[0], per):
        block = np.asarray(arr[s:s + per])
        if not np.isfinite(block).all():
            bad = s + int(np.argwhere(~np.isfinite(block).reshape(block.shape[0], -1).all(1))[0, 0])
            raise DataError(f"{path}: non-finite value (NaN/Inf) in sample {bad}")


def min_max(arr: np.ndarray, chunk_bytes: int = _CHUNK_BYTES) -> tuple[float, float]:
    """(min, max) of an array, chunked along axis 0 (memory-mapped files)."""
    per = max(1, chunk_bytes // max(1, arr[:1].nbytes))
    lo, hi = np.inf, -np.inf
    for s in range(0, arr.shape[0], per):
        block = np.asarray(arr[s:s + per])
        lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    return lo, hi


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path in ``path``'s folder; on success os.replace it onto ``path``.

    The temporary name starts with '.' and ends in '.tmp', so it never matches
    the dataset's ``*.npy`` patterns; on any exception it is removed and
    ``path`` is left untouched (no partial file is ever visible under it).
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; give the usual file mode
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_npy(path: str, arr: np.ndarray) -> None:
    """Write ``arr`` as float32 .npy atomically (temp file + fsync + os.replace)."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.lib.format.write_array(f, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def npy_writer(path: str, shape: tuple):
    """Yield a writable float32 memmap of ``shape`` that appears at ``path`` only on success.

    For files too large to hold in memory (a seismic file is 700 MB): fill the
    memmap piecewise; it is flushed, fsync'ed and renamed when the block exits
    normally, and discarded on an exception.
    """
    with atomic_path(path) as tmp:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=tuple(shape))
        try:
            yield mm
            mm.flush()
        finally:
            del mm
        _fsync(tmp)
