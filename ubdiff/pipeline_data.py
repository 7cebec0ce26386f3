"""Batches for :class:`ubdiff.UBDiff` from NumPy arrays or ubdiff.data datasets.

A source is read a batch at a time (``velocity(idx)`` / ``seismic(idx)``), so a
memory-mapped array or an OpenFWIDataset is never loaded whole. Every batch
comes out normalised to [-1, 1] (OpenFWI's transforms, ubdiff.data.normalize)
and is checked: finite, and velocity in physical units (m/s) unless the
dataset itself normalises. Seismic records with more time samples than the
model's ``nt`` are subsampled ``[:, :, ::k]`` (k = T / nt), as OpenFWI loaders do.
"""
from __future__ import annotations

import numpy as np

from .data import Normalizer, UnbalancedSplit
from .data.npyio import min_max

#: Below this a "velocity" is surely normalised, not in m/s (water is 1500 m/s).
_MIN_PHYSICAL_VMAX = 100.0


def _is_dataset(x) -> bool:
    return hasattr(x, "velocity") and hasattr(x, "__len__") and callable(getattr(x, "velocity"))


def dataset_norm(ds):
    """The Normalizer a dataset applies on read (None when it returns physical units)."""
    base = getattr(ds, "base", ds)
    return getattr(base, "norm", None)


def dataset_constants(ds) -> dict | None:
    """The dataset constants a dataset carries (from its ``info``), or None."""
    base = getattr(ds, "base", ds)
    norm = getattr(base, "norm", None)
    if norm is None:
        args = getattr(base, "_args", None)
        info = args[1].get("info") if args else None
        if info is None:
            return None
        norm = Normalizer(info)
    return dict(label_min=norm.label_min, label_max=norm.label_max,
                data_min=norm.data_min, data_max=norm.data_max)


class Source:
    """Velocity maps (and optionally their seismic records) read a batch at a time.

    velocity: array (N, 1, 70, 70) / (N, 70, 70) in m/s, or a dataset (an
    OpenFWIDataset, Subset, or UnbalancedSplit -> its ``velocity`` for
    velocity-only sources and its ``paired`` subset for pairs).
    seismic: array (N, shots, T, nr), or None to read it from a paired dataset.
    """

    def __init__(self, velocity, seismic=None, *, need_seismic: bool, nt: int, shots: int, nr: int,
                 what: str = "velocity"):
        if isinstance(velocity, UnbalancedSplit):
            velocity = velocity.paired if need_seismic else velocity.velocity
        self.what = what
        self.nt = int(nt)
        self.ds = None
        self.vel = self.seis = None
        if _is_dataset(velocity):
            if seismic is not None:
                raise ValueError(f"{what}: pass either a dataset or two arrays, not a dataset and an array")
            self.ds = velocity
            self.n = len(velocity)
            self.norm = dataset_norm(velocity)
            if need_seismic and getattr(getattr(velocity, "base", velocity), "velocity_only", False):
                raise ValueError(f"{what}: a velocity-only dataset has no seismic records; pass paired data")
        else:
            self.vel = self._array(velocity, "velocity")
            if self.vel.ndim == 3:
                self.vel = self.vel[:, None]
            if self.vel.ndim != 4 or self.vel.shape[1:] != (1, 70, 70):
                raise ValueError(f"{what}: velocity must have shape (N, 1, 70, 70) or (N, 70, 70), "
                                 f"got {self.vel.shape}")
            self.n = len(self.vel)
            self.norm = None
            if need_seismic:
                if seismic is None:
                    raise ValueError(f"{what}: seismic records are needed (pairs), got None")
                self.seis = self._array(seismic, "seismic")
                if self.seis.ndim != 4 or self.seis.shape[1] != shots or self.seis.shape[3] != nr:
                    raise ValueError(f"{what}: seismic must have shape (N, {shots}, T, {nr}), got {self.seis.shape}")
                if len(self.seis) != self.n:
                    raise ValueError(f"{what}: {self.n} velocity maps but {len(self.seis)} seismic records; "
                                     "pairs need one of each")
        if self.n < 2:
            raise ValueError(f"{what}: need at least 2 samples (BatchNorm), got {self.n}")
        self.need_seismic = need_seismic
        if need_seismic:
            self._raw_seismic(np.array([0]))   # the time axis fits the model (fails early, not mid-epoch)

    @staticmethod
    def _array(x, name):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise TypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")
        return x   # memmaps stay memmaps: indexed a batch at a time

    # -- reading -------------------------------------------------------------
    def _raw_velocity(self, idx):
        if self.ds is not None:
            return np.asarray(self.ds.velocity(idx), np.float32)
        return np.asarray(self.vel[idx], np.float32)

    def _raw_seismic(self, idx):
        s = np.asarray(self.ds.seismic(idx) if self.ds is not None else self.seis[idx], np.float32)
        T = s.shape[2]
        if T != self.nt:
            if T % self.nt:
                raise ValueError(f"{self.what}: seismic has {T} time samples; the model needs {self.nt} "
                                 f"(or a multiple of it to subsample)")
            s = s[:, :, ::T // self.nt]
        return np.ascontiguousarray(s)

    def velocity(self, idx, norm: Normalizer):
        """Normalised velocity (B, 1, 70, 70) of sorted indices."""
        v = self._raw_velocity(idx)
        _finite(v, self.what, "velocity", idx)
        if self.norm is not None:
            return v
        lo, hi = float(v.min()), float(v.max())
        if lo <= 0 or hi < _MIN_PHYSICAL_VMAX:
            raise ValueError(f"{self.what}: velocity must be in m/s (physical units, e.g. 1500-4500); got values "
                             f"in [{lo:.4g}, {hi:.4g}] -- pass un-normalised maps")
        return norm.velocity(v)

    def seismic(self, idx, norm: Normalizer):
        """Normalised seismic (B, shots, nt, nr) of sorted indices."""
        s = self._raw_seismic(idx)
        _finite(s, self.what, "seismic", idx)
        return s if self.norm is not None else norm.seismic(s)

    def seismic_range(self, chunk: int = 64) -> tuple:
        """(min, max) of the physical seismic amplitudes, read in chunks."""
        if self.seis is not None:
            return min_max(self.seis)
        lo, hi = np.inf, -np.inf
        for s in range(0, self.n, chunk):
            b = self._raw_seismic(np.arange(s, min(s + chunk, self.n)))
            lo, hi = min(lo, float(b.min())), max(hi, float(b.max()))
        return lo, hi


def _finite(a, what, name, idx):
    if not np.isfinite(a.sum(dtype=np.float64)):
        bad = int(np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(1))[0])
        raise ValueError(f"{what}: {name} sample {int(np.asarray(idx)[bad])} holds NaN or Inf")


def batches(n: int, batch_size: int, seed, epoch: int, stage: int):
    """Sorted index batches of one epoch: a permutation keyed by (seed, stage, epoch),
    so an epoch's order is reproducible from those three numbers alone (exact resume).
    A last batch of a single sample is dropped (BatchNorm needs two)."""
    perm = np.random.default_rng([int(seed), int(stage), int(epoch)]).permutation(n)
    out = [np.sort(perm[s:s + batch_size]) for s in range(0, n, batch_size)]
    return [b for b in out if len(b) >= 2]
