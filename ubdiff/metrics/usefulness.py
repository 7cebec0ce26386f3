"""Usefulness of generated pairs for inversion (the paper's Table 3 protocol).

Train InversionNet on the generated (seismic, velocity) pairs, test it on the
real test split: MAE and MSE on velocity normalised to [-1, 1], SSIM as in
OpenFWI (ubdiff.metrics.ssim). Optionally the same network, trained the same
way on the n real training pairs only, gives the reference point reported side
by side ("does generating data beat the n real pairs it was made from?").

Data is read batch by batch (arrays, memmaps or ubdiff.data datasets), so a
large dataset is never loaded into memory at once; each batch is normalised as
OpenFWI does (seismic: log transform then min-max with data_min/data_max;
velocity: min-max with label_min/label_max) and time-subsampled to the
network's nt when needed. Training reproduces InversionNet.fit step for step
(same permutations, same dropped partial batch), reading through a batch
iterator instead of indexing one array.
"""
from __future__ import annotations

import math
import time

import numpy as np

from . import _norm
from .pairwise import mae as _mae
from .pairwise import mse as _mse
from .pairwise import ssim as _ssim
from .physics import subsample_factor

__all__ = ["inversion_usefulness", "open_pairs_folder", "plot_inversion_examples"]

# Unit sanity limits. Normalised velocity lies in [-1, 1] (a little overshoot is
# tolerated for generated maps); velocity in m/s is >= 1500 for OpenFWI data, so
# a maximum below 100 cannot be m/s. Normalised seismic is in [-1, 1]; physical
# OpenFWI records reach |x| ~ 25..57 (direct wave), far above 10.
_VEL_NORM_LIMIT = 2.0
_VEL_PHYS_MIN_MAX = 100.0
_SEIS_NORM_LIMIT = 10.0
_EXAMPLES = 4   # test samples kept (with predictions) for the figure


# ---- data access -----------------------------------------------------------
def _is_dataset(src) -> bool:
    return hasattr(src, "seismic") and hasattr(src, "velocity") and hasattr(src, "__len__") and callable(
        getattr(src, "seismic"))


def _self_normalizing(ds) -> bool:
    base = getattr(ds, "base", ds)   # a Subset reads through its base
    return getattr(base, "norm", None) is not None


