"""Safe file access for every reader and writer in ubdiff.

Reading: only regular files are opened. A FIFO, a device or a folder under a
data file's name is refused before anything can block on it (the name is
stat'ed first, then opened non-blocking and fstat'ed again, so a file swapped
in between is caught too), and every error names the file.

Writing, one file: :func:`atomic_path` yields a temporary sibling; on success
it is renamed onto the real name (``os.replace``), on an exception removed.

Writing, a set of files that must match (a run folder, a generated dataset):
:func:`atomic_folder` yields a temporary sibling folder; on success it takes
the real folder's place in one atomic step (``renameat2(RENAME_EXCHANGE)``),
and the old content goes away afterwards. A process killed at any point
leaves either the old complete folder or the new complete folder under the
real name. Where the file system cannot exchange two names, two renames are
used (old -> ``.NAME.old-X``, new -> NAME) and a kill between them is
repaired by :func:`recover_folder` (called by the next writer and reader).

Writing a set of files in pieces that survive an interruption (shards of a
generation, written by one process or by many workers): :func:`resumable_folder`
is atomic_folder with a temporary sibling named after the job (``.NAME.part-KEY``,
KEY from a hash of the job's parameters) that an exception or a kill leaves in
place; a rerun of the same job finds it and writes only the missing pieces,
and the swap is the same as atomic_folder's.

Stale temporaries: each one is locked (``flock``) by its writer for as long
as it is being written. A kill releases the lock, so the next writer of the
same name can tell a stale temporary (unlocked: removed) from one another
process is writing right now (locked: left alone).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import stat
import tempfile

from .errors import DataError

try:
    import fcntl
except ImportError:   # no flock (not POSIX): temporaries are never judged stale, only left
    fcntl = None

_MAX_TEXT_BYTES = 256 << 20   # a JSON file larger than this is not one of ours


# ---- reading -------------------------------------------------------------------------
def _kind(mode) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: str, what: str = "file", error=DataError) -> int:
    """A read-only file descriptor of ``path``, which must be a regular file (symlinks followed).

    Raises ``error`` naming the file when it is missing, unreadable or not a
    regular file; never blocks (a FIFO is refused, not opened for a writer).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: missing {what} file") from None
    except OSError as e:
        raise error(f"{path}: cannot access {what} file ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: {what} must be a regular file, got {_kind(st.st_mode)}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise error(f"{path}: cannot open {what} file ({e.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):   # swapped for something else since the stat above
        os.close(fd)
        raise error(f"{path}: {what} must be a regular file, got {_kind(st.st_mode)}")
    return fd


def check_regular(path: str, what: str = "file", error=DataError) -> None:
    """Raise ``error`` unless ``path`` is a readable regular file (for readers that take a path)."""
    os.close(open_regular(path, what, error))


def read_bytes(path: str, what: str = "file", error=DataError, limit: int = _MAX_TEXT_BYTES) -> bytes:
    """The content of a regular file of at most ``limit`` bytes."""
    fd = open_regular(path, what, error)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise error(f"{path}: {what} file is {size} bytes, more than the {limit} expected at most")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(limit + 1)
    except OSError as e:
        raise error(f"{path}: cannot read {what} file ({e.strerror})") from None
    finally:
        os.close(fd)


def read_json(path: str, what: str = "file", error=DataError) -> dict:
    """A JSON object (dict) read from a regular file; anything else raises ``error`` naming the file."""
    import json

    raw = read_bytes(path, what, error)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise error(f"{path}: corrupt {what} file (not UTF-8 text: {e})") from None
    except ValueError as e:   # json.JSONDecodeError, and too-deep nesting
        raise error(f"{path}: corrupt {what} file (not valid JSON: {e})") from None
    except RecursionError:
        raise error(f"{path}: corrupt {what} file (JSON nested too deeply)") from None
    if not isinstance(obj, dict):
        raise error(f"{path}: {what} file must hold a JSON object, got a JSON {type(obj).__name__}")
    return obj


# ---- locks and stale temporaries -----------------------------------------------------------
def _try_lock(fd) -> bool:
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:   # a file system without flock: treat as unlockable, never delete
        if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL):
            return False
        raise


def _lock(fd) -> None:
    """Hold an exclusive lock on ``fd`` (no-op where the file system has no flock)."""
    if fcntl is None:
        return
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):   # gone already, or a read-only file system: leave it
            os.unlink(path)


