"""FID / KID on velocity maps or seismic records through a feature network.

`features` is a callable mapping a normalised batch (B, C, H, W) float32 in
[-1, 1] to (B, d) features. Left as None, the reference network ubdiff ships
for the modality is used (ubdiff.metrics.featnet, loaded once per process):
a small CNN trained by scripts/train_feature_nets.py, NOT the paper's
Inception network, so values are comparable only with values computed with
the same network version (feature_network_info() names it). Seismic records
go to it subsampled in time to its nt = 250 (records of 1000 samples ::4);
an nt that is not an integer multiple of 250 is a ValueError.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import _norm
from .distance import KIDResult, fid_from_features, kid_from_features

# Kept for callers that imported it; no longer raised (features=None means the reference network).
NO_FEATURES_MSG = ("features=None uses ubdiff's reference feature network of the modality; pass "
                   "features=<callable mapping a normalised batch (B, C, H, W) to (B, d) features> to use another.")

MODALITIES = ("velocity", "seismic")


def default_features(modality: str, device: str = "auto") -> Callable:
    """The features callable of the shipped reference network of `modality`, run on `device`
    ("cpu", "cuda" or "auto": the GPU when one is usable)."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    from . import featnet
    net = featnet.load_reference(modality, device=device)
    return net.features if modality == "velocity" else featnet.seismic_adapter(net)


def feature_network_info(modality: str, features: Callable | None = None) -> dict:
    """What a report should say about the features used: the reference network's
    name, version and held-out accuracy, or the callable's name."""
    if features is None:
        from . import featnet
        return featnet.reference_info(modality)
    name = getattr(features, "__qualname__", None) or type(features).__name__
    return {"name": f"{getattr(features, '__module__', '?')}.{name}", "version": None,
            "note": "user-supplied feature callable"}


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


def extract_features(x, features: Callable | None = None, modality: str = "velocity", normalized: bool = False,
                     batch_size: int = 64, dataset: str | None = None, data_range=None,
                     progress: bool = False, desc: str = "features", name: str = "x",
                     client=None, threads: int | None = None, device: str = "auto") -> np.ndarray:
    """Run `features` (None: the reference network of `modality`, on `device`) over `x`
    (N, C, H, W) in batches (memory-mapped input is fine). NaN/Inf in `x` raise ValueError naming `name`
    (a feature network could map them to finite features and hide them).
    client: a ``distributed.Client``; then shards of whole batches run on its workers
    (``features`` must then be picklable: None or a module-level function), with the same
    batches and so the same features (ubdiff/distributed/eval_shards.py)."""
    if client is not None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if len(x) == 0:
            raise ValueError(f"{desc}: no samples")
        from ..distributed.eval_shards import features_sharded
        kw = dict(modality=modality, normalized=normalized, batch_size=batch_size, dataset=dataset,
                  data_range=data_range, desc=desc, name=name, device=device)
        return features_sharded(client, x, features, kw, threads=threads, progress=progress, desc=desc)
    if features is None:
        features = default_features(modality, device)
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
        raw = np.asarray(x[s:s + batch_size])
        if raw.dtype.kind not in "fiu":
            raise TypeError(f"{name}: must be a real numeric array, got dtype {raw.dtype}")
        _norm.check_finite(raw, name, offset=s)
        b = normalize(raw, modality, normalized, dataset, data_range)
        f = np.asarray(features(b), dtype=np.float64)
        if f.ndim != 2 or f.shape[0] != b.shape[0]:
            raise ValueError(f"features returned shape {f.shape} for a batch of {b.shape[0]}; expected (B, d)")
        out.append(f)
    return np.concatenate(out, axis=0)


def fid(real, generated, modality: str = "velocity", normalized: bool = False,
        features: Callable | None = None, batch_size: int = 64, dataset: str | None = None,
        data_range=None, progress: bool = False, device: str = "auto") -> float:
    """Fréchet distance between feature Gaussians of `real` and `generated` samples.

    Inputs are (N, C, H, W) in physical units (m/s, or raw seismic amplitude; the
    seismic range comes from `dataset` or `data_range`) or, with normalized=True,
    already in [-1, 1]. features=None: the reference network of `modality`, run on
    `device` ("cpu", "cuda" or "auto").
    """
    if features is None:
        features = default_features(modality, device)
    kw = dict(features=features, modality=modality, normalized=normalized, batch_size=batch_size,
              dataset=dataset, data_range=data_range, progress=progress)
    return fid_from_features(extract_features(real, desc="real features", name="real", **kw),
                             extract_features(generated, desc="generated features", name="generated", **kw))


def kid(real, generated, modality: str = "velocity", normalized: bool = False,
        features: Callable | None = None, batch_size: int = 64, dataset: str | None = None,
        data_range=None, subsets: int = 100, subset_size: int = 1000, seed: int = 0,
        progress: bool = False, device: str = "auto") -> KIDResult:
    """Kernel Inception Distance (mean, std over subsets); inputs and device as for fid().
    Its scale on the reference networks (a few units for different families) is
    explained in kid_from_features."""
    if features is None:
        features = default_features(modality, device)
    kw = dict(features=features, modality=modality, normalized=normalized, batch_size=batch_size,
              dataset=dataset, data_range=data_range, progress=progress)
    return kid_from_features(extract_features(real, desc="real features", name="real", **kw),
                             extract_features(generated, desc="generated features", name="generated", **kw),
                             subsets=subsets, subset_size=subset_size, seed=seed)
