"""The 2-D U-Net denoiser of the pixel-space DDPM baseline (the paper's "DDPM"
row of Table 4): lucidrains' denoising-diffusion-pytorch ``Unet`` as of its
release 1.8.0 -- the release whose ``Unet1D`` is the one the UB-Diff authors
vendored (plain convolutions, RMSNorm, no memory key/values).

The network (the C core, ``csrc/models/unet2d.h``): a 7x7 stem, a sinusoidal
time embedding and MLP, per level two ResNet blocks (GroupNorm, time
scale-shift modulation, SiLU) and an attention block -- linear attention
except at the levels flagged in ``full_attn`` (by default the lowest
resolution) -- then pixel-unshuffle + 1x1 conv down; a middle of ResNet, full
attention, ResNet; the mirror image up (nearest x2 + 3x3 conv) with skip
connections; a final ResNet block and 1x1 conv.

Maps. The n-1 downsamplings need sides divisible by 2^(n-1); maps of any
size are zero-padded to the next multiple inside the network and the output
is cropped back, so ``forward`` takes and returns (N, channels, height,
width). The paper's 70 x 70 velocity maps are padded to 72 x 72 (one cell per
side) for the 4 levels: 72 -> 36 -> 18 -> 9.

Configurations (``UNet2D(config=...)``):

* ``"paper"`` -- ``Unet(dim=64, dim_mults=(1, 2, 4, 8), channels=1)``:
  35,703,937 parameters.
* ``"small"`` -- ``Unet(dim=16, dim_mults=(1, 2, 4, 8), channels=1)``:
  2,430,241 parameters, for laptops and tests.

``heads`` and ``dim_head`` are 4 x 32 in every preset: release 1.8.0's
module fixes them (its attention blocks' defaults); other values are an
extension of ours for experiments, which that module cannot build.
* a dict of overrides on top of ``base`` ("paper" unless given), e.g.
  ``{"base": "small", "height": 16, "width": 16}``. Keys: base, dim,
  dim_mults, full_attn, channels, height, width, groups, heads, dim_head.

Parameter names are the keys of that module's ``state_dict`` with its shapes,
so :meth:`UNet2D.state_dict` loads into it with ``strict=True`` and
:meth:`UNet2D.load_state_dict` takes its weights.

Devices: ``device="cpu" | "cuda" | "auto"`` as for the other models; on the
CPU :meth:`parameters` and :meth:`gradients` are zero-copy views, on a GPU
copies. Checkpoints hold the same bytes whichever device wrote them.

:meth:`UNet2D.backward` differentiates the activations of the last forward.
Every call that changes the weights (``set_tensor`` / ``load_state_dict`` of
param or ema, ``train_step``, a larger batch than max_batch) makes the model
forget them, so a following backward raises until a new forward ran. A write
through a CPU view is not seen (it cannot be, cheaply): after one, forward
again before backward, or the gradients are those of the old weights.
"""
from __future__ import annotations

import math

import numpy as np

from .. import checkpoint
from .._native import lib
from ..ops import f32
from ._args import adam_args, float_arg, seed_arg

__all__ = ["UNet2D", "PRESETS", "resolve_config", "layout", "count_parameters"]

KIND = "unet2d"
DEVICES = ("auto", "cpu", "cuda")
KINDS = ("param", "grad", "m", "v", "ema")
MAX_LEVELS = 6

PRESETS = {
    "paper": {"dim": 64, "dim_mults": (1, 2, 4, 8), "full_attn": (False, False, False, True), "channels": 1,
              "height": 70, "width": 70, "groups": 8, "heads": 4, "dim_head": 32},
    "small": {"dim": 16, "dim_mults": (1, 2, 4, 8), "full_attn": (False, False, False, True), "channels": 1,
              "height": 70, "width": 70, "groups": 8, "heads": 4, "dim_head": 32},
}
_INT_KEYS = ("dim", "channels", "height", "width", "groups", "heads", "dim_head")
_KEYS = _INT_KEYS + ("dim_mults", "full_attn")


def _int(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"UNet2D: {what} must be an int, got {v!r}")
    return int(v)


