"""The "DDPM" baseline of the paper's Table 4: pixel-space diffusion on
velocity maps with the 2-D U-Net (ubdiff/models/unet2d.py, lucidrains'
denoising-diffusion-pytorch ``Unet``) as denoiser.

Diffusion. The same C code as UB-Diff's latent diffusion
(csrc/models/diffusion.c, over the denoiser interface csrc/models/denoiser.h):
cosine schedule (s = 0.008) with T = 256, the v-prediction objective with the
loss weight snr / (snr + 1), Adam + gradient clipping + EMA, ancestral DDPM
and DDIM sampling with x0 clamped to [-1, 1]. That is lucidrains'
``GaussianDiffusion(Unet(...), image_size, timesteps=256, objective="pred_v",
beta_schedule="cosine")``: its default objective (pred_v) and the schedule and
step count the UB-Diff authors use for their latent diffusion, so the baseline
differs from UB-Diff only in where it diffuses (pixels vs latents). The
network pads 70 x 70 maps to 72 x 72 and crops its output back
(csrc/models/unet2d.h); samples are (N, 1, 70, 70).

Data. Velocity maps (m/s) are scaled to [-1, 1] with the dataset's
label_min / label_max (ubdiff.data.normalize; OpenFWI's 1500 / 4500 by
default), as GaussianDiffusion's auto-normalisation maps images to [-1, 1];
:meth:`VelocityDDPM.generate` maps samples back to m/s.

Configurations: ``"paper"`` = ``Unet(dim=64, dim_mults=(1, 2, 4, 8),
channels=1)`` (35,703,937 parameters), ``"small"`` = the same at dim 16
(2,430,241), both with T = 256; a dict overrides them (keys of
:func:`ubdiff.models.unet2d.resolve_config` plus ``timesteps`` and ``base``).

Training (:meth:`VelocityDDPM.fit`): minibatches drawn without replacement
from a permutation keyed by (seed, epoch), so a run is reproducible and
resumes exactly where a saved model stopped; t and noise come from Philox
keyed by (seed, step) as in the latent diffusion. Parameter names are the
``Unet``'s state_dict keys; inside GaussianDiffusion they carry the prefix
``model.`` (:attr:`TORCH_PREFIX`).
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from .._native import lib
from ..data.normalize import denormalize_velocity, normalize_velocity
from ..ops import f32
from . import unet2d
from .diffusion import LatentDiffusion, _int

__all__ = ["VelocityDDPM", "resolve_config", "CONFIGS", "PAPER_NUM_PARAMETERS", "SMALL_NUM_PARAMETERS"]

TIMESTEPS = 256
CONFIGS = {name: dict(unet2d.PRESETS[name], timesteps=TIMESTEPS) for name in ("paper", "small")}
PAPER_NUM_PARAMETERS = 35_703_937
SMALL_NUM_PARAMETERS = 2_430_241


def resolve_config(config="paper") -> dict:
    """"paper" | "small" | a dict of overrides (UNet2D keys, ``timesteps``, ``base``) -> full config."""
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"VelocityDDPM: unknown config {config!r}; choose 'paper', 'small' or pass a dict")
        return dict(CONFIGS[config])
    if not isinstance(config, Mapping):
        raise TypeError(f"VelocityDDPM: config must be 'paper', 'small' or a dict, got {type(config).__name__}")
    config = dict(config)
    T = config.pop("timesteps", TIMESTEPS)
    cfg = unet2d.resolve_config(config)
    cfg["timesteps"] = _int(T, "timesteps", 1)
    return cfg


class VelocityDDPM(LatentDiffusion):
    """Pixel-space v-prediction DDPM on velocity maps with the 2-D U-Net, on the CPU or a GPU.

    Everything of :class:`~ubdiff.models.diffusion.LatentDiffusion` (train_step on
    [-1, 1] maps (B, 1, H, W), sample, forward / backward, state dicts, EMA rules,
    device handling) with maps for latents, plus :meth:`fit` on velocity maps in m/s
    and :meth:`generate` back to m/s. ``velocity_range``: the (label_min, label_max)
    that maps m/s to [-1, 1]; saved with the model.
    """

    CHECKPOINT_KIND = "velocity_ddpm"

    def __init__(self, config="small", seed: int = 0, max_batch: int = 16, device: str = "auto",
                 velocity_range=(1500.0, 4500.0)):
        super().__init__(config, seed=seed, max_batch=max_batch, device=device)
        self.velocity_range = _range(velocity_range)

    @staticmethod
    def _resolve(config) -> dict:
        return resolve_config(config)

    def _create(self, c: dict, max_batch: int, device: str):
        return lib.diffusion_create_unet2d(unet2d._c_config(c), max_batch, int(c["timesteps"]), self.seed, device)

    # ---- velocity maps <-> the model's [-1, 1] ------------------------------------
    def _checked(self, velocity, name="velocity"):
        """m/s maps (N, H, W) or (N, 1, H, W), an array or a memmap, as (N, 1, H, W) without a copy."""
        v = velocity if isinstance(velocity, np.ndarray) else np.asarray(velocity)
        C, H, W = self.sample_shape
        if v.ndim == 3 and C == 1:
            v = v[:, None]
        if v.ndim != 4 or v.shape[1:] != (C, H, W) or v.shape[0] < 1:
            raise ValueError(f"{name} must have shape (N, {C}, {H}, {W}) or (N, {H}, {W}) with N >= 1, "
                             f"got {v.shape}")
        if not np.issubdtype(v.dtype, np.number) or np.issubdtype(v.dtype, np.complexfloating):
            raise TypeError(f"{name} must be real numbers (m/s), got dtype {v.dtype}")
        return v

    def _maps(self, velocity, name="velocity") -> np.ndarray:
        """m/s maps (N, H, W) or (N, 1, H, W) -> float32 (N, 1, H, W) in [-1, 1] (values outside
        velocity_range map outside [-1, 1], as the dataset's normaliser does)."""
        v = np.asarray(self._checked(velocity, name))
        if not np.isfinite(v).all():
            raise ValueError(f"{name} must be finite")
        lo, hi = self.velocity_range
        return f32(normalize_velocity(v, lo, hi), name)

    def to_velocity(self, x) -> np.ndarray:
        """[-1, 1] maps -> m/s (float32)."""
        lo, hi = self.velocity_range
        return denormalize_velocity(np.asarray(x, np.float64), lo, hi)

    # ---- training ------------------------------------------------------------------
    def fit(self, velocity, steps: int, batch_size: int = 16, accum: int = 1, lr: float = 8e-5,
            progress: bool | Callable[[int, float], None] = False, **train_kwargs) -> list:
        """``steps`` more optimiser steps on velocity maps (N, 1, H, W) or (N, H, W) in m/s
        (an array or a memmap: each step reads and scales only its own maps; a non-finite
        value raises before the step that would use it).

        Step s takes batch_size * accum maps: consecutive slices of a permutation of the N
        maps drawn from (seed, epoch) (epoch = the pass over the data that step belongs to,
        a batch never spans two), so the draws depend only on (seed, step, N): a saved and
        reloaded model continues exactly. Other arguments of :meth:`train_step` (betas,
        max_grad_norm, ema_decay, ...) pass through. Returns the losses of these steps.
        progress: True for a tqdm bar, or a callable(step, loss) after every step."""
        steps = _int(steps, "steps", 0)
        batch_size = _int(batch_size, "batch_size", 1)
        accum = _int(accum, "accum", 1)
        if batch_size > self.max_batch:
            raise ValueError(f"batch_size {batch_size} exceeds max_batch {self.max_batch}; raise max_batch "
                             "or use accum")
        x = self._checked(velocity)   # scaled a batch at a time: memmaps of all m maps stay on disk
        n = x.shape[0]
        per = batch_size * accum
        if per > n:
            raise ValueError(f"batch_size * accum = {per} exceeds the {n} maps given")
        per_epoch = n // per
        bar, report = None, progress
        if progress is True:
            from tqdm.auto import tqdm
            bar = tqdm(total=steps, desc="ddpm training")
            report = lambda s, loss: (bar.update(1), bar.set_postfix(loss=f"{loss:.4f}"))  # noqa: E731
        losses, order, order_epoch = [], None, -1
        try:
            for _ in range(steps):
                epoch, k = divmod(self.step, per_epoch)
                if epoch != order_epoch:
                    order = np.random.default_rng([self.seed, epoch]).permutation(n)
                    order_epoch = epoch
                idx = np.sort(order[k * per:(k + 1) * per])  # sorted: the same batch reads memory in order
                r = self.train_step(self._maps(x[idx]), accum=accum, lr=lr, **train_kwargs)
                losses.append(r["loss"])
                if report:
                    report(self.step, r["loss"])
        finally:
            if bar is not None:
                bar.close()
        return losses

    # ---- sampling ------------------------------------------------------------------
    def generate(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None, eta: float = 0.0,
                 use_ema: bool = True, progress=False, first: int = 0) -> np.ndarray:
        """n velocity maps (n, 1, H, W) in m/s: :meth:`sample` (in [-1, 1]) mapped back."""
        return self.to_velocity(self.sample(n, seed=seed, sampler=sampler, steps=steps, eta=eta, use_ema=use_ema,
                                            progress=progress, first=first))

    # ---- checkpoints ---------------------------------------------------------------
    def save(self, path: str, extra_meta: Mapping | None = None) -> None:
        """As LatentDiffusion.save, with the velocity range (kind "velocity_ddpm")."""
        super().save(path, extra_meta={"velocity_range": list(self.velocity_range), **dict(extra_meta or {})})

    @classmethod
    def load(cls, path: str, max_batch: int | None = None, device: str = "auto") -> "VelocityDDPM":
        from .. import checkpoint

        m = super().load(path, max_batch=max_batch, device=device)
        meta = checkpoint.read_meta(path)
        if "velocity_range" in meta:
            m.velocity_range = _range(meta["velocity_range"])
        return m


def _range(r) -> tuple:
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise ValueError(f"velocity_range must be two numbers (label_min, label_max), got {r!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"velocity_range must be finite with label_max > label_min, got ({lo}, {hi})")
    return (lo, hi)