class _Pairs:
    """Normalised, time-subsampled batches of one pair source."""

    def __init__(self, src, name, cfg, norm, subsample):
        self.name = name
        if _is_dataset(src):
            if getattr(src, "velocity_only", False) or getattr(getattr(src, "base", None), "velocity_only", False):
                raise ValueError(f"{name}: a velocity-only dataset has no seismic records to train/test on")
            self.n = len(src)
            self._seis, self._vel = src.seismic, src.velocity
            self.normalize = None if _self_normalizing(src) else norm
            if self.n == 0:
                raise ValueError(f"{name}: holds no samples")
            seis_shape = tuple(self._seis([0]).shape[1:])
            vel_shape = tuple(self._vel([0]).shape[1:])
        elif isinstance(src, (tuple, list)) and len(src) == 2:
            s, v = src
            for a, what in ((s, "seismic"), (v, "velocity")):
                if not hasattr(a, "shape") or not hasattr(a, "__getitem__"):
                    raise TypeError(f"{name}: {what} must be an array or memmap, got {type(a).__name__}")
                if len(a.shape) != 4:
                    raise ValueError(f"{name}: {what} must be 4-D (N, C, H, W), got shape {tuple(a.shape)}")
                if np.dtype(a.dtype).kind not in "fiu":
                    raise TypeError(f"{name}: {what} must be a real numeric array, got dtype {a.dtype}")
            if s.shape[0] != v.shape[0]:
                raise ValueError(f"{name}: {s.shape[0]} seismic records but {v.shape[0]} velocity maps")
            self.n = int(s.shape[0])
            self._seis = lambda idx, s=s: np.asarray(s[idx], np.float32)
            self._vel = lambda idx, v=v: np.asarray(v[idx], np.float32)
            self.normalize = norm
            seis_shape, vel_shape = tuple(s.shape[1:]), tuple(v.shape[1:])
            if self.n == 0:
                raise ValueError(f"{name}: holds no samples")
        else:
            raise TypeError(f"{name}: expected a (seismic, velocity) pair of arrays or a ubdiff.data dataset, "
                            f"got {type(src).__name__}")
        if vel_shape != (1, 70, 70):
            raise ValueError(f"{name}: velocity maps must be (1, 70, 70), got {vel_shape}")
        want = (cfg["in_channels"], cfg["nx"])
        if len(seis_shape) != 3 or (seis_shape[0], seis_shape[2]) != want:
            raise ValueError(f"{name}: seismic records must be ({want[0]}, nt, {want[1]}) for this InversionNet "
                             f"config, got {seis_shape}")
        nt = seis_shape[1]
        if subsample == "auto":
            try:
                self.k = subsample_factor(nt, cfg["nt"])
            except ValueError as e:
                raise ValueError(f"{name}: records have {nt} time samples, the InversionNet config needs "
                                 f"{cfg['nt']} ({e})") from None
        else:
            self.k = int(subsample)
            if len(range(0, nt, self.k)) != cfg["nt"]:
                raise ValueError(f"{name}: {nt} time samples subsampled by {self.k} give "
                                 f"{len(range(0, nt, self.k))}, the InversionNet config needs {cfg['nt']}")
        self.read(np.arange(min(self.n, 8)))   # fail early on wrong units or shapes

    def __len__(self):
        return self.n

    def read(self, idx):
        """(seismic, velocity) of an (ascending) index array, normalised, float32."""
        s = self._seis(idx)[:, :, ::self.k]
        v = self._vel(idx)
        if not (np.isfinite(s).all() and np.isfinite(v).all()):
            raise ValueError(f"{self.name}: non-finite values (NaN/Inf) in the samples {list(idx[:8])}...")
        if self.normalize is not None:
            self._check_physical(v)
            s, v = self.normalize.seismic(s), self.normalize.velocity(v)
        else:
            self._check_normalized(s, v)
        return np.ascontiguousarray(s, np.float32), np.ascontiguousarray(v, np.float32)

    def _check_physical(self, v):
        top = float(np.abs(v).max())
        if top < _VEL_PHYS_MIN_MAX:
            raise ValueError(f"{self.name}: velocity should be in m/s (normalized=False) but its largest "
                             f"magnitude is {top:.3g}; it looks normalised already: pass normalized=True")

    def _check_normalized(self, s, v):
        tv, ts = float(np.abs(v).max()), float(np.abs(s).max())
        if tv > _VEL_NORM_LIMIT:
            raise ValueError(f"{self.name}: normalised velocity reaches |v| = {tv:.4g}, far outside [-1, 1]: "
                             "it looks like m/s; pass normalized=False with the dataset constants")
        if ts > _SEIS_NORM_LIMIT:
            raise ValueError(f"{self.name}: normalised seismic reaches |s| = {ts:.4g}, far outside [-1, 1]: "
                             "it looks like physical amplitudes; pass normalized=False with the dataset constants")