def clean_stale(folder: str, match) -> list:
    """Remove the entries of ``folder`` for which ``match(name)`` is true and that no live
    process holds locked (temporaries left by killed writers). Returns the names removed."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if not match(name):
            continue
        p = os.path.join(folder, name)
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if _try_lock(fd):
                _remove(p)
                removed.append(name)
        finally:
            os.close(fd)
    return removed


def _temp_match(base: str):
    """Names of the temporaries of ``base``: ``.BASE.<random>.tmp`` (see atomic_path)."""
    return lambda n: n.startswith("." + base + ".") and n.endswith(".tmp")


_RAND = r"[a-z0-9_]{8}"   # tempfile's random part
_TEMP_RE = re.compile(rf"^\..+\.{_RAND}\.tmp$|^\..+\.(new|old|part)-{_RAND}$|^\.tmp-{_RAND}\.safetensors$")


def is_temp_name(name: str) -> bool:
    """True for a temporary of atomic_path (``.BASE.XXXXXXXX.tmp``), atomic_folder
    (``.NAME.new-XXXXXXXX`` / ``.NAME.old-XXXXXXXX``), resumable_folder
    (``.NAME.part-XXXXXXXX``) or of older ubdiff checkpoint writers
    (``.tmp-XXXXXXXX.safetensors``); never a data or user file name."""
    return _TEMP_RE.match(name) is not None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---- one file ----------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path in ``path``'s folder; on success os.replace it onto ``path``.

    The temporary is ``.BASENAME.<random>.tmp`` (so it never matches a ``*.npy``
    pattern), locked while the block runs; on any exception it is removed and
    ``path`` is left untouched. Stale temporaries of the same name (left by a
    killed writer) are removed first.
    """
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    clean_stale(folder, _temp_match(base))
    fd, tmp = tempfile.mkstemp(prefix="." + base + ".", suffix=".tmp", dir=folder)
    try:
        _lock(fd)
        os.fchmod(fd, 0o666 & ~_umask())   # mkstemp makes 0600; give the usual file mode
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)


# ---- a folder ------------------------------------------------------------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2():
    try:
        f = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    f.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    f.restype = ctypes.c_int
    return f


_RENAMEAT2 = _renameat2()


