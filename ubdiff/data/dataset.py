"""Reading OpenFWI-layout datasets: pairing, split files, memory-mapped samples.

A dataset is a list of file pairs ``(seismic_path or None, velocity_path)``;
sample ``j`` of a seismic file pairs with sample ``j`` of its velocity file.
A seismic file may hold fewer samples than its partner (the last seismic file
of a dataset made by ubdiff with a paired count that is not a multiple of
500): the pairs are then its first samples; more samples than its partner is
an error. Files are memory-mapped (see npyio.open_npy) and a read touches only
the requested samples.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from . import openfwi
from .errors import DataError
from .normalize import Normalizer
from .npyio import check_finite as _check_finite
from .npyio import open_npy

_CHECKS = ("off", "read", "open")


def _natural_key(path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def _index_npy(root):
    """basename -> [paths] of every .npy under root (OpenFWI ships data/ and model/ subfolders).

    A basename may occur in several subfolders (train/model1.npy, test/model1.npy):
    every path is kept, so no file is silently shadowed by another of the same name.
    """
    found = {}
    for dirpath, dirs, names in os.walk(root):
        dirs.sort()
        for n in sorted(names):
            if n.endswith(".npy") and not n.startswith("."):
                found.setdefault(n, []).append(os.path.join(dirpath, n))
    return found


def _names(paths, root, k=6):
    rel = [os.path.relpath(p, root) for p in paths]
    return ", ".join(rel[:k]) + (f" and {len(rel) - k} more" if len(rel) > k else "")


def pair_files(paths, velocity_only=False):
    """Pairs (seismic, velocity) for a list of file paths of either kind.

    Each path may name a seismic or a velocity file; its partner is looked up
    by name in the same folder, or -- OpenFWI's published layout -- in a
    sibling ``data``/``model`` folder. A missing partner is a DataError naming
    it (unless ``velocity_only``, then the seismic side is None).
    """
    pairs = []
    for p in paths:
        if openfwi.is_seismic_name(p):
            seis, vel = p, _locate(openfwi.partner_name(p), p)
        elif openfwi.is_velocity_name(p):
            seis, vel = (None if velocity_only else _locate(openfwi.partner_name(p), p)), p
        else:
            raise DataError(f"{p}: not an OpenFWI file name (data*/model*/seis*/vel* .npy)")
        pairs.append((seis, vel))
    return pairs


def _locate(partner, source):
    if os.path.exists(partner):
        return partner
    folder, name = os.path.split(partner)
    parent, sub = os.path.split(folder)
    swap = {"data": "model", "model": "data", "seis": "vel", "vel": "seis"}.get(sub)
    if swap:
        alt = os.path.join(parent, swap, name)
        if os.path.exists(alt):
            return alt
    raise DataError(f"{partner}: missing partner file of {source}")


def folder_files(root, velocity_only=False):
    """All pairs in a folder tree, found from its velocity files (natural order of their paths).

    Pairing is exact: every velocity file needs its partner (unless
    ``velocity_only``) and every seismic file must be some velocity file's
    partner; a file left over is a DataError naming it, never silently dropped.
    """
    index = _index_npy(root)
    every = [p for ps in index.values() for p in ps]
    vels = sorted((p for p in every if openfwi.is_velocity_name(p)),
                  key=lambda p: _natural_key(os.path.relpath(p, root)))
    if not vels:
        raise DataError(f"{root}: no velocity files (model*.npy / vel*.npy)")
    pairs = pair_files(vels, velocity_only)
    if not velocity_only:
        used = {os.path.realpath(s) for s, _ in pairs}
        orphans = [p for p in every if openfwi.is_seismic_name(p) and os.path.realpath(p) not in used]
        if orphans:
            raise DataError(f"{root}: seismic files without a velocity partner: {_names(sorted(orphans), root)}"
                            " (each data*/seis* file needs its model*/vel* file)")
    return pairs


def official_files(root, family, split="train", velocity_only=False):
    """Pairs of OpenFWI's official train or test files of ``family`` found under ``root``."""
    inf = openfwi.info(family)
    stems = {"train": inf.train_files, "test": inf.test_files}.get(split)
    if stems is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    index = _index_npy(root)
    vels = []
    for s in stems:
        found = index.get(s + ".npy", [])
        if not found:
            raise DataError(f"{os.path.join(root, s + '.npy')}: missing {split} file of {inf.name}")
        if len(found) > 1:
            raise DataError(f"{root}: {s}.npy is ambiguous, found at {_names(found, root)}; pass the folder"
                            " holding one copy")
        vels.append(found[0])
    return pair_files(vels, velocity_only)


