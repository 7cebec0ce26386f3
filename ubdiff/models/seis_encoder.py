"""The seismic encoder of the baselines SD-seismic and MT-Diffusion (issue 11).

An InversionNet-style convolutional encoder: normalised seismic records
(N, shots, nt, nx) -> a latent z (N, latent) in (-1, 1), the same latent the
UB-Diff encoder E gives a velocity map, so the UB-Diff heads, decoders and
latent diffusion take it unchanged. Its layers are InversionNet's 14 encoder
blocks (convblock1 ... convblock8, Conv + BatchNorm + LeakyReLU 0.2), taken
from the one InversionNet layout in the C core, with dim5 = latent and Tanh
on convblock8 (as E's last block). The layer table and parameter count are in
csrc/models/seis_encoder.h (paper: 4,842,304 parameters).

Configurations: ``"paper"`` (dims 32, 64, 128, 256; latent 128; input
5 x 1000 x 70), ``"small"`` (dims 8, 16, 32, 64; latent 32; input 5 x 250 x 70,
matching the autoencoder's "small"), or a dict of overrides with ``base``.
Keys: base, dims, latent, in_channels, nt, nx, slope, bn_momentum, bn_eps.

Training is driven from outside (the encoder has no loss of its own):
``encode(seis, training=True)``, then ``backward(dz, seis)`` with dz = dl/dz
from whatever consumes z (ubdiff.baselines), then ``apply_update`` (AdamW).
Devices as InversionNet's: "cpu" | "cuda" | "auto"; parameters are views on
the CPU, copies on a GPU; checkpoints go through get/set and load on either.
``backward`` differentiates the activations of the last training encode: every
call that changes the weights or statistics (``set_tensor``, ``load_tensors``,
``apply_update``, ``init``) makes the model forget them, so a following backward
raises until a new ``encode(..., training=True)`` ran. A write through a CPU view
is not seen (it cannot be, cheaply): after one, encode again before backward.
"""
from __future__ import annotations

import math

import numpy as np

from .. import checkpoint
from .._native import lib
from ..ops import f32
from ._args import adam_args, seed_arg

__all__ = ["SeismicEncoder", "PRESETS", "PAPER_NUM_PARAMETERS"]

KIND = "seismic_encoder"
DEVICES = ("auto", "cpu", "cuda")
KINDS = ("param", "grad", "m", "v", "stats")
PAPER_NUM_PARAMETERS = 4_842_304  # the layer table of csrc/models/seis_encoder.h

PRESETS = {
    "paper": {"dims": (32, 64, 128, 256), "latent": 128, "in_channels": 5, "nt": 1000, "nx": 70},
    "small": {"dims": (8, 16, 32, 64), "latent": 32, "in_channels": 5, "nt": 250, "nx": 70},
}
_DEFAULTS = {"slope": 0.2, "bn_momentum": 0.1, "bn_eps": 1e-5}
_KEYS = ("dims", "latent", "in_channels", "nt", "nx", "slope", "bn_momentum", "bn_eps")


def _pos_int(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
        raise ValueError(f"SeismicEncoder: {name} must be a positive int, got {v!r}")
    return int(v)


def resolve_config(config="paper") -> dict:
    """The full config dict of a preset name or an override dict."""
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"SeismicEncoder: unknown config {config!r}; choose from {sorted(PRESETS)} or a dict")
        return {**PRESETS[config], **_DEFAULTS}
    if not isinstance(config, dict):
        raise TypeError(f"SeismicEncoder: config must be a preset name or a dict, got {type(config).__name__}")
    extra = set(config) - set(_KEYS) - {"base"}
    if extra:
        raise ValueError(f"SeismicEncoder: unknown config keys {sorted(extra)}; allowed: base, {', '.join(_KEYS)}")
    cfg = resolve_config(config.get("base", "paper"))
    cfg.update({k: v for k, v in config.items() if k != "base"})
    dims = tuple(cfg["dims"])
    if len(dims) != 4:
        raise ValueError(f"SeismicEncoder: dims must be 4 positive ints (dim1..dim4), got {cfg['dims']!r}")
    cfg["dims"] = tuple(_pos_int(d, "dims") for d in dims)
    for k in ("latent", "in_channels", "nt", "nx"):
        cfg[k] = _pos_int(cfg[k], k)
    for k in ("slope", "bn_momentum", "bn_eps"):
        cfg[k] = float(cfg[k])
    return cfg


def config_for_autoencoder(ae_config: dict) -> dict:
    """The seismic encoder matching a co-latent autoencoder config: its widths
    dim1..dim4, its latent, its record shape (shots, nt, nr)."""
    return resolve_config({"dims": tuple(int(ae_config[k]) for k in ("dim1", "dim2", "dim3", "dim4")),
                           "latent": int(ae_config["latent"]), "in_channels": int(ae_config["shots"]),
                           "nt": int(ae_config["nt"]), "nx": int(ae_config["nr"])})


