"""Latent diffusion of UB-Diff: a 1-D U-Net denoiser trained with the
v-prediction objective on a cosine schedule, sampled by ancestral DDPM (the
paper) or DDIM (ours). All compute is in the C core (csrc/models/unet1d*.c,
csrc/models/diffusion.c); one C call per training step.

Parameter names are exactly the state_dict keys of lucidrains'
``Unet1D(dim, dim_mults, channels=1)`` as the UB-Diff authors vendored it
(plain Conv1d blocks, no memory key/values, RMSNorm gain (1, C, 1)). Inside
``GaussianDiffusion1D`` the same tensors carry the prefix ``model.``
(:attr:`LatentDiffusion.TORCH_PREFIX`); pass it to :meth:`state_dict` /
:meth:`load_state_dict` to convert.

Configurations:
  ``"paper"``: dim 128, dim_mults (1, 2, 2, 4), seq_len 128, T = 256 —
      21,319,681 parameters.
  ``"small"``: dim 32, dim_mults (1, 2, 2, 2), seq_len 128, T = 256 — the
      same structure at a quarter of the width (for tests and quick runs).
  a dict: overrides of the paper configuration.

Randomness (Philox) is keyed by (seed, step) in training and by (seed,
global sample index) in sampling, so runs are reproducible and resumable and
every sample draws the same noise whatever the chunking into batches (see
csrc/models/diffusion.h). The numbers themselves are bit-identical only for
the same chunking, thread count and machine; across chunkings they agree up
to float rounding (README, "Reproducibility").

Not replicated from ema_pytorch: its warm-up (EMA := weights for the first
100 steps, then a decay ramp). Here the EMA starts as a copy of the
initial weights and uses the fixed decay every ``ema_every`` steps.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from .._native import lib
from ..ops import f32
from ._args import adam_args, float_arg, seed_arg

KINDS = ("param", "grad", "m", "v", "ema")
SAMPLERS = {"ddpm": 0, "ddim": 1}

PAPER = dict(dim=128, dim_mults=(1, 2, 2, 4), channels=1, seq_len=128, groups=8, heads=4, dim_head=32,
             timesteps=256)
SMALL = dict(PAPER, dim=32, dim_mults=(1, 2, 2, 2))
CONFIGS = {"paper": PAPER, "small": SMALL}
PAPER_NUM_PARAMETERS = 21_319_681


def resolve_config(config) -> dict:
    """"paper" | "small" | dict of overrides of the paper config -> full config dict."""
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown config {config!r}; choose 'paper', 'small' or pass a dict")
        return dict(CONFIGS[config])
    if isinstance(config, Mapping):
        unknown = set(config) - set(PAPER)
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(PAPER)}")
        cfg = dict(PAPER, **config)
        cfg["dim_mults"] = tuple(int(m) for m in cfg["dim_mults"])
        return cfg
    raise TypeError(f"config must be 'paper', 'small' or a dict, got {type(config).__name__}")


def _int(x, name, lo=None):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    x = int(x)
    if lo is not None and x < lo:
        raise ValueError(f"{name} must be >= {lo}, got {x}")
    return x


class LatentDiffusion:
    """v-prediction latent diffusion with a 1-D U-Net (CPU core)."""

    TORCH_PREFIX = "model."

    def __init__(self, config="paper", seed: int = 0, max_batch: int = 16):
        self.config = resolve_config(config)
        c = self.config
        self.seed = seed_arg(seed)
        self.step = 0  # optimiser steps taken; the next train_step uses this step's random stream
        self._h = lib.diffusion_create(int(c["dim"]), tuple(c["dim_mults"]), int(c["channels"]), int(c["seq_len"]),
                                       int(c["groups"]), int(c["heads"]), int(c["dim_head"]),
                                       _int(max_batch, "max_batch", 1), int(c["timesteps"]), self.seed)
        self._spec = [(n, tuple(s), o) for n, s, o in lib.diffusion_spec(self._h)]
        self._flat = {k: lib.diffusion_buffer(self._h, k) for k in KINDS}
        self._schedule = None

    # ---- structure -------------------------------------------------------
    @property
    def timesteps(self) -> int:
        return int(self.config["timesteps"])

    @property
    def max_batch(self) -> int:
        return lib.diffusion_info(self._h)["max_batch"]

    @property
    def sample_shape(self) -> tuple:
        return (int(self.config["channels"]), int(self.config["seq_len"]))

    def num_parameters(self) -> int:
        return int(self._flat["param"].size)

    def spec(self) -> list:
        """[(name, shape, offset)] in PyTorch state_dict order (one source of truth: the C table)."""
        return list(self._spec)

    def flat(self, kind: str = "param") -> np.ndarray:
        """Zero-copy 1-D view of a whole buffer (param | grad | m | v | ema)."""
        if kind not in self._flat:
            raise ValueError(f"buffer kind must be one of {KINDS}, got {kind!r}")
        return self._flat[kind]

    def named(self, kind: str = "param") -> dict:
        """name -> zero-copy view (shaped as in PyTorch) of buffer `kind`."""
        buf = self.flat(kind)
        return {n: buf[o:o + math.prod(s)].reshape(s) for n, s, o in self._spec}

    @property
    def parameters(self) -> dict:
        return self.named("param")

    @property
    def ema(self) -> dict:
        return self.named("ema")

    @property
    def grads(self) -> dict:
        return self.named("grad")

    @property
    def schedule(self) -> dict:
        """Float64 schedule arrays (T,): betas, alphas_cumprod, ..., loss_weight (copies)."""
        if self._schedule is None:
            self._schedule = lib.diffusion_schedule(self._h)
        return {k: v.copy() for k, v in self._schedule.items()}

    def reinit(self, seed: int) -> None:
        """PyTorch-default initialisation from `seed`; EMA := params, Adam state and step reset."""
        lib.diffusion_init(self._h, seed_arg(seed))
        self.step = 0

    # ---- state dicts --------------------------------------------------------
    def state_dict(self, kind: str = "param", prefix: str = "") -> dict:
        """name -> copy; prefix=TORCH_PREFIX gives GaussianDiffusion1D's keys."""
        return {prefix + n: v.copy() for n, v in self.named(kind).items()}

    def load_state_dict(self, tensors: Mapping[str, np.ndarray], kind: str = "param", prefix: str = "",
                        strict: bool = True) -> None:
        views = self.named(kind)
        missing = [n for n in views if prefix + n not in tensors]
        if strict and missing:
            raise KeyError(f"load_state_dict: missing tensors {missing[:5]}{'...' if len(missing) > 5 else ''}")
        for n, v in views.items():
            if prefix + n not in tensors:
                continue
            a = np.asarray(tensors[prefix + n])
            if a.shape != v.shape:
                raise ValueError(f"load_state_dict: {prefix + n} has shape {a.shape}, expected {v.shape}")
            v[...] = a

    # ---- checkpoints -------------------------------------------------------------
    CHECKPOINT_KIND = "latent_diffusion"
    _CKPT_GROUPS = {"param": "", "ema": "ema.", "m": "adam_m.", "v": "adam_v."}

    def save(self, path: str, extra_meta: Mapping | None = None) -> None:
        """Writes parameters, EMA, Adam state, config, seed and step (safetensors).
        Parameter keys are the Unet1D names; EMA / Adam ones are prefixed."""
        from .. import checkpoint

        tensors = {}
        for kind, pre in self._CKPT_GROUPS.items():
            tensors.update(self.state_dict(kind, prefix=pre))
        cfg = dict(self.config, dim_mults=list(self.config["dim_mults"]))
        meta = {"kind": self.CHECKPOINT_KIND, "config": cfg, "seed": self.seed, "step": self.step,
                "max_batch": self.max_batch, **dict(extra_meta or {})}
        checkpoint.save(path, tensors, meta)

    @classmethod
    def load(cls, path: str, max_batch: int | None = None) -> "LatentDiffusion":
        """A model restored from save(): training resumes exactly where it stopped."""
        from .. import checkpoint

        meta = checkpoint.read_meta(path)
        if meta.get("kind") != cls.CHECKPOINT_KIND:
            raise checkpoint.CheckpointError(f"{path}: holds a {meta.get('kind')!r} checkpoint, "
                                             f"expected {cls.CHECKPOINT_KIND!r}")
        m = cls(meta["config"], seed=int(meta["seed"]), max_batch=max_batch or int(meta.get("max_batch", 16)))
        expected = {pre + n: s for pre in cls._CKPT_GROUPS.values() for n, s, _ in m._spec}
        tensors, _ = checkpoint.load(path, expected=expected, kind=cls.CHECKPOINT_KIND)
        for kind, pre in cls._CKPT_GROUPS.items():
            m.load_state_dict(tensors, kind=kind, prefix=pre)
        m.step = int(meta["step"])
        return m

    # ---- network ---------------------------------------------------------------
    def _batch(self, x, name):
        x = f32(x, name)
        if x.ndim != 3 or x.shape[1:] != self.sample_shape:
            raise ValueError(f"{name} must have shape (B, {self.sample_shape[0]}, {self.sample_shape[1]}), "
                             f"got {x.shape}")
        return x

    def forward(self, x, t, use_ema: bool = False) -> np.ndarray:
        """The U-Net's output (B, C, L) for x (B, C, L) and times t (B,) (or one
        time for all, a scalar); B <= max_batch. t must be real and finite."""
        x = self._batch(x, "x")
        t = self._times(t, x.shape[0])
        out = np.empty_like(x)
        lib.unet_forward(self._h, out, x, t, bool(use_ema))
        return out

    @staticmethod
    def _times(t, B: int) -> np.ndarray:
        """t as a float32 (B,) array: a real scalar (broadcast) or exactly B finite values."""
        if t is None:
            raise TypeError("t must be a number or an array of B numbers, got None")
        a = np.asarray(t)
        if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)) \
                or a.dtype == np.bool_:
            raise TypeError(f"t must be real numbers, got dtype {a.dtype}")
        if a.ndim == 0:
            a = np.broadcast_to(a, (B,))
        elif a.shape != (B,):
            raise ValueError(f"t must be a scalar or have shape ({B},) (one time per sample), got {a.shape}")
        a = np.ascontiguousarray(a, np.float32)
        if not np.isfinite(a).all():
            raise ValueError("t must be finite")
        return a

    def backward(self, dout, input_grad: bool = False):
        """Backward of the last forward (params): grads += ; returns dx if input_grad."""
        dout = self._batch(dout, "dout")
        dx = np.zeros_like(dout) if input_grad else None
        lib.unet_backward(self._h, dx, dout)
        return dx

    def zero_grad(self) -> None:
        self._flat["grad"][:] = 0.0

    def loss(self, z0, t, noise, grad_scale: float = 0.0):
        """v-prediction loss for given t (B,) ints and noise -> (loss, per-sample weighted terms).
        grad_scale > 0 also accumulates grad_scale * d(loss)/d(params) into the grads."""
        z0, noise = self._batch(z0, "z0"), self._batch(noise, "noise")
        t = np.asarray(t)
        if t.shape != (z0.shape[0],) or not np.issubdtype(t.dtype, np.integer):
            raise ValueError(f"t must be an integer array of shape ({z0.shape[0]},), got {t.dtype} {t.shape}")
        if t.size and (t.min() < 0 or t.max() >= self.timesteps):
            raise ValueError(f"t must lie in 0..{self.timesteps - 1}")
        per = np.empty(z0.shape[0], np.float32)
        grad_scale = float_arg(grad_scale, "grad_scale", 0.0)
        val = lib.diffusion_loss(self._h, per, z0, t.astype(np.float32), noise, grad_scale)
        return val, per

    # ---- training --------------------------------------------------------------
    def train_step(self, z0, accum: int = 1, lr: float = 8e-5, betas=(0.9, 0.99), eps: float = 1e-8,
                   weight_decay: float = 0.0, max_grad_norm: float = 1.0, ema_decay: float = 0.995,
                   ema_every: int = 10, seed: int | None = None, step: int | None = None) -> dict:
        """One optimiser step on z0 (accum*B, C, L) = accum micro-batches of B.

        Draws t and noise from Philox keyed by (seed, step) — defaults: the
        model's seed and its step counter, which then advances. Returns
        {"loss", "grad_norm" (before clipping), "step" (the step just taken)}.
        """
        z0 = self._batch(z0, "z0")
        accum = _int(accum, "accum", 1)
        if z0.shape[0] % accum:
            raise ValueError(f"z0 holds {z0.shape[0]} samples, not a multiple of accum = {accum}")
        B = z0.shape[0] // accum
        if B > self.max_batch:
            raise ValueError(f"micro-batch {B} exceeds max_batch {self.max_batch}; raise max_batch or accum")
        seed = self.seed if seed is None else seed_arg(seed)
        step = self.step if step is None else _int(step, "step", 0)
        lr, b1, b2, eps, weight_decay = adam_args(lr, betas, eps, weight_decay)
        betas = (b1, b2)
        max_grad_norm = float_arg(max_grad_norm, "max_grad_norm", 0.0)
        if ema_decay is not None:
            ema_decay = float_arg(ema_decay, "ema_decay", 0.0, 1.0)
        loss, gnorm = lib.diffusion_train_step(self._h, z0, B, accum, seed, step, float(lr), float(betas[0]),
                                               float(betas[1]), float(eps), float(weight_decay),
                                               float(max_grad_norm), float(ema_decay), _int(ema_every, "ema_every", 0))
        self.step = step + 1
        return {"loss": loss, "grad_norm": gnorm, "step": step}

    # ---- sampling --------------------------------------------------------------
    def sample(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None, eta: float = 0.0,
               use_ema: bool = True, progress: bool | Callable[[int, int], None] = False) -> np.ndarray:
        """n latents (n, C, L): ancestral DDPM over all T steps (the paper) or DDIM with
        `steps` (default T) steps and eta (0 = deterministic). Same seed -> the same noise per
        sample whatever max_batch (equal results up to float rounding). progress: True for a tqdm bar, or a callable(done, total)."""
        n = _int(n, "n", 1)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
        s = SAMPLERS[sampler]
        if sampler == "ddpm" and steps not in (None, self.timesteps):
            raise ValueError(f"ddpm always takes all T = {self.timesteps} steps; use sampler='ddim' for fewer")
        steps = self.timesteps if steps is None else _int(steps, "steps", 1)
        eta = float(eta)
        if not (eta >= 0.0 and math.isfinite(eta)):
            raise ValueError(f"eta must be finite and >= 0, got {eta}")
        seed = seed_arg(seed)
        nsteps = lib.diffusion_sampler_steps(self._h, s, steps)
        z = np.empty((n, *self.sample_shape), np.float32)
        if not progress:
            lib.diffusion_sample(self._h, z, seed, s, steps, eta, bool(use_ema))
            return z
        mb = self.max_batch
        total = nsteps * ((n + mb - 1) // mb)
        bar, report = None, progress
        if progress is True:
            from tqdm.auto import tqdm
            bar = tqdm(total=total, desc=f"sampling ({sampler})")
            report = lambda done, tot: bar.update(1)  # noqa: E731
        done = 0
        try:
            for first in range(0, n, mb):
                x = z[first:first + mb]  # contiguous slice: filled in place
                lib.diffusion_sample_init(self._h, x, first, seed)
                for k in range(nsteps):
                    lib.diffusion_sample_step(self._h, x, first, seed, s, steps, eta, k, bool(use_ema))
                    done += 1
                    report(done, total)
        finally:
            if bar is not None:
                bar.close()
        return z


__all__ = ["LatentDiffusion", "resolve_config", "PAPER", "SMALL", "PAPER_NUM_PARAMETERS"]
