"""Latent diffusion of UB-Diff: a 1-D U-Net denoiser trained with the
v-prediction objective on a cosine schedule, sampled by ancestral DDPM (the
paper) or DDIM (ours). All compute is in the C core (csrc/models/unet1d*.c,
csrc/models/diffusion.c) on the CPU or a CUDA GPU (``device=``); one C call per
training step, and one per chunk of samples, whose reverse loop stays on the
device (on a GPU each step is replayed as one captured CUDA graph).

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

EMA of the weights (:data:`EMA_RULES`, :func:`ema_update_at`): by default
ema-pytorch 0.2.3's ``EMA`` as the authors' Trainer1D configures it
(``EMA(model, beta=0.995, update_every=10)``, library defaults otherwise):
updates after optimiser steps 1, 11, 21, ...; a plain copy of the weights up
to step 101 (``update_after_step`` 100) and once more at the first update
after it (``initted``); then decay 1 - (1 + e / inv_gamma) ** -power with
e = step - 101, clamped to [min_value, beta] (0.995 first at step 2,931).
The rule "fixed" (ubdiff before this rule) applies ``beta`` after steps
update_every, 2 update_every, ... with the EMA starting as the initial
weights. Python picks each step's decay; the C step applies it (0 = copy).
"""
from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from .._native import lib
from ..ops import f32
from ._args import adam_args, float_arg, seed_arg

KINDS = ("param", "grad", "m", "v", "ema")
DEVICES = ("auto", "cpu", "cuda")
SAMPLERS = {"ddpm": 0, "ddim": 1}
#: One reverse step of a sampling run, the C struct ubd_sample_step (csrc/diffusion_ops.h), 64 bytes;
#: kind: STEP_KINDS. For tests of the ops (ubdiff._native.lib.diffusion_op_*).
STEP_DTYPE = np.dtype([("seed", "=u8"), ("stream", "=u8"), ("offset", "=u8"), ("time", "=i4"), ("kind", "=i4"),
                       ("noisy", "=i4"), ("sa", "=f4"), ("s1", "=f4"), ("c_x0", "=f4"), ("c_x", "=f4"),
                       ("r1", "=f4"), ("rm1", "=f4"), ("sd", "=f4")])
STEP_KINDS = {"ddpm": 0, "ddim": 1, "x0": 2}

PAPER = dict(dim=128, dim_mults=(1, 2, 2, 4), channels=1, seq_len=128, groups=8, heads=4, dim_head=32,
             timesteps=256)
SMALL = dict(PAPER, dim=32, dim_mults=(1, 2, 2, 2))
CONFIGS = {"paper": PAPER, "small": SMALL}
PAPER_NUM_PARAMETERS = 21_319_681

#: EMA rules and their defaults. "ema-pytorch": lucidrains' ema-pytorch 0.2.3 ``EMA`` with the
#: authors' settings (diffusion_trainer.py: beta = ema_decay = 0.995, update_every = 10; the
#: library's update_after_step 100, inv_gamma 1, power 2/3, min_value 0). "fixed": ``beta``
#: after every ``update_every``-th step, no warm-up.
EMA_RULES = {
    "ema-pytorch": dict(beta=0.995, update_every=10, update_after_step=100, inv_gamma=1.0, power=2 / 3,
                        min_value=0.0),
    "fixed": dict(beta=0.995, update_every=10),
}


