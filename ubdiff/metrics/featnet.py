"""FeatureNet: the small CNN behind ubdiff's FID/KID (C core csrc/models/featnet.c).

    x (B, C, H, W) in [-1, 1] -> [Conv2d -> BatchNorm -> ReLU] blocks -> global
    average pooling -> feature (B, F)  (what FID/KID use)
                              -> Linear "cls" (family logits), Linear "reg" (optional)

ubdiff ships one trained net per modality (ubdiff/weights/featnet_<modality>_v<N>
.safetensors, rebuilt by scripts/train_feature_nets.py); :func:`load_reference`
loads them. The paper's FID used an ImageNet Inception network whose weights
are not available here, so FID values computed with these nets are on a
different scale and NOT comparable with the paper's numbers — only with other
numbers computed with the same network version.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from .. import checkpoint
from .._native import lib
from ..ops import f32

KIND = "featnet"
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
REFERENCE_VERSION = 1

DEFAULTS = dict(n_reg=0, max_batch=32, bn_momentum=0.1, bn_eps=1e-5)


def _block(b):
    b = tuple(int(v) for v in b)
    if len(b) != 7:
        raise ValueError(f"FeatureNet block must be (OC, KH, KW, SH, SW, PH, PW), got {b}")
    return b


def normalize_config(config: dict) -> dict:
    """A complete, JSON-able config: in_shape (C, H, W), blocks [(OC, KH, KW, SH, SW, PH, PW)],
    n_classes, and optional n_reg, max_batch, bn_momentum, bn_eps."""
    missing = {"in_shape", "blocks", "n_classes"} - set(config)
    if missing:
        raise ValueError(f"FeatureNet config lacks {sorted(missing)}")
    unknown = set(config) - {"in_shape", "blocks", "n_classes", *DEFAULTS}
    if unknown:
        raise ValueError(f"FeatureNet config: unknown keys {sorted(unknown)}")
    c = {**DEFAULTS, **config}
    shape = tuple(int(v) for v in c["in_shape"])
    if len(shape) != 3:
        raise ValueError(f"FeatureNet config: in_shape must be (C, H, W), got {c['in_shape']}")
    return {"in_shape": list(shape), "blocks": [list(_block(b)) for b in c["blocks"]],
            "n_classes": int(c["n_classes"]), "n_reg": int(c["n_reg"]), "max_batch": int(c["max_batch"]),
            "bn_momentum": float(c["bn_momentum"]), "bn_eps": float(c["bn_eps"])}


def _native_config(c: dict) -> tuple:
    C, H, W = c["in_shape"]
    return (C, H, W, tuple(tuple(b) for b in c["blocks"]), c["n_classes"], c["n_reg"], c["max_batch"],
            c["bn_momentum"], c["bn_eps"])


class FeatureNet:
    """A feature CNN with its parameters, Adam state and BatchNorm statistics in C buffers.

    `params`, `grads`, `stats` are dicts of zero-copy NumPy views (writing to
    them changes the model). Inputs are float32 (B, C, H, W) batches already
    normalised to [-1, 1]; longer inputs are processed max_batch at a time.
    """

    def __init__(self, config: dict, seed: int = 0):
        self.config = normalize_config(config)
        self.seed = int(seed)
        self._h = lib.featnet_create(_native_config(self.config), self.seed)
        pspec, sspec, self.feature_dim, self.block_sizes, _ = lib.featnet_info(self._h)
        self._flat = {k: lib.featnet_buffer(self._h, k) for k in ("param", "grad", "m", "v", "stats")}

        def views(flat, spec):
            return {n: flat[o:o + int(np.prod(s))].reshape(s) for n, s, o in spec}

        self.params = views(self._flat["param"], pspec)
        self.grads = views(self._flat["grad"], pspec)
        self.adam_m = views(self._flat["m"], pspec)
        self.adam_v = views(self._flat["v"], pspec)
        self.stats = views(self._flat["stats"], sspec)
        self.meta: dict = {}

    # ---- shapes ------------------------------------------------------------
    @property
    def in_shape(self) -> tuple:
        return tuple(self.config["in_shape"])

    @property
    def n_params(self) -> int:
        return int(self._flat["param"].size)

    @property
    def step(self) -> int:
        return int(lib.featnet_info(self._h)[4])

    def _check(self, x, what="x") -> np.ndarray:
        x = f32(x, what)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"FeatureNet: {what} must be (B, {', '.join(map(str, self.in_shape))}), "
                             f"got {x.shape}")
        return x

    # ---- compute -----------------------------------------------------------
    def forward(self, x, train: bool = False):
        """(features (B, F), logits (B, K), reg (B, R) or None) of one batch, B <= max_batch.
        train=True uses batch statistics (and updates the running ones)."""
        x = self._check(x)
        B = x.shape[0]
        feat = np.empty((B, self.feature_dim), np.float32)
        logits = np.empty((B, self.config["n_classes"]), np.float32)
        reg = np.empty((B, self.config["n_reg"]), np.float32) if self.config["n_reg"] else None
        lib.featnet_forward(self._h, x, feat, logits, reg, bool(train))
        return feat, logits, reg

    def backward(self, x, dfeat=None, dlogits=None, dreg=None):
        """Accumulates parameter gradients (into `grads`) of the last forward(x, train=True)."""
        x = self._check(x)
        conv = [None if d is None else f32(d, n) for d, n in ((dfeat, "dfeat"), (dlogits, "dlogits"), (dreg, "dreg"))]
        lib.featnet_backward(self._h, x, *conv)

    def _batches(self, n):
        mb = self.config["max_batch"]
        return range(0, n, mb)

    def features(self, x) -> np.ndarray:
        """Eval-mode pooled features (N, F) float32 of any number of samples."""
        n = len(x)
        out = np.empty((n, self.feature_dim), np.float32)
        mb = self.config["max_batch"]
        for s in self._batches(n):
            xb = self._check(x[s:s + mb])
            lib.featnet_forward(self._h, xb, out[s:s + len(xb)], None, None, False)
        return out

    __call__ = features

    def predict(self, x) -> np.ndarray:
        """Eval-mode class logits (N, K)."""
        n = len(x)
        out = np.empty((n, self.config["n_classes"]), np.float32)
        mb = self.config["max_batch"]
        for s in self._batches(n):
            xb = self._check(x[s:s + mb])
            lib.featnet_forward(self._h, xb, None, out[s:s + len(xb)], None, False)
        return out

    def accuracy(self, x, labels) -> float:
        return float(np.mean(np.argmax(self.predict(x), axis=1) == np.asarray(labels)))

    def train_step(self, x, labels, reg_target=None, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                   weight_decay: float = 1e-4, w_reg: float = 1.0) -> dict:
        """One AdamW step on a batch (B <= max_batch): loss = xent + w_reg * mse(reg, reg_target).
        Returns the batch's losses and accuracy before the update."""
        x = self._check(x)
        labels = np.asarray(labels)
        rt = None if reg_target is None else f32(reg_target, "reg_target")
        loss, xent, mse, acc = lib.featnet_train_step(self._h, x, labels, rt, float(lr), float(betas[0]),
                                                      float(betas[1]), float(eps), float(weight_decay),
                                                      float(w_reg))
        return {"loss": loss, "xent": xent, "mse": mse, "accuracy": acc}

    # ---- checkpoints -------------------------------------------------------
    def state_dict(self, optimizer: bool = False) -> dict:
        d = {n: v.copy() for n, v in self.params.items()}
        d.update({n: v.copy() for n, v in self.stats.items()})
        if optimizer:
            d.update({f"adam_m.{n}": v.copy() for n, v in self.adam_m.items()})
            d.update({f"adam_v.{n}": v.copy() for n, v in self.adam_v.items()})
        return d

    def save(self, path: str, meta: dict | None = None, optimizer: bool = False) -> None:
        """safetensors checkpoint: parameters, BN statistics (and Adam state when
        `optimizer`), metadata {kind, config, step, seed, **meta}."""
        m = {**self.meta, **(meta or {})}
        m.update(kind=KIND, config=self.config, step=self.step, seed=self.seed, optimizer=bool(optimizer))
        checkpoint.save(path, self.state_dict(optimizer), m)

    @classmethod
    def load(cls, path: str) -> "FeatureNet":
        meta = checkpoint.read_meta(path)
        if meta.get("kind") != KIND:
            raise checkpoint.CheckpointError(f"{path}: holds a {meta.get('kind')!r} checkpoint, expected {KIND!r}")
        net = cls(meta["config"], seed=meta.get("seed", 0))
        expected = {n: v.shape for n, v in net.params.items()}
        expected.update({n: v.shape for n, v in net.stats.items()})
        if meta.get("optimizer"):
            expected.update({f"adam_m.{n}": v.shape for n, v in net.params.items()})
            expected.update({f"adam_v.{n}": v.shape for n, v in net.params.items()})
        tensors, meta = checkpoint.load(path, expected, kind=KIND)
        for n, v in net.params.items():
            v[...] = tensors[n]
        for n, v in net.stats.items():
            v[...] = tensors[n]
        if meta.get("optimizer"):
            for n in net.params:
                net.adam_m[n][...] = tensors[f"adam_m.{n}"]
                net.adam_v[n][...] = tensors[f"adam_v.{n}"]
            lib.featnet_set_step(net._h, int(meta.get("step", 0)))
        net.meta = {k: v for k, v in meta.items() if k not in ("kind", "config", "step", "seed", "optimizer",
                                                                "format")}
        return net


