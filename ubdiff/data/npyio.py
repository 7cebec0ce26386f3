"""Validated, memory-mapped reading and atomic writing of OpenFWI .npy files.

:func:`open_npy` is the one reader of .npy files in ubdiff: it opens regular
files only (a FIFO or device is refused without blocking, see
:mod:`.files`), parses the header itself -- any corruption is a
:class:`DataError` naming the file, never a tokenizer or syntax error leaking
from the header parser -- refuses pickles, object arrays and .npz archives,
checks dtype, order, shape and that the file holds all the data its header
declares, and memory-maps the data read-only: opening a file reads only its
header and indexing one sample touches only that sample's pages.

Writers are atomic (temporary sibling + fsync + os.replace, :mod:`.files`);
:func:`npy_writer` reserves the file's blocks before memory-mapping it, so a
full disk is an OSError at the start, not a SIGBUS halfway.
"""
from __future__ import annotations

import contextlib
import errno
import math
import os
import warnings

import numpy as np

from .errors import DataError
from .files import atomic_path, open_regular  # noqa: F401  (atomic_path: part of this module's API)

_CHUNK_BYTES = 64 << 20   # NaN/Inf scan granularity: bounded memory on huge files
_MAGIC = b"\x93NUMPY"
_MAX_HEADER = 10000       # numpy's own limit on a header it parses safely
_DTYPES = ("float32", "real")


def _header(f, path, what):
    """(shape, fortran_order, dtype, data offset) of an open .npy file."""
    head = f.read(len(_MAGIC) + 2)
    if len(head) == 0:
        raise DataError(f"{path}: unreadable {what} file (empty file)")
    if head.startswith(b"PK\x03\x04"):
        raise DataError(f"{path}: not a single .npy array (an .npz archive)")
    if not head.startswith(_MAGIC) or len(head) < len(_MAGIC) + 2:
        raise DataError(f"{path}: unreadable {what} file (not a .npy file; pickles are refused)")
    version = (head[-2], head[-1])
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise DataError(f"{path}: unreadable {what} file (unsupported .npy format version {version})")
    try:
        with warnings.catch_warnings():   # numpy's "created on Python 2" re-parse warning: we judge the header
            warnings.simplefilter("ignore")
            shape, fortran, dtype = readers[version](f, max_header_size=_MAX_HEADER)
    except Exception as e:   # ValueError, SyntaxError, tokenize errors... from a corrupt header
        msg = str(e) if len(str(e)) <= 200 else str(e)[:200] + "..."
        raise DataError(f"{path}: unreadable {what} file (corrupt .npy header: {type(e).__name__}: {msg})") from None
    shape = tuple(shape)
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise DataError(f"{path}: unreadable {what} file (corrupt .npy header: shape {shape})")
    return shape, fortran, dtype, f.tell()


def open_npy(path: str, sample_shape: tuple | None = None, what: str = "array", *, ndim: int | None = None,
             dtype: str = "float32", finite: bool = False) -> np.memmap:
    """Memory-map ``path`` read-only and check it holds (N, *sample_shape), N >= 1.

    dtype: "float32" (native float32 only: byte-swapped '>f4', float64 and
    complex are refused) or "real" (any real floating type, either byte
    order: the caller converts on read). ndim: the number of dimensions when
    no sample_shape is given. finite: also scan the whole file for NaN/Inf
    (chunked). Without it only the header is read and checked, and that the
    file is long enough for the data it declares.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"open_npy: dtype must be one of {_DTYPES}, got {dtype!r}")
    fd = open_regular(path, what)
    try:
        with open(path, "rb", opener=lambda *_: os.dup(fd)) as f:
            shape, fortran, dt, offset = _header(f, path, what)
            size = os.fstat(f.fileno()).st_size
            if dt.hasobject:
                raise DataError(f"{path}: unreadable {what} file (holds Python objects; pickles are refused)")
            if dtype == "float32" and dt != np.dtype(np.float32):
                raise DataError(f"{path}: {what} must be float32, got dtype {dt.str}")
            if dtype == "real" and dt.kind != "f":
                raise DataError(f"{path}: {what} must be a real floating-point array, got dtype {dt.str}")
            if fortran and len(shape) > 1:
                raise DataError(f"{path}: {what} must be C-ordered, got Fortran order")
            if sample_shape is None:
                if ndim is not None and len(shape) != ndim:
                    raise DataError(f"{path}: {what} must be a {ndim}-D array, got shape {shape}")
            elif len(shape) != 1 + len(sample_shape) or shape[1:] != tuple(sample_shape):
                raise DataError(f"{path}: {what} must have shape (N, {', '.join(map(str, sample_shape))}),"
                                f" got {shape}")
            if len(shape) == 0 or shape[0] == 0:
                raise DataError(f"{path}: {what} file holds no sample (shape {shape})")
            nbytes = math.prod(shape) * dt.itemsize
            if nbytes == 0:
                raise DataError(f"{path}: {what} file holds no data (shape {shape})")
            if size < offset + nbytes:
                raise DataError(f"{path}: unreadable {what} file (truncated: its header declares shape {shape}, "
                                f"{nbytes} bytes of data, but {max(0, size - offset)} follow the header)")
            try:
                arr = np.memmap(f, dtype=dt, mode="r", offset=offset, shape=shape, order="C")
            except (OSError, ValueError, OverflowError) as e:
                raise DataError(f"{path}: unreadable {what} file ({type(e).__name__}: {e})") from None
    finally:
        os.close(fd)
    if finite:
        check_finite(arr, path)
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


def write_npy(path: str, arr: np.ndarray) -> None:
    """Write ``arr`` as float32 .npy atomically (temp file + fsync + os.replace)."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.lib.format.write_array(f, arr, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())


def _reserve(f, size: int) -> None:
    """Allocate ``size`` bytes of disk to the open file ``f`` now (ENOSPC / EFBIG raise here)."""
    try:
        os.posix_fallocate(f.fileno(), 0, size)
        return
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS):
            raise
    f.seek(0, os.SEEK_END)   # no fallocate on this file system: write the zeros ourselves
    left = size - f.tell()
    block = bytes(1 << 20)
    while left > 0:
        f.write(block[:min(left, len(block))])
        left -= len(block)
    f.flush()


@contextlib.contextmanager
def npy_writer(path: str, shape: tuple):
    """Yield a writable float32 memmap of ``shape`` that appears at ``path`` only on success.

    For files too large to hold in memory (a seismic file is 700 MB): fill the
    memmap piecewise; it is flushed, fsync'ed and renamed when the block exits
    normally, and discarded on an exception. The file's blocks are reserved
    (posix_fallocate) before it is mapped: a full disk raises OSError here,
    where a sparse memmap would die of SIGBUS at the first page it cannot write.
    """
    shape = tuple(int(s) for s in shape)
    with atomic_path(path) as tmp:
        with open(tmp, "w+b") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                    "shape": shape})
            offset = f.tell()
            f.flush()
            _reserve(f, offset + math.prod(shape) * 4)
            mm = np.memmap(f, dtype=np.float32, mode="r+", offset=offset, shape=shape)
            try:
                yield mm
                mm.flush()
            finally:
                del mm
            os.fsync(f.fileno())
