"""FID / KID on velocity maps or seismic records through a feature network.

The reference feature networks (small CNNs shipped with the package, built on
the C layer library) do not exist yet, so `features` is required: a callable
mapping a normalised batch (B, C, H, W) float32 in [-1, 1] to (B, d) features.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import _norm
from .distance import KIDResult, fid_from_features, kid_from_features

NO_FEATURES_MSG = (
    "no default feature network is installed yet: the reference FID/KID feature CNNs "
    "are a later step of ubdiff. Pass features=<callable mapping a normalised batch "
    "(B, C, H, W) to (B, d) features>.")

MODALITIES = ("velocity", "seismic")


def normalize(x, modality: str, normalized: bool, dataset: str | None = None, data_range=None):
    """`x` mapped to the [-1, 1] network input of `modality` (no-op when already normalised)."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if normalized:
        return np.asarray(x, dtype=np.float32)
    if modality == "velocity":
        lo, hi = _norm.VELOCITY_RANGE if data_range is None else data_range
        return _norm.normalize_velocity(x, lo, hi)
    return _norm.normalize_seismic(x, *_norm.seismic_range(dataset, data_range))


def extract_features(x, features: Callable, modality: str = "velocity", normalized: bool = False,
                     batch_size: int = 64, dataset: str | None = None, data_range=None,
                     progress: bool = False, desc: str = "features") -> np.ndarray:
    """Run `features` over `x` (N, C, H, W) in batches (memory-mapped input is fine)."""
    if features is None:
        raise ValueError(NO_FEATURES_MSG)
    if not callable(features):
        raise TypeError(f"features must be callable, got {type(features).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(x)
    if n == 0:
        raise ValueError(f"{desc}: no samples")
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc=desc, unit="batch")
    out = []
    for s in starts:
        b = normalize(x[s:s + batch_size], modality, normalized, dataset, data_range)
        f = np.asarray(features(b), dtype=np.float64)
        if f.ndim != 2 or f.shape[0] != b.shape[0]:
            raise ValueError(f"features returned shape {f.shape} for a batch of {b.shape[0]}; expected (B, d)")
        out.append(f)
    return np.concatenate(out, axis=0)


def fid(real, generated, modality: str = "velocity", normalized: bool = False,
        features: Callable | None = None, batch_size: int = 64, dataset: str | None = None,
        data_range=None, progress: bool = False) -> float:
    """Fréchet distance between feature Gaussians of `real` and `generated` samples.

    Inputs are (N, C, H, W) in physical units (m/s, or raw seismic amplitude; the
    seismic range comes from `dataset` or `data_range`) or, with normalized=True,
    already in [-1, 1].
    """
    if features is None:
        raise ValueError(NO_FEATURES_MSG)
    kw = dict(features=features, modality=modality, normalized=normalized, batch_size=batch_size,
              dataset=dataset, data_range=data_range, progress=progress)
    return fid_from_features(extract_features(real, desc="real features", **kw),
                             extract_features(generated, desc="generated features", **kw))


def kid(real, generated, modality: str = "velocity", normalized: bool = False,
        features: Callable | None = None, batch_size: int = 64, dataset: str | None = None,
        data_range=None, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        progress: bool = False) -> KIDResult:
    """Kernel Inception Distance (mean, std over subsets); inputs as for fid()."""
    if features is None:
        raise ValueError(NO_FEATURES_MSG)
    kw = dict(features=features, modality=modality, normalized=normalized, batch_size=batch_size,
              dataset=dataset, data_range=data_range, progress=progress)
    return kid_from_features(extract_features(real, desc="real features", **kw),
                             extract_features(generated, desc="generated features", **kw),
                             subsets=subsets, subset_size=subset_size, seed=seed)