# ---- the shipped reference networks -------------------------------------------
MODALITIES = ("velocity", "seismic")


def reference_path(modality: str, version: int = REFERENCE_VERSION) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    return os.path.join(WEIGHTS_DIR, f"featnet_{modality}_v{int(version)}.safetensors")


@lru_cache(maxsize=None)
def load_reference(modality: str, version: int = REFERENCE_VERSION) -> FeatureNet:
    """The shipped feature network of `modality` (loaded once per process)."""
    path = reference_path(modality, version)
    if not os.path.exists(path):
        raise FileNotFoundError(f"the reference {modality} feature network {path} is missing; rebuild it with "
                                f"scripts/train_feature_nets.py")
    return FeatureNet.load(path)


def reference_name(modality: str, version: int = REFERENCE_VERSION) -> str:
    """The name reports give a reference network, e.g. 'ubdiff-featnet-velocity-v1'."""
    return f"ubdiff-featnet-{modality}-v{int(version)}"


def reference_info(modality: str, version: int = REFERENCE_VERSION) -> dict:
    """Name, version, file and recorded held-out accuracy of a shipped network (for reports)."""
    net = load_reference(modality, version)
    return {"name": reference_name(modality, version), "version": int(version),
            "file": os.path.basename(reference_path(modality, version)), "feature_dim": net.feature_dim,
            "input_shape": list(net.in_shape), "heldout_accuracy": net.meta.get("heldout_accuracy"),
            "note": "ubdiff's own feature CNN, not the paper's Inception network: values are comparable only "
                    "with values computed with the same network version"}


def seismic_adapter(net: FeatureNet):
    """A features callable for normalised seismic (B, shots, nt, receivers) whose nt
    is an integer multiple of the net's: subsamples time by that factor (the net
    was trained on records simulated at nt = 1000 and subsampled ::4)."""
    C, NT, NX = net.in_shape

    def features(x):
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1] != C or x.shape[3] != NX:
            raise ValueError(f"seismic features: expected (B, {C}, nt, {NX}) records, got {x.shape}")
        nt = x.shape[2]
        if nt % NT != 0:
            raise ValueError(f"seismic features: the reference network takes nt = {NT} time samples (records "
                             f"of 1000 samples subsampled ::4); nt = {nt} is not an integer multiple of {NT}")
        return net.features(x[:, :, ::nt // NT])

    return features
