"""PyTorch ``.pth`` / ``.pt`` files as NumPy, with or without PyTorch.

``torch.save`` (PyTorch >= 1.6) writes a zip archive::

    <name>/data.pkl       the pickled object (protocol 2)
    <name>/data/<key>     one raw little-endian buffer per tensor storage
    <name>/byteorder      "little" | "big" (newer versions; absent = little)
    <name>/version, ...

Inside data.pkl a tensor is a call ``torch._utils._rebuild_tensor_v2(storage,
offset, size, stride, requires_grad, hooks)`` whose ``storage`` is a
persistent id ``('storage', torch.FloatStorage, key, location, numel)``. So a
checkpoint can be read without PyTorch by an unpickler that knows only those
names and maps them to NumPy: :class:`_Unpickler`. It resolves nothing else:
a global outside :data:`SAFE_GLOBALS` raises ``pickle.UnpicklingError`` (no
code from the file runs), as does a tensor whose strides reach outside its
storage.

The allow-list is what the authors' and OpenFWI's checkpoints hold besides
tensors: ``collections.OrderedDict`` (every state_dict), ``collections.Counter``
(torch's MultiStepLR state), ``argparse.Namespace``
(the ``args`` saved by train_EncDec.py, fine_tune_Dec_S.py and OpenFWI's
train.py), and the builtins set/frozenset; optimiser and scheduler states are
plain dicts, lists, tuples and numbers.

:func:`read_pth` uses PyTorch when it is installed (``torch.load(weights_only=True)``
with argparse.Namespace added to its safe globals; it also reads the pre-1.6
format) and this reader otherwise; both give the same nested Python objects
with NumPy arrays. ``trust=True`` unpickles anything (PyTorch required).
"""
from __future__ import annotations

import _compat_pickle
import argparse
import collections
import math
import os
import pickle
import zipfile

import numpy as np

#: Storage classes torch's pickles name -> NumPy dtype of their elements.
#: BFloat16 has no NumPy type: it is read as uint16 bits and widened to float32.
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_, "UntypedStorage": np.uint8,
}


class _StorageType:
    """Stands in for torch.<X>Storage inside the pickle: only its dtype matters."""

    def __init__(self, name):
        self.name, self.dtype = name, STORAGE_DTYPES[name]