def read_split_file(path, root=None, velocity_only=False):
    """Pairs listed in an OpenFWI split file.

    One entry per line: ``seismic_path<TAB>velocity_path`` (OpenFWI's format)
    or a single path of either kind whose partner is found by name. Relative
    paths are resolved against ``root`` (default: the split file's folder).
    Blank lines and lines starting with '#' are skipped.
    """
    from .files import read_bytes

    root = os.path.dirname(os.path.abspath(path)) if root is None else root
    pairs = []
    try:
        lines = read_bytes(path, "split").decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: split file is not UTF-8 text ({e})") from None
    for k, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [os.path.join(root, q.strip()) for q in line.split("\t") if q.strip()]
        if len(parts) == 2:
            pairs.append((None if velocity_only else parts[0], parts[1]))
        elif len(parts) == 1:
            pairs.extend(pair_files(parts, velocity_only))
        else:
            raise DataError(f"{path}:{k}: expected 1 or 2 tab-separated paths, got {len(parts)}")
    if not pairs:
        raise DataError(f"{path}: split file lists no file")
    return pairs


class OpenFWIDataset:
    """Memory-mapped samples of a list of file pairs.

    ``ds[i]`` -> ``(seismic (5, T, 70), velocity (1, 70, 70))`` (or the velocity
    alone when ``velocity_only``); ``ds.batch(idx)`` -> the same stacked for an
    index array. ``subsample=k`` keeps every k-th time step on read
    (``[:, :, ::k, :]``). With ``info`` (a DatasetInfo or dict with
    data_min/data_max/label_min/label_max) and ``normalize=True`` reads are
    returned in [-1, 1].

    ``check_finite``: "read" (default; checks only what is read, cost
    proportional to it), "open" (scans every file once at construction,
    chunked), or "off".
    """

    def __init__(self, pairs, *, seismic_shape=openfwi.SEISMIC_SHAPE, subsample=1,
                 velocity_only=False, info=None, normalize=False, check_finite="read"):
        if check_finite not in _CHECKS:
            raise ValueError(f"check_finite must be one of {_CHECKS}, got {check_finite!r}")
        if int(subsample) < 1:
            raise ValueError(f"subsample must be >= 1, got {subsample}")
        if normalize and info is None:
            raise ValueError("normalize=True needs the dataset constants (info=...)")
        self._args = (list(pairs), dict(seismic_shape=tuple(seismic_shape), subsample=subsample,
                                        velocity_only=velocity_only, info=info,
                                        normalize=normalize, check_finite=check_finite))
        self.subsample = int(subsample)
        self.velocity_only = bool(velocity_only)
        self.check = check_finite
        self.norm = Normalizer(info) if normalize else None
        self.vel_paths, self.seis_paths, self._vel, self._seis, counts = [], [], [], [], []
        for seis_path, vel_path in pairs:
            v = open_npy(vel_path, openfwi.VELOCITY_SHAPE, "velocity")
            n = v.shape[0]
            if not self.velocity_only:
                if seis_path is None:
                    raise DataError(f"{vel_path}: missing partner seismic file")
                s = open_npy(seis_path, tuple(seismic_shape), "seismic")
                if s.shape[0] > n:
                    raise DataError(f"{seis_path}: {s.shape[0]} seismic samples but only {n} in"
                                    f" its partner {vel_path}")
                n = s.shape[0]
                self._seis.append(s)
                self.seis_paths.append(seis_path)
            self._vel.append(v)
            self.vel_paths.append(vel_path)
            counts.append(n)
        if not counts:
            raise DataError("empty dataset: no file pair given")
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if check_finite == "open":
            for arrs, paths in ((self._vel, self.vel_paths), (self._seis, self.seis_paths)):
                for a, p in zip(arrs, paths):
                    _check_finite(a, p)

    @classmethod
    def from_folder(cls, root, family=None, split=None, partial=False, **kw):
        """All files of a folder (split=None), or OpenFWI's official 'train'/'test' files.

        A folder made by ubdiff (holding ubdiff_dataset.json) supplies its own
        constants, seismic shape and file list, all validated first; its
        sample counts must match the ones it records. An incomplete one (an
        interrupted make_dataset) is refused unless ``partial=True``, which
        reads the files finished so far.
        """
        from .files import recover_folder

        if split is not None and family is None:
            raise ValueError(f"{root}: OpenFWI's {split!r} file split needs the family name")
        recover_folder(root)   # finish a folder swap a kill interrupted (UBDiff.generate)
        if not os.path.isdir(root):
            raise DataError(f"{root}: not a folder")
        meta = openfwi.read_meta(root, partial=partial)
        if meta is not None:
            kw.setdefault("seismic_shape", tuple(meta["seismic_shape"]))
            if meta.get("data_min") is not None:
                kw.setdefault("info", meta)
        elif family is not None:
            kw.setdefault("info", openfwi.info(family))
        vo = kw.get("velocity_only", False)
        if meta is not None and split is None:   # ubdiff layout: seismic for the first files only
            pairs, counts = _meta_pairs(root, meta, vo)
            ds = cls(pairs, **kw)
            _check_counts(ds, counts, os.path.join(root, openfwi.META_NAME))
            return ds
        pairs = (folder_files(root, vo) if split is None
                 else official_files(root, family, split, vo))
        return cls(pairs, **kw)

    @classmethod
    def from_split_file(cls, path, root=None, **kw):
        return cls(read_split_file(path, root, kw.get("velocity_only", False)), **kw)

    def __len__(self):
        return int(self.offsets[-1])

    def __reduce__(self):
        # Pickle the file list, not the mapped data: a worker process re-opens
        # the files (np.memmap itself would pickle its whole content).
        return (_reopen, self._args)

    def _locate(self, idx):
        idx = np.asarray(idx, dtype=np.int64)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"index out of range for a dataset of {n} samples")
        idx = np.where(idx < 0, idx + n, idx)
        f = np.searchsorted(self.offsets, idx, side="right") - 1
        return idx, f, idx - self.offsets[f]

    def _read(self, arrs, paths, idx, sl):
        _, f, local = self._locate(idx)
        first = arrs[0][(0,) + sl]
        out = np.empty((len(local),) + first.shape, np.float32)
        for fi in np.unique(f):
            sel = np.flatnonzero(f == fi)
            arr = arrs[fi]
            for pos in sel[np.argsort(local[sel], kind="stable")]:   # ascending file offsets
                out[pos] = arr[(local[pos],) + sl]                  # one copy, memmap -> out
        # A float64 sum of float32 values is finite iff every value is (no overflow
        # possible), so this check costs one pass and no temporary array.
        if self.check == "read" and not np.isfinite(out.sum(dtype=np.float64)):
            bad = int(np.flatnonzero(~np.isfinite(out.reshape(len(out), -1)).all(1))[0])
            raise DataError(f"{paths[f[bad]]}: non-finite value (NaN/Inf) in sample {local[bad]}")
        return out

    def velocity(self, idx):
        """Velocity maps (B, 1, 70, 70) of an index array."""
        v = self._read(self._vel, self.vel_paths, np.atleast_1d(idx), (slice(None),))
        return self.norm.velocity(v) if self.norm else v

    def seismic(self, idx):
        """Seismic (B, 5, T // k, 70) of an index array, time subsampled by k on read."""
        if self.velocity_only:
            raise DataError("velocity-only dataset: no seismic data")
        sl = (slice(None), slice(None, None, self.subsample), slice(None))
        s = self._read(self._seis, self.seis_paths, np.atleast_1d(idx), sl)
        return self.norm.seismic(s) if self.norm else s

    def batch(self, idx):
        """Stacked samples of an index array: (seismic, velocity), or velocity alone."""
        if self.velocity_only:
            return self.velocity(idx)
        return self.seismic(idx), self.velocity(idx)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.batch(np.arange(len(self))[i])
        if np.ndim(i) == 0:
            out = self.batch([int(i)])
            return out[0] if self.velocity_only else (out[0][0], out[1][0])
        return self.batch(i)

    def subset(self, indices):
        return Subset(self, indices)