def resolve_config(config="paper") -> dict:
    """The full config dict of a preset name or an override dict. A dict that
    changes dim_mults without giving full_attn gets the module's default:
    full attention at the last (lowest-resolution) level only."""
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"UNet2D: unknown config {config!r}; choose from {sorted(PRESETS)} or pass a dict")
        return {k: (tuple(v) if isinstance(v, tuple) else v) for k, v in PRESETS[config].items()}
    if not isinstance(config, dict):
        raise TypeError(f"UNet2D: config must be a preset name or a dict, got {type(config).__name__}")
    extra = set(config) - set(_KEYS) - {"base"}
    if extra:
        raise ValueError(f"UNet2D: unknown config keys {sorted(extra)}; allowed: base, {', '.join(_KEYS)}")
    cfg = resolve_config(config.get("base", "paper"))
    cfg.update({k: v for k, v in config.items() if k != "base"})
    for k in _INT_KEYS:
        cfg[k] = _int(cfg[k], k)
        if cfg[k] <= 0:
            raise ValueError(f"UNet2D: {k} must be positive, got {cfg[k]}")
    mults = cfg["dim_mults"]
    if isinstance(mults, (str, bytes)) or not hasattr(mults, "__len__") or not 1 <= len(mults) <= MAX_LEVELS:
        raise ValueError(f"UNet2D: dim_mults must be 1..{MAX_LEVELS} positive ints, got {mults!r}")
    cfg["dim_mults"] = tuple(_int(m, "dim_mults entry") for m in mults)
    if "dim_mults" in config and "full_attn" not in config:
        cfg["full_attn"] = (False,) * (len(mults) - 1) + (True,)
    full = cfg["full_attn"]
    if isinstance(full, (bool, np.bool_)):
        full = (bool(full),) * len(mults)  # cast_tuple, as the module does
    if not hasattr(full, "__len__") or len(full) != len(mults) or not all(
            isinstance(f, (bool, np.bool_)) or f in (0, 1) for f in full):
        raise ValueError(f"UNet2D: full_attn must be {len(mults)} booleans (one per level), got {full!r}")
    cfg["full_attn"] = tuple(bool(f) for f in full)
    return cfg


def _c_config(cfg: dict) -> tuple:
    return (cfg["dim"], tuple(cfg["dim_mults"]), tuple(int(f) for f in cfg["full_attn"]), cfg["channels"],
            cfg["height"], cfg["width"], cfg["groups"], cfg["heads"], cfg["dim_head"])


def layout(config="paper"):
    """(params, geometry) of a config, computed by the C core without a model:
    params [(name, shape)] in state_dict order; geometry {"padded": (PH, PW),
    "offset": (top, left)}: the map the network computes on and where the
    input sits in it."""
    params, (ph, pw, top, left) = lib.unet2d_layout(_c_config(resolve_config(config)))
    return params, {"padded": (ph, pw), "offset": (top, left)}


def count_parameters(config="paper") -> int:
    """Number of trainable parameters of a config (no model is allocated)."""
    params, _ = layout(config)
    return sum(math.prod(shape) for _, shape in params)


def _positive_int(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"UNet2D: {what} must be a positive int, got {v!r}")
    return int(v)