def _normalizer(normalized, dataset, data_range, velocity_range):
    """A ubdiff.data Normalizer for physical inputs, None for normalised ones."""
    if normalized:
        if dataset is not None or data_range is not None or velocity_range is not None:
            raise ValueError("normalized=True: dataset / data_range / velocity_range are for physical "
                             "inputs only; drop them or pass normalized=False")
        return None
    from ..data import Normalizer, openfwi
    info = None
    if dataset is not None:
        info = openfwi.load_info(dataset) if isinstance(dataset, str) else dataset
    if data_range is not None:
        lo, hi = _norm.seismic_range(data_range=data_range)
    elif info is not None:
        get = info.get if isinstance(info, dict) else (lambda k: getattr(info, k))
        lo, hi = float(get("data_min")), float(get("data_max"))
    else:
        raise ValueError("physical inputs (normalized=False) need the seismic data_min/data_max: pass "
                         "dataset=<OpenFWI family, DatasetInfo or folder made by ubdiff> or data_range=(min, max); "
                         "or pass normalized=True for arrays already in [-1, 1]")
    if velocity_range is not None:
        vlo, vhi = float(velocity_range[0]), float(velocity_range[1])
    elif info is not None:
        get = info.get if isinstance(info, dict) else (lambda k: getattr(info, k))
        vlo, vhi = float(get("label_min")), float(get("label_max"))
    else:
        vlo, vhi = _norm.VELOCITY_RANGE
    if not vhi > vlo:
        raise ValueError(f"velocity_range must have max > min, got {(vlo, vhi)}")
    return Normalizer({"data_min": lo, "data_max": hi, "label_min": vlo, "label_max": vhi})


def open_pairs_folder(folder: str, max_samples: int | None = None):
    """Memory-mapped (seismic, velocity) pairs of a folder in OpenFWI layout
    (model*/data*.npy or vel*/seis*.npy, or a dataset made by ubdiff), in
    physical units; at most max_samples of them (the first ones)."""
    from ..data import OpenFWIDataset, openfwi
    from ..data.dataset import folder_files
    from ..data.npyio import open_npy
    if openfwi.has_meta(folder):
        ds = OpenFWIDataset.from_folder(folder)
    else:
        pairs = folder_files(folder)
        # records may be time-subsampled: take the sample shape from the first seismic file
        shape = tuple(open_npy(pairs[0][0], what="seismic", ndim=4).shape[1:])
        ds = OpenFWIDataset(pairs, seismic_shape=shape)
    if max_samples is not None and max_samples < len(ds):
        ds = ds.subset(np.arange(max_samples))
    return ds


# ---- training and testing --------------------------------------------------
def _progress(it, total, desc, enabled):
    if not enabled:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, total=total, desc=desc, leave=False)


def _train(pairs, config, epochs, batch_size, lr, seed, opt, progress, desc, device="auto"):
    """InversionNet.fit's loop over a batch reader: seeded permutation per
    epoch (seed + epoch), sorted batch indices, final partial batch dropped."""
    from ..models import InversionNet
    n = len(pairs)
    bs = min(int(batch_size), n)
    if bs < 2:
        raise ValueError(f"{pairs.name}: needs at least 2 samples per batch (BatchNorm batch statistics), "
                         f"has {n} samples")
    model = InversionNet(config, seed=seed, max_batch=bs, device=device)
    nb, history = n // bs, []
    for epoch in range(epochs):
        order = np.random.default_rng(seed + epoch).permutation(n)
        total = 0.0
        bar = _progress(range(nb), nb, f"{desc} epoch {epoch + 1}/{epochs}", progress)
        for i in bar:
            s, v = pairs.read(np.sort(order[i * bs:(i + 1) * bs]))
            total += model.train_step(s, v, lr=lr, **opt)[0]
            if progress:
                bar.set_postfix(loss=f"{total / (i + 1):.4f}")
        history.append(total / nb)
    return model, history


def _metrics_of(pred, true) -> dict:
    """Per-sample SSIM / MAE / MSE of predicted against true normalised velocity maps."""
    return {"ssim": _ssim(pred, true, reduction="none"), "mae": _mae(pred, true, reduction="none"),
            "mse": _mse(pred, true, reduction="none")}


