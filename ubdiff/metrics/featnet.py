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

Devices: ``device="cpu" | "cuda" | "auto"`` (default "auto": the GPU when this
build has CUDA and one is visible). The C model runs every op there; inputs and
outputs are NumPy arrays that cross over once per call. On the CPU `params`,
`grads`, `adam_m`, `adam_v` and `stats` are dicts of zero-copy views (writes
go to the model); on a GPU they are copies, and :meth:`FeatureNet.get_tensor`
/ :meth:`FeatureNet.set_tensor` reach the model on any device. Checkpoints
hold the same bytes whichever device wrote them.

:meth:`FeatureNet.backward` differentiates the activations of the last
training forward. Every call that changes the weights or statistics
(``set_tensor``, ``train_step``, ``apply_gradients``) makes the model forget
them, so a following backward raises until a new ``forward(..., train=True)``
ran. A write through a CPU view is not seen (it cannot be, cheaply): after one,
forward again before backward, or the gradients are those of the old weights.
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


DEVICES = ("auto", "cpu", "cuda")
KINDS = ("param", "grad", "m", "v", "stats")  # stats: BatchNorm running mean / variance


class FeatureNet:
    """A feature CNN with its parameters, Adam state and BatchNorm statistics in C buffers
    on `device` ("cpu", "cuda" or "auto": the GPU when one is usable).

    `params`, `grads`, `adam_m`, `adam_v`, `stats` are dicts name -> array: on
    the CPU zero-copy views (writing to them changes the model, unseen by a saved
    forward: forward again before backward), on a GPU copies (write with set_tensor). Inputs are float32 (B, C, H, W) batches
    already normalised to [-1, 1]; longer inputs are processed max_batch at a time.
    """

    def __init__(self, config: dict, seed: int = 0, device: str = "auto"):
        if device not in DEVICES:
            raise ValueError(f"FeatureNet: device must be 'cpu', 'cuda' or 'auto', got {device!r}")
        self.config = normalize_config(config)
        self.seed = int(seed)
        self._h = lib.featnet_create(_native_config(self.config), self.seed, device)
        pspec, sspec, self.feature_dim, self.block_sizes, _ = lib.featnet_info(self._h)
        self._pshapes = {n: tuple(s) for n, s, _ in pspec}  # name -> shape, state_dict order
        self._sshapes = {n: tuple(s) for n, s, _ in sspec}
        self._pnames, self._snames = list(self._pshapes), list(self._sshapes)
        self._n_params = sum(int(np.prod(s)) for s in self._pshapes.values())
        self._views = None
        if self.device == "cpu":  # views once: the dicts are the model's tensors
            self._views = {k: self._tensors(k) for k in KINDS}
        self.meta: dict = {}

    @property
    def device(self) -> str:
        """"cpu" or "cuda": where the model's memory and ops are."""
        return lib.featnet_device(self._h)

    def _tensors(self, kind) -> dict:
        names = self._snames if kind == "stats" else self._pnames
        if self.device == "cpu":
            return {n: lib.featnet_view(self._h, kind, n) for n in names}
        return {n: lib.featnet_get(self._h, kind, n) for n in names}

    def _dict(self, kind) -> dict:
        return self._views[kind] if self._views is not None else self._tensors(kind)

    @property
    def params(self) -> dict:
        return self._dict("param")

    @property
    def grads(self) -> dict:
        return self._dict("grad")

    @property
    def adam_m(self) -> dict:
        return self._dict("m")

    @property
    def adam_v(self) -> dict:
        return self._dict("v")

    @property
    def stats(self) -> dict:
        return self._dict("stats")

    def get_tensor(self, name: str | None = None, kind: str = "param") -> np.ndarray:
        """A copy of one tensor, or of the whole flat buffer when name is None.
        kind: param, grad, m, v (AdamW moments) or stats (BatchNorm statistics)."""
        if kind not in KINDS:
            raise ValueError(f"FeatureNet: kind must be one of {KINDS}, got {kind!r}")
        return lib.featnet_get(self._h, kind, name)

    def set_tensor(self, name: str | None, value, kind: str = "param") -> None:
        """Copies `value` (the tensor's shape; name None: the whole flat buffer) into the model."""
        if kind not in KINDS:
            raise ValueError(f"FeatureNet: kind must be one of {KINDS}, got {kind!r}")
        lib.featnet_set(self._h, kind, name, f32(value, name if name is not None else f"the {kind} buffer"))

    # ---- shapes ------------------------------------------------------------
    @property
    def in_shape(self) -> tuple:
        return tuple(self.config["in_shape"])

    @property
    def n_params(self) -> int:
        return self._n_params

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
        Returns the batch's losses and accuracy before the update.
        The same as zero_grad(); accumulate(...); apply_gradients(...)."""
        x = self._check(x)
        labels = np.asarray(labels)
        rt = None if reg_target is None else f32(reg_target, "reg_target")
        loss, xent, mse, acc = lib.featnet_train_step(self._h, x, labels, rt, float(lr), float(betas[0]),
                                                      float(betas[1]), float(eps), float(weight_decay),
                                                      float(w_reg))
        return {"loss": loss, "xent": xent, "mse": mse, "accuracy": acc}

    def zero_grad(self) -> None:
        lib.featnet_zero(self._h, "grad")

    def accumulate(self, x, labels, reg_target=None, w_reg: float = 1.0) -> dict:
        """The first half of train_step: forward, losses and backward of a batch;
        parameter gradients add up (+=) until zero_grad. Returns the batch's losses."""
        x = self._check(x)
        rt = None if reg_target is None else f32(reg_target, "reg_target")
        loss, xent, mse, acc = lib.featnet_accumulate(self._h, x, np.asarray(labels), rt, float(w_reg))
        return {"loss": loss, "xent": xent, "mse": mse, "accuracy": acc}

    def apply_gradients(self, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                        weight_decay: float = 1e-4) -> None:
        """The second half of train_step: one AdamW step with the gradients as they are
        (e.g. after an all-reduce of get_tensor(kind="grad") across workers)."""
        lib.featnet_apply(self._h, float(lr), float(betas[0]), float(betas[1]), float(eps), float(weight_decay))

    # ---- checkpoints -------------------------------------------------------
    def state_dict(self, optimizer: bool = False) -> dict:
        """Copies of parameters and statistics (and the AdamW moments when `optimizer`)."""
        d = {n: self.get_tensor(n, "param") for n in self._pnames}
        d.update({n: self.get_tensor(n, "stats") for n in self._snames})
        if optimizer:
            d.update({f"adam_m.{n}": self.get_tensor(n, "m") for n in self._pnames})
            d.update({f"adam_v.{n}": self.get_tensor(n, "v") for n in self._pnames})
        return d

    def save(self, path: str, meta: dict | None = None, optimizer: bool = False) -> None:
        """safetensors checkpoint: parameters, BN statistics (and Adam state when
        `optimizer`), metadata {kind, config, step, seed, **meta}."""
        m = {**self.meta, **(meta or {})}
        m.update(kind=KIND, config=self.config, step=self.step, seed=self.seed, optimizer=bool(optimizer))
        checkpoint.save(path, self.state_dict(optimizer), m)

    @classmethod
    def load(cls, path: str, device: str = "auto") -> "FeatureNet":
        """A network restored from save() on `device` (a checkpoint of either device loads on either)."""
        meta = checkpoint.read_meta(path)
        if meta.get("kind") != KIND:
            raise checkpoint.CheckpointError(f"{path}: holds a {meta.get('kind')!r} checkpoint, expected {KIND!r}")
        net = cls(meta["config"], seed=meta.get("seed", 0), device=device)
        expected = {**net._pshapes, **net._sshapes}
        if meta.get("optimizer"):
            expected.update({f"adam_m.{n}": s for n, s in net._pshapes.items()})
            expected.update({f"adam_v.{n}": s for n, s in net._pshapes.items()})
        tensors, meta = checkpoint.load(path, expected, kind=KIND)
        for n in net._pnames:
            net.set_tensor(n, tensors[n])
        for n in net._snames:
            net.set_tensor(n, tensors[n], "stats")
        if meta.get("optimizer"):
            for n in net._pnames:
                net.set_tensor(n, tensors[f"adam_m.{n}"], "m")
                net.set_tensor(n, tensors[f"adam_v.{n}"], "v")
            lib.featnet_set_step(net._h, int(meta.get("step", 0)))
        net.meta = {k: v for k, v in meta.items() if k not in ("kind", "config", "step", "seed", "optimizer",
                                                                "format")}
        return net

    def __repr__(self):
        return (f"FeatureNet(in_shape={self.in_shape}, feature_dim={self.feature_dim}, "
                f"parameters={self.n_params:,}, step={self.step}, device={self.device!r})")


# ---- the shipped reference networks -------------------------------------------
MODALITIES = ("velocity", "seismic")


def reference_path(modality: str, version: int = REFERENCE_VERSION) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    return os.path.join(WEIGHTS_DIR, f"featnet_{modality}_v{int(version)}.safetensors")


@lru_cache(maxsize=None)
def load_reference(modality: str, version: int = REFERENCE_VERSION, device: str = "auto") -> FeatureNet:
    """The shipped feature network of `modality` on `device` (loaded once per process and device)."""
    path = reference_path(modality, version)
    if not os.path.exists(path):
        raise FileNotFoundError(f"the reference {modality} feature network {path} is missing; rebuild it with "
                                f"scripts/train_feature_nets.py")
    return FeatureNet.load(path, device=device)


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