def _reopen(pairs, kw):
    return OpenFWIDataset(pairs, **kw)


def _meta_pairs(root, meta, velocity_only):
    """(pairs, [(velocity count, seismic count or None)]) of a validated ubdiff dataset folder.

    Complete: every listed file. Incomplete (partial=True): the velocity files
    written so far, and the seismic files make_dataset recorded as finished
    (file_stats), whose velocity partner is then there too.
    """
    vels, seis = meta["velocity_files"], meta["seismic_files"]
    vcounts = meta.get("file_counts") or [None] * len(vels)
    scounts = meta.get("paired_counts") or [None] * len(seis)
    if meta["complete"]:
        have_v, have_s = set(vels), set(seis)
    else:
        have_v = {v for v in vels if os.path.lexists(os.path.join(root, v))}
        have_s = {s for s in (meta.get("file_stats") or {}) if os.path.lexists(os.path.join(root, s))}
    pairs, counts = [], []
    if velocity_only:
        for v, n in zip(vels, vcounts):
            if v in have_v:
                pairs.append((None, os.path.join(root, v)))
                counts.append((n, None))
    else:
        for s, v, n, m in zip(seis, vels, vcounts, scounts):
            if s in have_s and v in have_v:
                pairs.append((os.path.join(root, s), os.path.join(root, v)))
                counts.append((n, m))
    if not pairs:
        what = "velocity" if velocity_only else "seismic"
        extra = "" if velocity_only else " (use velocity_only=True)"
        state = "" if meta["complete"] else " finished so far"
        raise DataError(f"{root}: dataset has no {what} file{state}{extra}")
    return pairs, counts