def exchange(a: str, b: str) -> bool:
    """Atomically swap the names ``a`` and ``b`` (both must exist). False where unsupported."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    e = ctypes.get_errno()
    if e in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(e, f"cannot swap {a} and {b}: {os.strerror(e)}")


@contextlib.contextmanager
def _parent_lock(parent: str):
    """Serialise the swap and recovery of folders in ``parent`` between processes."""
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _lock(fd)
        yield
    finally:
        os.close(fd)


def _siblings(real: str):
    parent, name = os.path.split(real)
    return parent, name, "." + name + ".new-", "." + name + ".old-"


def _recover_locked(real: str) -> None:
    parent, name, new_p, old_p = _siblings(real)
    if not os.path.lexists(real):
        # Only a kill between the two renames of the fallback leaves `real` missing with an
        # .old- sibling; its .new- twin (same token) was complete before the first rename.
        for n in sorted(os.listdir(parent)):
            if n.startswith(old_p):
                token = n[len(old_p):]
                new = os.path.join(parent, new_p + token)
                os.rename(new if os.path.isdir(new) else os.path.join(parent, n), real)
                _fsync_dir(parent)
                break
    clean_stale(parent, lambda n: n.startswith(new_p) or n.startswith(old_p))


def recover_folder(path: str) -> None:
    """Finish a folder swap that a kill interrupted, and remove stale temporaries of it.

    A no-op for a folder that is there and has no temporary siblings; called by
    :func:`atomic_folder` before writing and by readers of folders it writes.
    """
    real = os.path.realpath(path)
    parent, name, new_p, old_p = _siblings(real)
    try:
        names = os.listdir(parent)
    except OSError:
        return
    if not any(n.startswith(new_p) or n.startswith(old_p) for n in names):
        return
    try:
        with _parent_lock(parent):
            _recover_locked(real)
    except OSError:   # e.g. a read-only file system: nothing to repair from here; the reader goes on
        pass


def _carry(src: str, dst: str) -> None:
    """Recreate ``src`` at ``dst`` by hard links (copies where links are impossible)."""
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
    elif os.path.isdir(src):
        os.mkdir(dst)
        for n in os.listdir(src):
            _carry(os.path.join(src, n), os.path.join(dst, n))
    elif os.path.isfile(src):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    # FIFOs, sockets and devices are not data: not carried


@contextlib.contextmanager
def atomic_folder(path: str, owned):
    """Yield a new, empty temporary folder; on success it becomes ``path`` in one atomic step.

    ``owned(name)``: whether an entry of the old folder belongs to the writer
    (it is then replaced by what the block wrote, or dropped). Every other
    entry of an existing folder is carried over into the new one by hard
    links before the swap, so files a user keeps in the folder survive. On an
    exception the temporary folder is removed and ``path`` is untouched. The
    old and the new content coexist until the swap: writing over an existing
    folder needs room for both.
    """
    real = os.path.realpath(path)
    if os.path.lexists(real) and not os.path.isdir(real):
        raise NotADirectoryError(f"{path}: exists and is not a folder")
    parent, name, new_p, old_p = _siblings(real)
    os.makedirs(parent, exist_ok=True)
    with _parent_lock(parent):   # stale temporaries are only ever removed under this lock, so a new
        _recover_locked(real)    # one is created and locked under it too: never judged stale unlocked
        tmp = tempfile.mkdtemp(prefix=new_p, dir=parent)
        dfd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        _lock(dfd)
    token = os.path.basename(tmp)[len(new_p):]
    try:
        os.chmod(tmp, 0o777 & ~_umask())   # mkdtemp makes 0700
        yield tmp
        with _parent_lock(parent):
            _swap_in(tmp, real, owned, token)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(dfd)


def _swap_in(tmp: str, real: str, owned, token: str) -> None:
    """Make the complete folder ``tmp`` (named ``.NAME.new-TOKEN``) the folder ``real``; under the parent lock.

    Entries of an existing ``real`` that ``owned`` does not claim are carried over first
    (hard links); then one exchange of the two names, or, where the file system cannot
    exchange, two renames that :func:`recover_folder` completes after a kill between them.
    """
    parent, _, _, old_p = _siblings(real)
    if os.path.isdir(real):
        for n in os.listdir(real):
            if not owned(n) and not is_temp_name(n) and not os.path.lexists(os.path.join(tmp, n)):
                _carry(os.path.join(real, n), os.path.join(tmp, n))
        os.chmod(tmp, stat.S_IMODE(os.stat(real).st_mode))   # the folder keeps its permissions
        _fsync_dir(tmp)
        if exchange(tmp, real):
            _fsync_dir(parent)
            shutil.rmtree(tmp, ignore_errors=True)   # the old content, now under tmp's name
        else:
            old = os.path.join(parent, old_p + token)
            os.rename(real, old)
            try:
                os.rename(tmp, real)
            except BaseException:
                os.rename(old, real)
                raise
            _fsync_dir(parent)
            shutil.rmtree(old, ignore_errors=True)
    else:
        _fsync_dir(tmp)
        os.rename(tmp, real)
        _fsync_dir(parent)


# ---- a folder written in resumable pieces ----------------------------------------------------
PLAN_NAME = ".ubdiff-plan.json"   # inside a resumable folder: the job it belongs to


def _plan_text(plan: dict) -> str:
    import json
    return json.dumps(plan, sort_keys=True, separators=(",", ":"), default=str)


def _write_plan(folder: str, text: str) -> None:
    with atomic_path(os.path.join(folder, PLAN_NAME)) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def _empty(folder: str) -> None:
    for n in os.listdir(folder):
        _remove(os.path.join(folder, n))


@contextlib.contextmanager
def resumable_folder(path: str, owned, plan: dict, keep=None):
    """Like :func:`atomic_folder`, but the temporary sibling outlives an interruption.

    Yields ``(tmp, resumed)``: the sibling folder ``.NAME.part-KEY`` (KEY: 8 hex digits of a
    hash of ``plan``, a JSON-able dict describing the whole job) and whether it already
    held the work of an earlier, interrupted run of the same plan (a hash collision or a
    damaged plan file gives an emptied folder, never another job's pieces). The writer
    fills it piece by piece, each piece atomically (:func:`atomic_path`), skipping pieces
    that are already there -- from this process or from worker processes on other
    machines that see the same file system. On success the plan file and stale
    temporaries are dropped and the folder takes ``path``'s place in one atomic step, as
    atomic_folder's. On an exception the folder is kept for a rerun when ``keep(tmp)`` is
    true (e.g. it holds a finished piece), else removed; a kill always leaves it. Siblings
    of other plans (interrupted jobs with other settings) are removed when a job starts.
    While a process writes a plan, the folder is locked: a second process running the
    same plan at the same time gets a RuntimeError instead of sharing it.
    """
    real = os.path.realpath(path)
    if os.path.lexists(real) and not os.path.isdir(real):
        raise NotADirectoryError(f"{path}: exists and is not a folder")
    parent, name, new_p, _ = _siblings(real)
    part_p = "." + name + ".part-"
    text = _plan_text(plan)
    import hashlib
    token = hashlib.sha256(text.encode()).hexdigest()[:8]
    stage = os.path.join(parent, part_p + token)
    os.makedirs(parent, exist_ok=True)
    with _parent_lock(parent):
        _recover_locked(real)
        clean_stale(parent, lambda n: n.startswith(part_p) and n != part_p + token)
        resumed = os.path.isdir(stage)
        if not resumed:
            os.mkdir(stage)
        dfd = os.open(stage, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if fcntl is not None:
            try:
                fcntl.flock(dfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(dfd)
                raise RuntimeError(f"{path}: another process is writing this job right now ({stage} is "
                                   "locked); wait for it, or write elsewhere") from None
            except OSError:
                pass   # a file system without flock: nothing to tell two writers apart
    try:
        os.chmod(stage, 0o777 & ~_umask())
        if resumed:
            try:
                same = read_bytes(os.path.join(stage, PLAN_NAME), "plan").decode("utf-8") == text
            except (DataError, UnicodeDecodeError):
                same = False
            if not same:
                _empty(stage)
                resumed = False
        if not resumed:
            _write_plan(stage, text)
        yield stage, resumed
        with _parent_lock(parent):
            _remove(os.path.join(stage, PLAN_NAME))
            clean_stale(stage, is_temp_name)   # left by killed workers; every writer has finished
            tmp = os.path.join(parent, new_p + token)
            os.rename(stage, tmp)
            try:
                _swap_in(tmp, real, owned, token)
            except BaseException:   # a failed carry or rename (rare): tmp may hold carried user files
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except BaseException:
        if os.path.isdir(stage) and not (keep is not None and keep(stage)):
            shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        os.close(dfd)