class UNet2D:
    """The 2-D U-Net on the C core. ``seed`` draws PyTorch's default
    initialisation from Philox streams; ``max_batch`` sizes the activation
    arena (it grows on demand); ``device`` is "cpu", "cuda" or "auto"."""

    def __init__(self, config="small", seed: int = 0, max_batch: int = 8, device: str = "auto"):
        seed = seed_arg(seed, "UNet2D: seed")
        self.max_batch = _positive_int(max_batch, "max_batch")
        if device not in DEVICES:
            raise ValueError(f"UNet2D: device must be 'cpu', 'cuda' or 'auto', got {device!r}")
        self.config = resolve_config(config)
        params, self.geometry = layout(self.config)
        self._shapes = {n: tuple(s) for n, s in params}
        self._names = [n for n, _ in params]
        self._h = lib.unet2d_create(_c_config(self.config), self.max_batch, int(seed), device)

    # ---- tensors -----------------------------------------------------------
    @property
    def device(self) -> str:
        """"cpu" or "cuda": where the model's memory and ops are."""
        return lib.unet2d_info(self._h)["device"]

    @property
    def step(self) -> int:
        """Adam steps taken by train_step."""
        return lib.unet2d_step(self._h)

    @property
    def map_shape(self) -> tuple:
        """(channels, height, width) of the maps forward takes and returns."""
        c = self.config
        return c["channels"], c["height"], c["width"]

    def num_parameters(self) -> int:
        return sum(math.prod(s) for s in self._shapes.values())

    def activation_bytes(self) -> int:
        """Bytes of the activation arena (for max_batch)."""
        return 4 * lib.unet2d_info(self._h)["activation_floats"]

    def _tensors(self, kind) -> dict:
        get = lib.unet2d_view if self.device == "cpu" else lib.unet2d_get
        return {n: get(self._h, kind, n) for n in self._names}

    def parameters(self, kind: str = "param") -> dict:
        """name -> float32 array of each parameter (kind "ema": the EMA copy):
        on the CPU a zero-copy view (writes go to the model, unseen by a saved
        forward: forward again before backward), on a GPU a copy."""
        self._kind(kind)
        return self._tensors(kind)

    def gradients(self) -> dict:
        """name -> each parameter's gradient (view on the CPU, copy on a GPU)."""
        return self._tensors("grad")

    @staticmethod
    def _kind(kind):
        if kind not in KINDS:
            raise ValueError(f"UNet2D: kind must be one of {KINDS}, got {kind!r}")

    def get_tensor(self, name: str | None = None, kind: str = "param") -> np.ndarray:
        """A copy of one tensor, or of the whole flat buffer when name is None."""
        self._kind(kind)
        return lib.unet2d_get(self._h, kind, name)

    def set_tensor(self, name: str | None, value, kind: str = "param") -> None:
        """Copies `value` (the tensor's shape; name None: the whole flat buffer) in."""
        self._kind(kind)
        lib.unet2d_set(self._h, kind, name, f32(value, name if name is not None else f"the {kind} buffer"))

    def zero_grad(self) -> None:
        lib.unet2d_zero(self._h, "grad")

    def state_dict(self, weights: str = "param") -> dict:
        """Copies of the parameters (weights="ema": the EMA copy) under the
        PyTorch module's state_dict keys."""
        if weights not in ("param", "ema"):
            raise ValueError(f"UNet2D.state_dict: weights must be 'param' or 'ema', got {weights!r}")
        return {n: self.get_tensor(n, weights) for n in self._names}

    def load_state_dict(self, state_dict, weights: str = "both") -> None:
        """Sets the parameters from a dict under the module's state_dict keys
        (NumPy arrays or anything np.asarray accepts; torch tensors via
        ``.numpy()``). weights: "param", "ema" or "both" (default: both, as a
        fresh model starts with EMA = parameters). Missing, unknown,
        mis-shaped or non-finite entries raise ValueError, before anything is set."""
        if weights not in ("param", "ema", "both"):
            raise ValueError(f"UNet2D.load_state_dict: weights must be 'param', 'ema' or 'both', got {weights!r}")
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"UNet2D.load_state_dict: expected a dict of arrays, got {type(state_dict).__name__}")
        given = set(state_dict.keys())
        missing, extra = sorted(set(self._names) - given), sorted(given - set(self._names))
        if missing or extra:
            parts = ([f"missing {len(missing)} keys (first: {missing[:3]})"] if missing else []) + \
                    ([f"unexpected {len(extra)} keys (first: {extra[:3]})"] if extra else [])
            raise ValueError(f"UNet2D.load_state_dict: the state_dict does not fit this config: {'; '.join(parts)}")
        values = {}
        for n in self._names:
            v = state_dict[n]
            a = np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
            if a.shape != self._shapes[n]:
                raise ValueError(f"UNet2D.load_state_dict: {n!r} has shape {a.shape}, the model expects "
                                 f"{self._shapes[n]}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"UNet2D.load_state_dict: {n!r} holds non-finite values")
            values[n] = a
        for n, a in values.items():
            for kind in (("param", "ema") if weights == "both" else (weights,)):
                self.set_tensor(n, a, kind)

    # ---- compute -------------------------------------------------------------
    def _maps(self, x, name):
        a = f32(x, name)
        want = self.map_shape
        if a.ndim != 4 or a.shape[1:] != want:
            raise ValueError(f"UNet2D: {name} must have shape (N, {want[0]}, {want[1]}, {want[2]}), got {a.shape}")
        if a.shape[0] == 0:
            raise ValueError(f"UNet2D: {name} holds no samples")
        return a

    def _times(self, t, n):
        a = f32(np.broadcast_to(np.asarray(t, np.float32), (n,)) if np.ndim(t) == 0 else t, "t")
        if a.shape != (n,):
            raise ValueError(f"UNet2D: t must be a scalar or have shape ({n},), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("UNet2D: t holds non-finite values")
        return a

    def _grow(self, batch: int):
        """Room for `batch` samples (only the activation arena moves)."""
        if batch > self.max_batch:
            lib.unet2d_reserve(self._h, int(batch))
            self.max_batch = int(batch)

    def forward(self, x, t, weights: str = "param") -> np.ndarray:
        """net(x, t): x (N, channels, height, width), t (N,) diffusion
        timesteps (or a scalar for all). weights "ema" runs the EMA copy."""
        x = self._maps(x, "x")
        t = self._times(t, x.shape[0])
        if weights not in ("param", "ema"):
            raise ValueError(f"UNet2D.forward: weights must be 'param' or 'ema', got {weights!r}")
        self._grow(x.shape[0])
        out = np.empty_like(x)
        lib.unet2d_forward(self._h, out, x, t, weights)
        return out

    def backward(self, dout, need_dx: bool = False):
        """Accumulates the parameter gradients of sum(output * dout) after a
        forward (weights="param") of the same batch; returns d/dx when asked."""
        d = self._maps(dout, "dout")
        dx = np.zeros_like(d) if need_dx else None
        lib.unet2d_backward(self._h, dx, d)
        return dx

    def train_step(self, x, t, target, lr: float = 1e-4, betas=(0.9, 0.99), eps: float = 1e-8,
                   weight_decay: float = 0.0, decoupled: bool = False, max_grad_norm: float = 1.0) -> tuple:
        """One regression step: MSE(net(x, t), target), backward, gradient-norm
        clipping at max_grad_norm (<= 0: none), Adam (decoupled=True: AdamW).
        Returns (loss, gradient norm before clipping)."""
        x = self._maps(x, "x")
        y = self._maps(target, "target")
        if y.shape != x.shape:
            raise ValueError(f"UNet2D.train_step: target has shape {y.shape}, x {x.shape}")
        t = self._times(t, x.shape[0])
        lr, b1, b2, eps, weight_decay = adam_args(lr, betas, eps, weight_decay)
        max_grad_norm = float_arg(max_grad_norm, "max_grad_norm")  # <= 0: no clipping
        self._grow(x.shape[0])
        losses = np.zeros(2, np.float32)
        lib.unet2d_train_step(self._h, losses, x, t, y, lr, b1, b2, eps, weight_decay, bool(decoupled),
                              max_grad_norm)
        return float(losses[0]), float(losses[1])

    # ---- checkpoints ---------------------------------------------------------
    def save(self, path: str) -> None:
        """Parameters, EMA copy, Adam moments and step to a safetensors checkpoint (atomic)."""
        tensors = self.state_dict()
        for kind in ("ema", "m", "v"):
            tensors.update({f"{kind}.{n}": self.get_tensor(n, kind) for n in self._names})
        meta = {"kind": KIND, "step": self.step,
                "config": {**self.config, "dim_mults": list(self.config["dim_mults"]),
                           "full_attn": list(self.config["full_attn"])}}
        checkpoint.save(path, tensors, meta)

    @classmethod
    def load(cls, path: str, max_batch: int = 8, device: str = "auto") -> "UNet2D":
        """A model restored from save() on `device` (either device's file
        loads on either): identical outputs and training state. The tensors
        are checked against the recorded config before the model is built."""
        meta = checkpoint.read_meta(path)
        if meta.get("kind") != KIND:
            raise checkpoint.CheckpointError(f"{path}: holds a {meta.get('kind')!r} checkpoint, expected {KIND!r}")
        try:
            params, _ = layout(meta["config"])
        except (KeyError, TypeError, ValueError) as e:
            raise checkpoint.CheckpointError(f"{path}: bad UNet2D config in metadata ({e})") from None
        expected = {n: tuple(s) for n, s in params}
        expected.update({f"{k}.{n}": tuple(s) for k in ("ema", "m", "v") for n, s in params})
        tensors, _ = checkpoint.load(path, expected=expected, kind=KIND)
        model = cls(meta["config"], max_batch=max_batch, device=device)
        for n in model._names:
            model.set_tensor(n, tensors[n], "param")
            for kind in ("ema", "m", "v"):
                model.set_tensor(n, tensors[f"{kind}.{n}"], kind)
        lib.unet2d_step(model._h, int(meta.get("step", 0)))
        return model

    def __repr__(self):
        c = self.config
        return (f"UNet2D(dim={c['dim']}, dim_mults={c['dim_mults']}, maps={self.map_shape}, "
                f"parameters={self.num_parameters():,}, device={self.device!r})")