def _test(model, test, batch_size, progress, desc, client=None, threads=None):
    """Per-sample SSIM / MAE / MSE of the model's predictions on the test pairs,
    plus the predictions of the first _EXAMPLES samples (client: on a Dask cluster,
    in shards of whole batches)."""
    if client is not None:
        from ..distributed.eval_shards import predict_sharded
        return predict_sharded(client, model, test, batch_size, _EXAMPLES, threads=threads, progress=progress,
                               desc=desc)
    n, per = len(test), {"ssim": [], "mae": [], "mse": []}
    keep = []
    starts = range(0, n, batch_size)
    for s0 in _progress(starts, len(starts), desc, progress):
        s, v = test.read(np.arange(s0, min(n, s0 + batch_size)))
        p = model.predict(s, batch_size=batch_size, progress=False)
        for k, val in _metrics_of(p, v).items():
            per[k].append(val)
        if s0 < _EXAMPLES:
            keep.append(p[:_EXAMPLES - s0])
    per = {k: np.concatenate(v) for k, v in per.items()}
    return per, np.concatenate(keep)[:_EXAMPLES]


def _check_int(v, name, lo=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"inversion_usefulness: {name} must be an int >= {lo}, got {v!r}")
    return int(v)


def inversion_usefulness(generated, real_test, real_train_pairs=None, *, config="small", epochs: int = 2,
                         batch_size: int = 16, lr: float = 1e-4, seed: int = 0, normalized: bool = False,
                         dataset=None, data_range=None, velocity_range=None, subsample="auto",
                         optimizer: dict | None = None, eval_batch_size: int | None = None,
                         progress: bool = True, return_models: bool = False, client=None,
                         threads: int | None = None, device: str = "auto") -> dict:
    """Table 3 protocol: InversionNet trained on `generated`, tested on `real_test`.

    Each of generated / real_test / real_train_pairs is a ``(seismic, velocity)``
    pair of arrays or memmaps ((N, 5, nt, 70), (N, 1, 70, 70)) or a
    ubdiff.data dataset (OpenFWIDataset / Subset; one that normalises itself,
    ``normalize=True``, is taken as normalised whatever `normalized` says).

    Units: ``normalized=False`` (default) means physical units (m/s, raw
    amplitudes), normalised here with `dataset` (an OpenFWI family name, a
    DatasetInfo / dict, or a folder made by ubdiff) and/or `data_range`
    (seismic min, max) and `velocity_range` (default the dataset's labels,
    else 1500..4500 m/s); ``normalized=True`` means already in [-1, 1].
    Values that contradict the stated units raise ValueError.

    `config`: InversionNet config ("small", "paper" or a dict); records whose
    nt is a multiple of the config's are subsampled in time (``subsample=
    "auto"``, or an explicit factor). `optimizer`: extra train_step arguments
    (betas, eps, weight_decay, l1_weight, mse_weight). Both trainings start
    from the same seeded initialisation and visit batches in the same seeded
    orders, so results are reproducible for a given seed (and thread count,
    up to float rounding).

    Returns a dict: ``summary`` {"generated": {n_train, ssim, mae, mse}, and
    "real" when real_train_pairs is given}; ``generated`` / ``real`` with the
    training losses per epoch, seconds and per-sample test metrics;
    ``protocol`` (settings); ``examples`` (the first test samples' true maps
    and both predictions, normalised); ``models`` when return_models.

    client: a ``distributed.Client``; then the predictions on the test set run on its
    workers in shards of whole batches, with the same results (the training stays in
    this process: data-parallel training is ``train-inversionnet`` under MPI).
    device: where the InversionNets train and predict ("cpu", "cuda" or "auto": the GPU
    when one is usable); the protocol records the device used.
    """
    from ..models.inversionnet import count_parameters, resolve_config
    cfg = resolve_config(config)
    epochs = _check_int(epochs, "epochs")
    batch_size = _check_int(batch_size, "batch_size", 2)
    seed = _check_int(seed, "seed", 0)
    eval_bs = batch_size if eval_batch_size is None else _check_int(eval_batch_size, "eval_batch_size")
    try:
        lr_f = float(lr)
    except (TypeError, ValueError):
        lr_f = math.nan
    if not (math.isfinite(lr_f) and lr_f > 0):
        raise ValueError(f"inversion_usefulness: lr must be a positive number, got {lr!r}")
    lr = lr_f
    if subsample != "auto":
        _check_int(subsample, "subsample")
    if not isinstance(device, str) or device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"inversion_usefulness: device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    opt = dict(optimizer or {})
    allowed = {"betas", "eps", "weight_decay", "l1_weight", "mse_weight"}
    if set(opt) - allowed:
        raise ValueError(f"inversion_usefulness: unknown optimizer keys {sorted(set(opt) - allowed)}; "
                         f"allowed: {sorted(allowed)}")

    norm = _normalizer(normalized, dataset, data_range, velocity_range)
    sources = {"generated": _Pairs(generated, "generated", cfg, norm, subsample),
               "real_test": _Pairs(real_test, "real_test", cfg, norm, subsample)}
    if real_train_pairs is not None:
        sources["real"] = _Pairs(real_train_pairs, "real_train_pairs", cfg, norm, subsample)
    test = sources["real_test"]

    out = {"protocol": {
        "config": config if isinstance(config, str) else "custom",
        "config_resolved": {**cfg, "dims": list(cfg["dims"])},
        "parameters": count_parameters(cfg), "epochs": epochs, "batch_size": batch_size, "lr": lr,
        "seed": seed, "n_test": len(test), "loss": "L1 + MSE, AdamW",
        "time_subsample": {k: p.k for k, p in sources.items()},
        "inputs": "normalised [-1, 1]" if norm is None else
                  {"data_min": norm.data_min, "data_max": norm.data_max,
                   "label_min": norm.label_min, "label_max": norm.label_max},
        "note": "trained on each training set, tested on the real test set; MAE/MSE on velocity "
                "normalised to [-1, 1], SSIM on [0, 1] maps (OpenFWI convention)"}}
    out["summary"], models = {}, {}
    k = min(_EXAMPLES, len(test))
    out["examples"] = {"index": list(range(k)), "true": test.read(np.arange(k))[1]}
    for key in [k_ for k_ in ("generated", "real") if k_ in sources]:
        t0 = time.perf_counter()
        label = "generated pairs" if key == "generated" else "real pairs"
        model, history = _train(sources[key], cfg, epochs, batch_size, lr, seed, opt, progress,
                                f"InversionNet on {label}", device)
        out["protocol"]["device"] = model.device   # "auto" resolved
        per, pred = _test(model, test, eval_bs, progress, f"testing InversionNet ({label})", client, threads)
        means = {m: float(v.mean()) for m, v in per.items()}
        out[key] = {"n_train": len(sources[key]), **means, "train_steps": model.step, "train_loss": history,
                    "seconds": time.perf_counter() - t0,
                    **{f"{m}_per_sample": v for m, v in per.items()}}
        out["summary"][key] = {"n_train": len(sources[key]), **means}
        out["examples"][key] = pred
        models[key] = model
    if return_models:
        out["models"] = models
    return out


# ---- figure ------------------------------------------------------------------
def plot_inversion_examples(result: dict, n: int = _EXAMPLES, title: str = "InversionNet on the real test set"):
    """True test velocity maps (top row) and the predictions of the networks
    trained on generated pairs and on real pairs (one row each), normalised."""
    from .report import _plt
    plt = _plt()
    ex = result["examples"]
    rows = [("true", ex["true"])] + [(f"trained on {k}", ex[k]) for k in ("generated", "real") if k in ex]
    cols = min(n, len(ex["true"]))
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.7 * cols + 0.9, 1.7 * len(rows) + 0.4), squeeze=False)
    im = None
    for r, (label, maps) in enumerate(rows):
        for c in range(cols):
            ax = axes[r, c]
            im = ax.imshow(np.asarray(maps[c, 0]), cmap="viridis", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=7)
            if r == 0:
                ax.set_title(f"test {ex['index'][c]}", fontsize=7)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03, label="normalised velocity")
    fig.suptitle(title, fontsize=9)
    return fig