def make_ema_rule(rule: str = "ema-pytorch", **params) -> dict:
    """{'rule': rule, **its parameters}: the defaults of :data:`EMA_RULES` updated by ``params``, checked."""
    if rule not in EMA_RULES:
        raise ValueError(f"EMA rule must be one of {sorted(EMA_RULES)}, got {rule!r}")
    unknown = set(params) - set(EMA_RULES[rule])
    if unknown:
        raise ValueError(f"EMA rule {rule!r} takes {sorted(EMA_RULES[rule])}, got unknown {sorted(unknown)}")
    r = dict(EMA_RULES[rule], **{k: v for k, v in params.items() if v is not None})
    r["update_every"] = _int(r["update_every"], "update_every", 1)
    if not 0.0 <= float(r["beta"]) <= 1.0:
        raise ValueError(f"EMA beta (the decay) must lie in [0, 1], got {r['beta']}")
    r["beta"] = float(r["beta"])
    if rule == "ema-pytorch":
        r["update_after_step"] = _int(r["update_after_step"], "update_after_step", 0)
        for k in ("inv_gamma", "power"):
            if not (float(r[k]) > 0 and math.isfinite(float(r[k]))):
                raise ValueError(f"EMA {k} must be a positive number, got {r[k]}")
            r[k] = float(r[k])
        if not 0.0 <= float(r["min_value"]) <= r["beta"]:
            raise ValueError(f"EMA min_value must lie in [0, beta = {r['beta']}], got {r['min_value']}")
        r["min_value"] = float(r["min_value"])
    return {"rule": rule, **r}