def _c_config(cfg: dict, max_batch: int) -> tuple:
    return (tuple(cfg["dims"]), cfg["latent"], cfg["in_channels"], cfg["nt"], cfg["nx"], int(max_batch),
            cfg["slope"], cfg["bn_momentum"], cfg["bn_eps"])


def layout(config="paper"):
    """(params, stats, blocks) of a config from the C core, allocating no model:
    params / stats [(name, shape, offset)]; blocks [(name, C, OC, H, W, KH, KW,
    SH, SW, PH, PW, OH, OW, activation)]."""
    return lib.seisenc_layout(_c_config(resolve_config(config), 1))


def count_parameters(config="paper") -> int:
    params, _, _ = layout(config)
    return sum(math.prod(s) for _, s, _ in params)


class SeismicEncoder:
    """The seismic encoder on the C core (see the module docstring)."""

    def __init__(self, config="paper", seed: int = 0, max_batch: int = 8, device: str = "auto"):
        seed = seed_arg(seed, "SeismicEncoder: seed")
        if isinstance(max_batch, bool) or not isinstance(max_batch, (int, np.integer)) or max_batch < 1:
            raise ValueError(f"SeismicEncoder: max_batch must be a positive int, got {max_batch!r}")
        if device not in DEVICES:
            raise ValueError(f"SeismicEncoder: device must be 'cpu', 'cuda' or 'auto', got {device!r}")
        self.config = resolve_config(config)
        self.max_batch = int(max_batch)
        self._h = lib.seisenc_create(_c_config(self.config, self.max_batch), seed, device)
        params, stats, _ = lib.seisenc_layout(_c_config(self.config, 1))
        self._shapes = {n: tuple(s) for n, s, _ in params}
        self._stat_shapes = {n: tuple(s) for n, s, _ in stats}
        self._n_params = sum(math.prod(s) for s in self._shapes.values())

    # ---- structure and tensors -------------------------------------------------
    @property
    def device(self) -> str:
        return lib.seisenc_device(self._h)

    @property
    def latent_dim(self) -> int:
        return self.config["latent"]

    @property
    def input_shape(self) -> tuple:
        c = self.config
        return (c["in_channels"], c["nt"], c["nx"])

    @property
    def step(self) -> int:
        """AdamW steps taken."""
        return lib.seisenc_step(self._h)

    def num_parameters(self) -> int:
        return self._n_params

    def parameter_names(self) -> list:
        return list(self._shapes)

    def buffer_names(self) -> list:
        return list(self._stat_shapes)

    def _kind(self, kind):
        if kind not in KINDS:
            raise ValueError(f"SeismicEncoder: kind must be one of {KINDS}, got {kind!r}")
        return kind

    def _tensors(self, kind, names) -> dict:
        if self.device == "cpu":
            return {n: lib.seisenc_view(self._h, kind, n) for n in names}
        return {n: lib.seisenc_get(self._h, kind, n) for n in names}

    def parameters(self) -> dict:
        """name -> parameter: a zero-copy view on the CPU (writes unseen by a saved
        forward: encode again before backward), a copy on a GPU."""
        return self._tensors("param", self._shapes)

    def gradients(self) -> dict:
        return self._tensors("grad", self._shapes)

    def buffers(self) -> dict:
        """name -> BatchNorm running mean / variance (view on the CPU, copy on a GPU)."""
        return self._tensors("stats", self._stat_shapes)

    def get_tensor(self, name: str | None = None, kind: str = "param") -> np.ndarray:
        """A copy of one tensor (or the whole flat buffer, name None)."""
        return lib.seisenc_get(self._h, self._kind(kind), name)

    def set_tensor(self, name: str | None, value, kind: str = "param") -> None:
        label = name if name is not None else f"the {kind} buffer"
        lib.seisenc_set(self._h, self._kind(kind), name, f32(value, label))

    def zero_grad(self) -> None:
        lib.seisenc_zero(self._h, "grad")

    def init(self, seed: int = 0) -> None:
        """PyTorch-default initialisation (Philox seed); resets AdamW state and step."""
        lib.seisenc_init(self._h, seed_arg(seed, "SeismicEncoder: seed"))

    # ---- computation -----------------------------------------------------------
    def _seis(self, seis) -> np.ndarray:
        x = f32(seis, "seis")
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            raise ValueError(f"SeismicEncoder: seis must have shape (B, {', '.join(map(str, self.input_shape))}), "
                             f"got {x.shape}")
        if not 1 <= x.shape[0] <= self.max_batch:
            raise ValueError(f"SeismicEncoder: a batch of {x.shape[0]} records; the model takes 1..{self.max_batch} "
                             "(max_batch) per call")
        return x

    def encode(self, seis, training: bool = False) -> np.ndarray:
        """z (B, latent) of normalised records (B, shots, nt, nx), B <= max_batch.
        training=True: batch statistics (B >= 2), running ones updated, and what
        backward needs is kept."""
        x = self._seis(seis)
        z = np.empty((x.shape[0], self.latent_dim), np.float32)
        lib.seisenc_forward(self._h, z, x, bool(training))
        return z

    def encode_all(self, seis, batch_size: int | None = None) -> np.ndarray:
        """Eval-mode z (N, latent) of any number of records, in batches."""
        bs = self.max_batch if batch_size is None else int(batch_size)
        n = len(seis)
        if n == 0:
            raise ValueError("SeismicEncoder.encode_all: no records")
        return np.concatenate([self.encode(np.asarray(seis[s:s + bs])) for s in range(0, n, bs)])

    def backward(self, dz, seis) -> None:
        """Parameter gradients += for dz (B, latent) = dl/dz, after encode(seis, training=True)."""
        x = self._seis(seis)
        lib.seisenc_backward(self._h, f32(dz, "dz"), x)

    def apply_update(self, lr: float = 1e-4, betas=(0.9, 0.999), eps: float = 1e-8,
                     weight_decay: float = 1e-4) -> None:
        """One AdamW step from the gradients as they stand."""
        lib.seisenc_apply_update(self._h, adam_args(lr, betas, eps, weight_decay))

    # ---- checkpoints -------------------------------------------------------------
    def state_dict(self) -> dict:
        """Copies of parameters and BatchNorm statistics (InversionNet's names)."""
        return {**{n: self.get_tensor(n, "param") for n in self._shapes},
                **{n: self.get_tensor(n, "stats") for n in self._stat_shapes}}

    def tensors(self, prefix: str = "") -> dict:
        """Everything a checkpoint holds (parameters, statistics, AdamW m and v), keys prefixed."""
        out = {prefix + n: v for n, v in self.state_dict().items()}
        for kind in ("m", "v"):
            out.update({f"{prefix}adam_{kind}.{n}": self.get_tensor(n, kind) for n in self._shapes})
        return out

    def expected(self, prefix: str = "") -> dict:
        """name -> shape of :meth:`tensors`."""
        out = {prefix + n: s for n, s in {**self._shapes, **self._stat_shapes}.items()}
        for kind in ("m", "v"):
            out.update({f"{prefix}adam_{kind}.{n}": s for n, s in self._shapes.items()})
        return out

    def load_tensors(self, tensors: dict, step: int, prefix: str = "") -> None:
        """Restores what :meth:`tensors` gave (and the AdamW step)."""
        for n in self._shapes:
            self.set_tensor(n, tensors[prefix + n], "param")
            self.set_tensor(n, tensors[f"{prefix}adam_m.{n}"], "m")
            self.set_tensor(n, tensors[f"{prefix}adam_v.{n}"], "v")
        for n in self._stat_shapes:
            self.set_tensor(n, tensors[prefix + n], "stats")
        lib.seisenc_step(self._h, int(step))

    def meta(self) -> dict:
        return {"kind": KIND, "config": {**self.config, "dims": list(self.config["dims"])}, "step": self.step}

    def save(self, path: str) -> None:
        """Parameters, statistics, AdamW moments and step to a safetensors checkpoint (atomic)."""
        checkpoint.save(path, self.tensors(), self.meta())

    @classmethod
    def load(cls, path: str, max_batch: int = 8, device: str = "auto") -> "SeismicEncoder":
        """A model restored from save() on `device`: the same outputs and training state."""
        meta = checkpoint.read_meta(path)
        if meta.get("kind") != KIND:
            raise checkpoint.CheckpointError(f"{path}: holds a {meta.get('kind')!r} checkpoint, expected {KIND!r}")
        try:
            model = cls(meta["config"], max_batch=max_batch, device=device)
        except (KeyError, TypeError, ValueError) as e:
            raise checkpoint.CheckpointError(f"{path}: bad SeismicEncoder config in metadata ({e})") from None
        tensors, _ = checkpoint.load(path, expected=model.expected(), kind=KIND)
        model.load_tensors(tensors, int(meta.get("step", 0)))
        return model

    def __repr__(self):
        c = self.config
        return (f"SeismicEncoder(dims={c['dims']}, latent={c['latent']}, input={self.input_shape}, "
                f"parameters={self._n_params:,}, step={self.step}, device={self.device!r})")