def _check_counts(ds, counts, meta_path):
    """Every file holds the number of samples ubdiff_dataset.json records for it."""
    for i, (nv, ns) in enumerate(counts):
        v = ds._vel[i]
        if nv is not None and v.shape[0] != nv:
            raise DataError(f"{ds.vel_paths[i]}: holds {v.shape[0]} samples, {meta_path} records {nv}")
        if ns is not None and ds._seis and ds._seis[i].shape[0] != ns:
            raise DataError(f"{ds.seis_paths[i]}: holds {ds._seis[i].shape[0]} samples, {meta_path} records {ns}")


class Subset:
    """A view of chosen samples of a dataset (same reading interface)."""

    def __init__(self, base, indices):
        self.base = base
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= len(base)):
            raise IndexError("subset index out of range")

    def __len__(self):
        return len(self.indices)

    def velocity(self, idx):
        return self.base.velocity(self.indices[np.atleast_1d(idx)])

    def seismic(self, idx):
        return self.base.seismic(self.indices[np.atleast_1d(idx)])

    def batch(self, idx):
        return self.base.batch(self.indices[np.atleast_1d(idx)])

    def __getitem__(self, i):
        if np.ndim(i) == 0 and not isinstance(i, slice):
            return self.base[int(self.indices[i])]
        return self.base.batch(self.indices[i])


@dataclass
class UnbalancedSplit:
    """UB-Diff's unbalanced training data: m velocity maps, n of them with seismic."""
    velocity: OpenFWIDataset   # all m velocity maps (velocity-only)
    paired: Subset             # the n paired samples (seismic, velocity)
    paired_index: np.ndarray   # their indices into ``paired.base`` (sorted)


def unbalanced_split(root, family=None, n_paired=1000, seed=0, split="auto", **kw):
    """All velocity maps of the (official train) files plus a seeded subset of n pairs.

    ``split``: 'train'/'test' (OpenFWI's file split; needs ``family``), None
    for every file of the folder, or 'auto' (default): every file of a dataset
    made by ubdiff (a folder with ubdiff_dataset.json), else OpenFWI's 'train'
    files. The n pairs are a uniform random choice without replacement
    (``np.random.default_rng(seed)``) among the samples that have seismic;
    same seed -> same subset.
    """
    kw.pop("velocity_only", None)
    if split == "auto":
        split = None if openfwi.has_meta(root) else "train"
    if split is not None and family is None:
        raise ValueError(f"{root}: OpenFWI's {split!r} file split needs the family name")
    vel = OpenFWIDataset.from_folder(root, family, split, velocity_only=True, **kw)
    base = OpenFWIDataset.from_folder(root, family, split, **kw)
    if not 0 <= n_paired <= len(base):
        raise ValueError(f"n_paired={n_paired} but only {len(base)} samples have seismic")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(base), size=n_paired, replace=False))
    return UnbalancedSplit(velocity=vel, paired=base.subset(idx), paired_index=idx)