def _c_strides(size):
    out, step = [], 1
    for n in reversed(size):
        out.append(step)
        step *= max(n, 1)
    return tuple(reversed(out))


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    """torch._utils._rebuild_tensor_v2 -> a NumPy array (bounds checked). A tensor
    that is its whole storage, in C order (the usual case), is a view of it --
    tensors sharing a storage share memory, as after torch.load; others are copies."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise pickle.UnpicklingError("tensor without a storage from the archive")
    size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
    offset = int(offset)
    if len(size) != len(stride) or min(size + stride + (offset,), default=0) < 0:
        raise pickle.UnpicklingError(f"bad tensor geometry: size {size}, stride {stride}, offset {offset}")
    numel = math.prod(size)
    if numel == 0:
        return np.zeros(size, storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.size:
        raise pickle.UnpicklingError(f"tensor (size {size}, stride {stride}, offset {offset}) reaches past its "
                                     f"storage of {storage.size} elements")
    if offset == 0 and numel == storage.size and all(n == 1 or s == c for n, s, c in
                                                     zip(size, stride, _c_strides(size))):
        return storage.reshape(size)
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=tuple(s * item for s in stride),
                                           writeable=False)
    return np.array(view, order="C")


def _rebuild_parameter(data, requires_grad=False, hooks=None, *state):
    """torch._utils._rebuild_parameter: an nn.Parameter is its data here."""
    return data


#: (module, name) -> what the unpickler hands back for it. Nothing else resolves.
SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "Counter"): collections.Counter,   # torch's MultiStepLR keeps its milestones in one
    ("argparse", "Namespace"): argparse.Namespace,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch", "Size"): tuple,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    """Resolves only SAFE_GLOBALS; storages come from the zip's data/ folder."""

    def __init__(self, file, zf: zipfile.ZipFile, root: str, big_endian: bool):
        super().__init__(file)
        self._zf, self._root, self._big = zf, root, big_endian
        self._storages = {}

    def find_class(self, module, name):
        # protocol 2 writes Python 2 names (__builtin__.set); pickle's own find_class
        # maps them back, so this one must too before looking them up
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{module}.{name} is not on ubdiff's allow-list of checkpoint contents (tensors, dicts, "
                f"argparse.Namespace): refusing to run it. Use trust=True (--trust) only for a file you trust "
                f"(needs PyTorch)") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        _, stype, key, _location, numel = pid
        if key not in self._storages:
            self._storages[key] = self._read_storage(stype, str(key), int(numel))
        return self._storages[key]

    def _read_storage(self, stype, key, numel):
        bf16 = stype.dtype == "bfloat16"
        dt = np.dtype(np.uint16 if bf16 else stype.dtype).newbyteorder(">" if self._big else "<")
        nbytes = numel if stype.name == "UntypedStorage" else numel * dt.itemsize   # untyped: numel counts bytes
        name = f"{self._root}/data/{key}"
        try:
            size = self._zf.getinfo(name).file_size
        except KeyError:
            raise pickle.UnpicklingError(f"storage {key!r} is missing from the archive") from None
        if size != nbytes:   # checked before reading: a forged entry cannot make us inflate more
            raise pickle.UnpicklingError(f"storage {key!r}: {size} bytes in the archive, expected {nbytes}")
        a = np.empty(nbytes // dt.itemsize, dt)   # read straight into an array we own (writable)
        with self._zf.open(name) as f:
            if nbytes and f.readinto(a.view(np.uint8)) != nbytes:
                raise pickle.UnpicklingError(f"storage {key!r} is truncated")
        if self._big:
            a = a.astype(dt.newbyteorder("="))
        if bf16:   # bfloat16 is the upper half of a float32
            a = (a.astype(np.uint32) << 16).view(np.float32)
        return a


def _archive_root(zf: zipfile.ZipFile, path: str) -> str:
    roots = [n[:-len("/data.pkl")] for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(roots) != 1:
        hint = " (a TorchScript archive? those hold code, not a checkpoint)" if any(
            n.endswith("/constants.pkl") for n in zf.namelist()) else ""
        raise ValueError(f"{path}: a zip file but not a torch.save archive (no single <name>/data.pkl){hint}")
    return roots[0]


def require_checkpoint_file(path: str) -> None:
    """FileNotFoundError when ``path`` is missing; DataError (a ValueError) naming it when it is not a
    regular file (a FIFO, a device, a folder), so that no reader can block on it."""
    from ..data.files import check_regular

    if not os.path.lexists(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    check_regular(path, "checkpoint")


def load_numpy(path: str):
    """Reads a torch.save zip archive without PyTorch (allow-listed contents only)."""
    require_checkpoint_file(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a zip archive. PyTorch before 1.6 wrote another format (a bare pickle); "
                         "reading that needs PyTorch installed (pip install torch)")
    with zipfile.ZipFile(path) as zf:
        root = _archive_root(zf, path)
        try:
            big = zf.read(f"{root}/byteorder").strip() == b"big"
        except KeyError:
            big = False
        with zf.open(f"{root}/data.pkl") as f:
            try:
                return _Unpickler(f, zf, root, big).load()
            except pickle.UnpicklingError as e:
                raise pickle.UnpicklingError(f"{path}: {e}") from None


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def to_numpy(obj, torch):
    """torch.load's result with every tensor (bfloat16 widened to float32) as a NumPy array."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        return (t.float() if t.dtype == torch.bfloat16 else t).numpy()
    if isinstance(obj, dict):
        return {k: to_numpy(v, torch) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_numpy(v, torch) for v in obj)
    return obj


def read_pth(path: str, trust: bool = False, use_torch: bool | None = None):
    """The object in a .pth / .pt file, tensors as NumPy arrays.

    use_torch: None (default) uses PyTorch when installed, else ubdiff's own
    reader; True / False force one. trust=True allows any pickle (needs torch).
    """
    path = os.fspath(path)
    require_checkpoint_file(path)
    torch = _torch() if use_torch is not False else None
    if use_torch and torch is None:
        raise ImportError("use_torch=True, but PyTorch is not installed")
    if trust:
        if torch is None:
            raise ImportError("trust=True unpickles arbitrary objects, which needs PyTorch (pip install torch); "
                              "without it ubdiff reads tensors, dicts and argparse.Namespace only")
        return to_numpy(torch.load(path, map_location="cpu", weights_only=False), torch)
    if torch is None:
        return load_numpy(path)
    safe = getattr(torch.serialization, "safe_globals", None)
    if safe is None:   # PyTorch < 2.5 cannot allow argparse.Namespace: use ubdiff's reader
        if zipfile.is_zipfile(path):
            return load_numpy(path)
        return to_numpy(torch.load(path, map_location="cpu", weights_only=True), torch)
    with safe([argparse.Namespace]):
        return to_numpy(torch.load(path, map_location="cpu", weights_only=True), torch)


def save_pth(obj, path: str) -> None:
    """torch.save of ``obj`` with NumPy arrays turned into tensors (needs PyTorch).
    The same array object appearing twice becomes one shared storage, as in a
    module's state_dict that registers a tensor under two names."""
    torch = _torch()
    if torch is None:
        raise ImportError("writing .pth files needs PyTorch (pip install torch); write .safetensors instead")
    memo = {}

    def conv(x):
        if isinstance(x, (np.ndarray, np.generic)):
            if id(x) not in memo:
                memo[id(x)] = (x, torch.from_numpy(np.array(x)))   # keep x alive so its id stays unique
            return memo[id(x)][1]
        if isinstance(x, dict):
            return type(x)((k, conv(v)) for k, v in x.items())
        if isinstance(x, (list, tuple)):
            return type(x)(conv(v) for v in x)
        return x
    torch.save(conv(obj), path)