def ema_update_at(rule: Mapping, step: int, initted: bool = False) -> tuple:
    """The EMA update after optimiser step ``step`` (1, 2, ...): (decay, initted after it).

    decay None: no update; 0.0: EMA := weights (a copy); else EMA += (1 - decay) (weights - EMA).
    "ema-pytorch" follows ema_pytorch 0.2.3 ``EMA.update()``, which Trainer1D calls once after
    every optimiser step: its counter (``self.step``, before the increment) is step - 1, and
    ``get_current_decay`` reads it after the increment (= step).
    """
    step = _int(step, "step", 1)
    every = rule["update_every"]
    if rule["rule"] == "fixed":
        return (rule["beta"] if step % every == 0 else None), bool(initted)
    count = step - 1
    if count % every != 0:
        return None, bool(initted)
    if count <= rule["update_after_step"]:
        return 0.0, bool(initted)                 # copy_params_from_model_to_ema
    if not initted:
        return 0.0, True                          # copy, then a lerp towards itself: a copy
    epoch = max(step - rule["update_after_step"] - 1, 0)
    if epoch <= 0:
        return 0.0, True
    value = 1.0 - (1.0 + epoch / rule["inv_gamma"]) ** -rule["power"]
    return min(max(value, rule["min_value"]), rule["beta"]), True


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
    """v-prediction latent diffusion with a 1-D U-Net, on the CPU or a CUDA GPU.

    ``device``: "cpu", "cuda" or "auto" (default: the GPU when this build has
    CUDA and one is visible, else the CPU). The model's memory and every op
    live there; inputs and outputs are NumPy arrays that cross over once per
    call. On the CPU :meth:`flat` / :meth:`named` are zero-copy views (writes go
    to the model); on a GPU they are copies, and :meth:`set_tensor` /
    :meth:`load_state_dict` write. Checkpoints hold the same bytes whichever
    device wrote them and load on either.

    :meth:`backward` differentiates the activations of the last :meth:`forward`.
    Every call that changes the weights (:meth:`set_tensor` / :meth:`load_state_dict`
    of param or ema, :meth:`apply_update`, :meth:`train_step`, :meth:`reinit`) and
    every :meth:`sample` makes the model forget them, so a following backward raises
    until a new forward ran. A write through a CPU view is not seen (it cannot be,
    cheaply): after one, forward again before backward, or the gradients are those
    of the old weights.
    """

    TORCH_PREFIX = "model."

    def __init__(self, config="paper", seed: int = 0, max_batch: int = 16, device: str = "auto"):
        self.config = self._resolve(config)
        self.seed = seed_arg(seed)
        if device not in DEVICES:
            raise ValueError(f"{type(self).__name__}: device must be 'cpu', 'cuda' or 'auto', got {device!r}")
        self.step = 0  # optimiser steps taken; the next train_step uses this step's random stream
        self._h = self._create(self.config, _int(max_batch, "max_batch", 1), device)
        self._sample_shape = tuple(lib.diffusion_info(self._h)["sample_shape"])
        self._spec = [(n, tuple(s), o) for n, s, o in lib.diffusion_spec(self._h)]
        self._n_params = sum(math.prod(s) for _, s, _ in self._spec)
        self._device = lib.diffusion_device(self._h)
        self._flat = {k: lib.diffusion_view(self._h, k) for k in KINDS} if self._device == "cpu" else None
        self._schedule = None
        self.ema_rule = make_ema_rule()  # see set_ema
        self.ema_initted = False         # ema-pytorch's `initted`: the first update after warm-up copied

    # The denoiser: subclasses with another network (ubdiff/models/ddpm.py) override these two.
    @staticmethod
    def _resolve(config) -> dict:
        return resolve_config(config)

    def _create(self, c: dict, max_batch: int, device: str):
        """The C model (a capsule) for the resolved config c: the 1-D U-Net's diffusion."""
        return lib.diffusion_create(int(c["dim"]), tuple(c["dim_mults"]), int(c["channels"]), int(c["seq_len"]),
                                    int(c["groups"]), int(c["heads"]), int(c["dim_head"]), max_batch,
                                    int(c["timesteps"]), self.seed, device)

    # ---- structure -------------------------------------------------------
    @property
    def device(self) -> str:
        """"cpu" or "cuda": where the model's memory and ops are."""
        return self._device

    @property
    def timesteps(self) -> int:
        return int(self.config["timesteps"])

    @property
    def max_batch(self) -> int:
        return lib.diffusion_info(self._h)["max_batch"]

    @property
    def sample_shape(self) -> tuple:
        """The shape of one sample: (C, L) here, (C, H, W) for a 2-D denoiser."""
        return self._sample_shape

    def num_parameters(self) -> int:
        return self._n_params

    def spec(self) -> list:
        """[(name, shape, offset)] in PyTorch state_dict order (one source of truth: the C table)."""
        return list(self._spec)

    @staticmethod
    def _kind(kind):
        if kind not in KINDS:
            raise ValueError(f"buffer kind must be one of {KINDS}, got {kind!r}")
        return kind

    def flat(self, kind: str = "param") -> np.ndarray:
        """A whole buffer (param | grad | m | v | ema) as one 1-D array: on the CPU a
        zero-copy view (writes go to the model; the saved forward does not see them:
        forward again before backward), on a GPU a copy (write with set_tensor)."""
        self._kind(kind)
        if self._flat is not None:
            return self._flat[kind]
        return lib.diffusion_get(self._h, kind, None)

    def named(self, kind: str = "param") -> dict:
        """name -> tensor (shaped as in PyTorch) of buffer `kind`: views on the CPU, copies on a GPU."""
        buf = self.flat(kind)
        return {n: buf[o:o + math.prod(s)].reshape(s) for n, s, o in self._spec}

    def get_tensor(self, name: str | None = None, kind: str = "param") -> np.ndarray:
        """A copy of one tensor (name None: of the whole flat buffer) of buffer `kind`, on any device."""
        return lib.diffusion_get(self._h, self._kind(kind), name)

    def set_tensor(self, name: str | None, value, kind: str = "param") -> None:
        """Copies `value` (the tensor's shape; name None: the whole flat buffer) into buffer `kind`."""
        label = name if name is not None else f"the {kind} buffer"
        lib.diffusion_set(self._h, self._kind(kind), name, f32(value, label))

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

    @property
    def graphs(self) -> bool:
        """Whether sampling replays each reverse step as one captured CUDA graph (default True;
        no effect on the CPU). Set False to launch the ops one by one (to compare speeds). Turns
        False by itself if a step cannot be captured (sampling then goes on op by op)."""
        return lib.diffusion_graphs(self._h)

    @graphs.setter
    def graphs(self, use: bool) -> None:
        lib.diffusion_graphs(self._h, bool(use))

    def reinit(self, seed: int) -> None:
        """PyTorch-default initialisation from `seed`; EMA := params, Adam state and step reset."""
        lib.diffusion_init(self._h, seed_arg(seed))
        self.step = 0
        self.ema_initted = False

    def set_ema(self, rule: str | None = None, **params) -> dict:
        """Choose the EMA rule ("ema-pytorch" | "fixed", :data:`EMA_RULES`) and its parameters
        (beta, update_every, ...; None keeps the current value). Another rule starts from its
        defaults. Saved with the model, so a resumed run keeps its rule. Returns the rule."""
        rule = self.ema_rule["rule"] if rule is None else rule
        base = {k: v for k, v in self.ema_rule.items() if k != "rule"} if rule == self.ema_rule["rule"] else {}
        self.ema_rule = make_ema_rule(rule, **dict(base, **{k: v for k, v in params.items() if v is not None}))
        return dict(self.ema_rule)

    # ---- state dicts --------------------------------------------------------
    def state_dict(self, kind: str = "param", prefix: str = "") -> dict:
        """name -> copy; prefix=TORCH_PREFIX gives GaussianDiffusion1D's keys."""
        buf = self.get_tensor(None, kind)
        return {prefix + n: buf[o:o + math.prod(s)].reshape(s).copy() for n, s, o in self._spec}

    def load_state_dict(self, tensors: Mapping[str, np.ndarray], kind: str = "param", prefix: str = "",
                        strict: bool = True) -> None:
        self._kind(kind)
        missing = [n for n, _, _ in self._spec if prefix + n not in tensors]
        if strict and missing:
            raise KeyError(f"load_state_dict: missing tensors {missing[:5]}{'...' if len(missing) > 5 else ''}")
        buf = self.get_tensor(None, kind)  # one copy in, one out, whatever the device
        for n, s, o in self._spec:
            if prefix + n not in tensors:
                continue
            a = np.asarray(tensors[prefix + n])
            if a.shape != s:
                raise ValueError(f"load_state_dict: {prefix + n} has shape {a.shape}, expected {s}")
            buf[o:o + math.prod(s)] = a.reshape(-1)
        self.set_tensor(None, buf, kind)

    # ---- checkpoints -------------------------------------------------------------
    CHECKPOINT_KIND = "latent_diffusion"
    _CKPT_GROUPS = {"param": "", "ema": "ema.", "m": "adam_m.", "v": "adam_v."}

    def save(self, path: str, extra_meta: Mapping | None = None) -> None:
        """Writes parameters, EMA, Adam state, config, seed and step (safetensors).
        Parameter keys are the Unet1D names; EMA / Adam ones are prefixed. The
        same bytes from either device."""
        from .. import checkpoint

        tensors = {}
        for kind, pre in self._CKPT_GROUPS.items():
            tensors.update(self.state_dict(kind, prefix=pre))
        cfg = dict(self.config, dim_mults=list(self.config["dim_mults"]))
        meta = {"kind": self.CHECKPOINT_KIND, "config": cfg, "seed": self.seed, "step": self.step,
                "max_batch": self.max_batch, "ema": dict(self.ema_rule, initted=self.ema_initted),
                **dict(extra_meta or {})}
        checkpoint.save(path, tensors, meta)

    @classmethod
    def load(cls, path: str, max_batch: int | None = None, device: str = "auto") -> "LatentDiffusion":
        """A model restored from save() on `device` (a checkpoint of either device loads on
        either): training resumes exactly where it stopped."""
        from .. import checkpoint

        meta = checkpoint.read_meta(path)
        if meta.get("kind") != cls.CHECKPOINT_KIND:
            raise checkpoint.CheckpointError(f"{path}: holds a {meta.get('kind')!r} checkpoint, "
                                             f"expected {cls.CHECKPOINT_KIND!r}")
        m = cls(meta["config"], seed=int(meta["seed"]), max_batch=max_batch or int(meta.get("max_batch", 16)),
                device=device)
        expected = {pre + n: s for pre in cls._CKPT_GROUPS.values() for n, s, _ in m._spec}
        tensors, _ = checkpoint.load(path, expected=expected, kind=cls.CHECKPOINT_KIND)
        for kind, pre in cls._CKPT_GROUPS.items():
            m.load_state_dict(tensors, kind=kind, prefix=pre)
        m.step = int(meta["step"])
        ema = dict(meta.get("ema") or {})
        if not ema and m.step > 0:   # saved before the EMA rule was: it trained with the fixed rule
            ema = {"rule": "fixed"}
        if ema:
            m.ema_initted = bool(ema.pop("initted", False))
            m.ema_rule = make_ema_rule(ema.pop("rule"), **ema)
        return m

    # ---- network ---------------------------------------------------------------
    def _batch(self, x, name):
        x = f32(x, name)
        if x.ndim != 1 + len(self.sample_shape) or x.shape[1:] != self.sample_shape:
            raise ValueError(f"{name} must have shape (B, {', '.join(map(str, self.sample_shape))}), "
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
        lib.diffusion_zero(self._h, "grad")

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
    def _micro_batches(self, z0, accum):
        z0 = self._batch(z0, "z0")
        accum = _int(accum, "accum", 1)
        if z0.shape[0] % accum:
            raise ValueError(f"z0 holds {z0.shape[0]} samples, not a multiple of accum = {accum}")
        B = z0.shape[0] // accum
        if B > self.max_batch:
            raise ValueError(f"micro-batch {B} exceeds max_batch {self.max_batch}; raise max_batch or accum")
        return z0, accum, B

    def _update_args(self, step, lr, betas, eps, weight_decay, max_grad_norm, ema_decay, ema_every):
        """(C arguments of the update, the EMA decay applied (None: none), ema_initted after it)."""
        lr, b1, b2, eps, weight_decay = adam_args(lr, betas, eps, weight_decay)
        max_grad_norm = float_arg(max_grad_norm, "max_grad_norm", 0.0)
        if ema_decay is not None:
            ema_decay = float_arg(ema_decay, "ema_decay", 0.0, 1.0)
        initted = self.ema_initted
        if ema_decay is None and ema_every is None:
            decay, initted = ema_update_at(self.ema_rule, step + 1, initted)
            c_decay, c_every = (0.0, 0) if decay is None else (decay, 1)
        else:
            c_decay = 0.995 if ema_decay is None else float(ema_decay)
            c_every = 10 if ema_every is None else _int(ema_every, "ema_every", 0)
            decay = c_decay if c_every > 0 and (step + 1) % c_every == 0 else None
        args = (float(lr), float(b1), float(b2), float(eps), float(weight_decay), float(max_grad_norm),
                float(c_decay), c_every)
        return args, decay, initted

    def train_step(self, z0, accum: int = 1, lr: float = 8e-5, betas=(0.9, 0.99), eps: float = 1e-8,
                   weight_decay: float = 0.0, max_grad_norm: float = 1.0, ema_decay: float | None = None,
                   ema_every: int | None = None, seed: int | None = None, step: int | None = None) -> dict:
        """One optimiser step on z0 (accum*B, C, L) = accum micro-batches of B.

        Draws t and noise from Philox keyed by (seed, step) — defaults: the
        model's seed and its step counter, which then advances. The EMA follows
        the model's rule (:meth:`set_ema`); ema_decay / ema_every given here
        instead apply the fixed rule to this step (defaults 0.995 / 10; 0 = no
        EMA). Returns {"loss", "grad_norm" (before clipping), "step" (the step
        just taken), "ema_decay" (None: no update, 0: copy)}.
        The same bits as :meth:`forward_backward` then :meth:`apply_update`, in one call.
        """
        z0, accum, B = self._micro_batches(z0, accum)
        seed = self.seed if seed is None else seed_arg(seed)
        step = self.step if step is None else _int(step, "step", 0)
        args, decay, initted = self._update_args(step, lr, betas, eps, weight_decay, max_grad_norm, ema_decay,
                                                 ema_every)
        loss, gnorm = lib.diffusion_train_step(self._h, z0, B, accum, seed, step, *args)
        self.step = step + 1
        self.ema_initted = initted
        return {"loss": loss, "grad_norm": gnorm, "step": step, "ema_decay": decay}

    def forward_backward(self, z0, accum: int = 1, seed: int | None = None, step: int | None = None,
                         first: int = 0) -> float:
        """The gradient half of :meth:`train_step`: the grad buffer becomes the mean over the
        accum micro-batches of z0 (accum*B, C, L) of the loss gradient, with the t and noise
        train_step would draw for (seed, step) (defaults: the model's seed and step). Nothing
        else changes; returns the loss. Data-parallel training all-reduces the grad buffer
        (get_tensor / set_tensor kind="grad", or the view on the CPU) before apply_update.
        ``first``: z0's samples are positions first, first + 1, ... of the step's global batch
        and draw those positions' t and noise (a rank's slice; train_step: 0)."""
        z0, accum, B = self._micro_batches(z0, accum)
        seed = self.seed if seed is None else seed_arg(seed)
        step = self.step if step is None else _int(step, "step", 0)
        return lib.diffusion_forward_backward(self._h, z0, B, accum, seed, step, _int(first, "first", 0))

    def apply_update(self, lr: float = 8e-5, betas=(0.9, 0.99), eps: float = 1e-8, weight_decay: float = 0.0,
                     max_grad_norm: float = 1.0, ema_decay: float | None = None, ema_every: int | None = None,
                     step: int | None = None) -> dict:
        """The update half of :meth:`train_step`, from the grad buffer as it stands: clipping,
        Adam step number step+1 and the EMA (as in train_step); the step counter advances.
        Returns {"grad_norm" (before clipping), "step", "ema_decay"}."""
        step = self.step if step is None else _int(step, "step", 0)
        args, decay, initted = self._update_args(step, lr, betas, eps, weight_decay, max_grad_norm, ema_decay,
                                                 ema_every)
        gnorm = lib.diffusion_apply_update(self._h, step, *args)
        self.step = step + 1
        self.ema_initted = initted
        return {"grad_norm": gnorm, "step": step, "ema_decay": decay}

    # ---- sampling --------------------------------------------------------------
    def sample(self, n: int, seed: int = 0, sampler: str = "ddpm", steps: int | None = None, eta: float = 0.0,
               use_ema: bool = True, progress: bool | Callable[[int, int], None] = False,
               first: int = 0) -> np.ndarray:
        """n latents (n, C, L): ancestral DDPM over all T steps (the paper) or DDIM with
        `steps` (default T) steps and eta (0 = deterministic). Sample j draws the noise of
        global index first + j, so the same seed gives the same noise per sample whatever
        max_batch or the split into calls (equal results up to float rounding). The whole
        reverse loop runs on the model's device; the samples cross to the host once per
        chunk of max_batch. progress: True for a tqdm bar, or a callable(done, total) called
        after every step (the device is waited for, so the counts are true)."""
        n = _int(n, "n", 1)
        first = _int(first, "first", 0)
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
        if not progress and first == 0:
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
            for off in range(0, n, mb):
                x = z[off:off + mb]  # contiguous slice: filled in place
                lib.diffusion_sample_begin(self._h, x.shape[0], first + off, seed, s, steps, eta, bool(use_ema))
                if not progress:
                    lib.diffusion_sample_run(self._h, nsteps, False)
                else:
                    for _ in range(nsteps):
                        lib.diffusion_sample_run(self._h, 1, True)
                        done += 1
                        report(done, total)
                lib.diffusion_sample_read(self._h, x)
        finally:
            if bar is not None:
                bar.close()
        return z


__all__ = ["LatentDiffusion", "resolve_config", "PAPER", "SMALL", "PAPER_NUM_PARAMETERS", "EMA_RULES",
           "make_ema_rule", "ema_update_at"]
