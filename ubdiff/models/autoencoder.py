"""The co-latent autoencoder of UB-Diff (the authors' VSNet), NumPy in and out.

All computation is in the C core (csrc/models/); one C call per training step.
Parameters live in flat buffers owned by the model, under the authors'
PyTorch state_dict names (see ubdiff/models/ae_spec.py).

Devices: ``device="cpu" | "cuda" | "auto"`` (default "auto": the GPU when this
build has CUDA and one is visible, else the CPU). The C model runs every op on
that device; inputs and outputs are NumPy arrays that cross over once per
call. On the CPU ``parameter(name)``, ``named_parameters()``, ``buffer(name)``
and ``flat()`` are zero-copy views (writes go to the model); on a GPU they are
copies, and ``get_tensor`` / ``set_tensor`` / ``load_state_dict`` reach the
model on any device. Checkpoints hold the same bytes whichever device wrote
them and load on either.

``encode_backward`` differentiates E's activations of the last training-mode
encode. Every call that changes the weights or BatchNorm statistics
(``set_tensor``, ``load_state_dict``, ``apply_update``, ``train_step``,
``init``) makes the model forget them, so a following ``encode_backward``
raises until a new ``encode(..., training=True)`` ran. A write through a CPU
view is not seen (it cannot be, cheaply): after one, encode again before
``encode_backward``, or the gradients are those of the old weights.

Data-parallel training splits a step in two: ``forward_backward`` (losses and
gradients), an all-reduce of ``get_tensor(None, "grad")[trained_slice(mode,
freeze)]`` written back with ``set_tensor``, then ``apply_update`` (AdamW on
the groups the mode trains); ``train_step`` is the two in one call.

Training modes (paper Eqs. 2-4; loss of a modality = g_l1 L1 + g_mse MSE):

``"step1"``   E + velocity head + D_v on the velocity loss (all velocity maps);
``"step2"``   (1 - F) l_v + l_s on the pairs; ``freeze=True`` (F = 1) keeps E,
              the velocity head and D_v fixed (BatchNorm in eval mode, parameters
              and running statistics bit-identical) and trains the seismic head
              and D_s; ``freeze=False`` trains everything;
``"wo_opt"``  "UB-Diff w/o opt": everything on both losses, from scratch (the
              same computation as step2 with F = 0);
``"seis_first"``, ``"vel_after"``  the seismic-first variant (Table 5: Eq. 3 before
              Eq. 2): E + seismic head + D_s on the seismic loss of the pairs,
              then velocity head + D_v on the velocity loss with E frozen (eval
              mode; the mirror of step2 with F = 1).

Memory: parameters, gradients and Adam m, v are 4 x 4 bytes a parameter
(3.9 GB for the paper model), plus activations and scratch for ``max_batch``
samples allocated at creation (about 25 MB a sample for the paper model,
measured: 5.6 GB resident at max_batch 64); no allocation per step.

AdamW state (m, v and one step counter per parameter group for the bias
correction) lives in the model; call ``reset_optimizer()`` to start a stage
with a fresh optimiser as the authors' scripts do.
"""
from __future__ import annotations


import numpy as np

from .. import checkpoint
from .._native import lib
from ..ops import f32
from . import ae_spec
from ._args import adam_args, seed_arg, weights_arg

KIND = "co_latent_autoencoder"
MODES = {"step1": 1, "step2": 2, "wo_opt": 3, "seis_first": 4, "vel_after": 5}
VELOCITY_ONLY_MODES = ("step1", "vel_after")   # modes that read no seismic
DEVICES = ("auto", "cpu", "cuda")
KINDS = ("param", "grad", "m", "v", "buf")  # buf: BatchNorm running statistics
LOSS_KEYS = ("total", "velocity", "seismic", "l1_v", "mse_v", "l1_s", "mse_s")


class CoLatentAutoencoder:
    """Co-latent autoencoder: encoder E, velocity/seismic heads, decoders D_v, D_s.

    config: "paper" | "small" | dict of ints (missing keys from the paper's),
    overrides: individual keys, e.g. ``max_batch=8``. seed: Philox seed of the
    PyTorch-default initialisation (tensor i draws from stream i; the same
    values on every device). device: "auto" | "cpu" | "cuda".
    """

    def __init__(self, config="paper", seed: int = 0, device: str = "auto", **overrides):
        if device not in DEVICES:
            raise ValueError(f"CoLatentAutoencoder: device must be 'cpu', 'cuda' or 'auto', got {device!r}")
        self.config = ae_spec.make_config(config, **overrides)
        self._h = lib.ae_create(self.config, seed_arg(seed), device)
        self._spec = lib.ae_spec_of(self._h)

    @property
    def device(self) -> str:
        """"cpu" or "cuda": where the model's memory and ops are."""
        return lib.ae_device(self._handle())

    # ---- structure ----------------------------------------------------------
    def _handle(self):
        if self._h is None:
            raise RuntimeError("CoLatentAutoencoder: the model was freed")
        return self._h

    @property
    def latent_dim(self) -> int:
        return self.config["latent"]

    @property
    def seismic_shape(self) -> tuple:
        c = self.config
        return (c["shots"], c["nt"], c["nr"])

    def num_parameters(self, group: str | None = None) -> int:
        """Trainable parameters, of one group ('encoder', 'head_v', 'decoder_v',
        'head_s', 'decoder_s') or all."""
        sizes = {g: n for g, _, n in self._spec["groups"]}
        if group is None:
            return sum(sizes.values())
        if group not in sizes:
            raise ValueError(f"unknown group {group!r}; choose from {list(sizes)}")
        return sizes[group]

    def parameter_names(self) -> list:
        return [n for n, *_ in self._spec["params"]]

    def buffer_names(self) -> list:
        return [n for n, *_ in self._spec["buffers"]]

    def _kind(self, kind):
        if kind not in KINDS:
            raise ValueError(f"CoLatentAutoencoder: kind must be one of {KINDS}, got {kind!r}")
        return kind

    def _tensor(self, name, kind):
        """A view on the CPU, a copy on a GPU."""
        h = self._handle()
        if self.device == "cpu":
            return lib.ae_view(h, name, self._kind(kind))
        return lib.ae_get(h, self._kind(kind), name)

    def parameter(self, name: str, kind: str = "param") -> np.ndarray:
        """One tensor; kind 'param' | 'grad' | 'm' | 'v'. On the CPU a zero-copy
        view (writes go to the model, unseen by a saved forward: encode again before
        encode_backward), on a GPU a copy (write with set_tensor)."""
        return self._tensor(name, kind)

    def buffer(self, name: str) -> np.ndarray:
        """A BatchNorm buffer (running_mean, running_var, num_batches_tracked):
        view on the CPU, copy on a GPU."""
        return self._tensor(name, "buf")

    def named_parameters(self, kind: str = "param") -> dict:
        return {n: self.parameter(n, kind) for n in self.parameter_names()}

    def named_buffers(self) -> dict:
        return {n: self.buffer(n) for n in self.buffer_names()}

    def flat(self, kind: str = "param") -> np.ndarray:
        """The whole buffer (param | grad | m | v | buf), 1-D: a zero-copy view
        on the CPU, a copy on a GPU. Writes of param or buf through the view are
        not seen by a saved forward (encode again before encode_backward)."""
        h = self._handle()
        if self.device == "cpu":
            return lib.ae_flat(h, self._kind(kind))
        return lib.ae_get(h, self._kind(kind), None)

    def get_tensor(self, name: str | None = None, kind: str = "param") -> np.ndarray:
        """A copy of one tensor, or of the whole flat buffer when name is None,
        on any device. kind: param, grad, m, v (AdamW moments) or buf (BatchNorm
        statistics)."""
        return lib.ae_get(self._handle(), self._kind(kind), name)

    def set_tensor(self, name: str | None, value, kind: str = "param") -> None:
        """Copies `value` (its shape: the tensor's; name None: the whole flat
        buffer) into the model on any device."""
        label = name if name is not None else f"the {kind} buffer"
        lib.ae_set(self._handle(), self._kind(kind), name, f32(value, label))

    def zero_grad(self) -> None:
        lib.ae_zero(self._handle(), "grad")

    def group_slice(self, group: str) -> slice:
        """Where a group's parameters lie in the flat buffers."""
        for g, off, n in self._spec["groups"]:
            if g == group:
                return slice(off, off + n)
        raise ValueError(f"unknown group {group!r}")

    def state_dict(self) -> dict:
        """Copies of every parameter and buffer under the authors' names
        (num_batches_tracked as an int64 scalar, as PyTorch stores it)."""
        out = {n: self.get_tensor(n, "param") for n in self.parameter_names()}
        for n in self.buffer_names():
            v = self.get_tensor(n, "buf")
            out[n] = np.int64(v[0]) if n.endswith("num_batches_tracked") else v
        return out

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Loads tensors by name; the authors' alias keys (module_list1.i, ...)
        and their unused classifier head are accepted and skipped when the
        canonical key is present."""
        aliases = ae_spec.torch_aliases(self.config)
        params, bufs = set(self.parameter_names()), set(self.buffer_names())
        shapes = {n: tuple(s) for n, s, _, _ in self._spec["params"]}
        shapes.update({n: tuple(s) for n, s, _ in self._spec["buffers"]})
        seen = set()
        for key, value in state.items():
            name = key if key in params or key in bufs else aliases.get(key)
            if name is None:
                if key.startswith("decoder_s.decoder.head."):
                    continue
                if strict:
                    raise KeyError(f"load_state_dict: unexpected key {key!r}")
                continue
            if name in seen and name != key:
                continue
            src = np.asarray(value, dtype=np.float32).reshape(-1) if name.endswith("num_batches_tracked") \
                else np.asarray(value, dtype=np.float32)
            if src.shape != shapes[name]:
                raise ValueError(f"load_state_dict: {key!r} has shape {src.shape}, model expects {shapes[name]}")
            self.set_tensor(name, src, "param" if name in params else "buf")
            seen.add(name)
        missing = (params | bufs) - seen
        if strict and missing:
            raise KeyError(f"load_state_dict: missing keys {sorted(missing)[:5]}{'...' if len(missing) > 5 else ''}")

    # ---- checkpoints ----------------------------------------------------------
    def save(self, path: str, optimizer: bool = True, meta: dict | None = None) -> None:
        """Writes a safetensors checkpoint (ubdiff.checkpoint): parameters and
        BatchNorm buffers under their names, with ``optimizer`` also Adam's m and
        v (as the flat buffers ``optimizer.m`` / ``optimizer.v``) and the step
        counters; ``meta`` (JSON-able) is stored alongside."""
        tensors = {n: self.get_tensor(n, "param") for n in self.parameter_names()}
        tensors.update({n: self.get_tensor(n, "buf") for n in self.buffer_names()})
        if optimizer:
            tensors["optimizer.m"] = self.get_tensor(None, "m")
            tensors["optimizer.v"] = self.get_tensor(None, "v")
        info = {"kind": KIND, "config": self.config, "optimizer": bool(optimizer),
                "steps": self.optimizer_steps() if optimizer else None, "user": dict(meta or {})}
        checkpoint.save(path, tensors, info)

    @classmethod
    def load(cls, path: str, device: str = "auto", **overrides) -> "CoLatentAutoencoder":
        """A model restored from ``save`` on `device` (a checkpoint of either
        device loads on either; overrides, e.g. ``max_batch``, may change sizes
        that hold no parameters). The saved ``meta`` is in ``.meta``."""
        info = checkpoint.read_meta(path)
        if info.get("kind") != KIND:
            raise checkpoint.CheckpointError(f"{path}: holds a {info.get('kind')!r} checkpoint, expected {KIND!r}")
        model = cls(info["config"], device=device, **overrides)
        expected = {n: tuple(s) for n, s, _, _ in model._spec["params"]}
        expected.update({n: tuple(s) for n, s, _ in model._spec["buffers"]})
        if info.get("optimizer"):
            n = model.num_parameters()
            expected.update({"optimizer.m": (n,), "optimizer.v": (n,)})
        tensors, info = checkpoint.load(path, expected=expected, kind=KIND)
        for name in model.parameter_names():
            model.set_tensor(name, tensors[name], "param")
        for name in model.buffer_names():
            model.set_tensor(name, tensors[name], "buf")
        if info.get("optimizer"):
            model.set_tensor(None, tensors["optimizer.m"], "m")
            model.set_tensor(None, tensors["optimizer.v"], "v")
            lib.ae_set_steps(model._handle(), {k: int(v) for k, v in info["steps"].items()})
        model.meta = info.get("user", {})
        return model

    # ---- computation -----------------------------------------------------------
    def _vel(self, vel) -> np.ndarray:
        v = f32(vel, "vel")
        if v.ndim == 3:
            v = v[:, None]
        if v.ndim != 4 or v.shape[1:] != (1, 70, 70):
            raise ValueError(f"vel must be (B, 1, 70, 70), got {v.shape}")
        return v

    def _seis(self, seis, B) -> np.ndarray | None:
        if seis is None:
            return None
        s = f32(seis, "seis")
        want = (B,) + self.seismic_shape
        if s.shape != want:
            raise ValueError(f"seis must be {want} (batch, shots, nt, nr), got {s.shape}")
        return s

    def encode(self, vel, training: bool = False) -> np.ndarray:
        """z (B, latent) of normalised velocity maps (B, 1, 70, 70).
        training=True uses batch statistics and updates the running ones."""
        v = self._vel(vel)
        z = np.empty((v.shape[0], self.latent_dim), np.float32)
        lib.ae_encode(self._handle(), z, v, bool(training))
        return z

    def decode(self, z, velocity: bool = True, seismic: bool = True):
        """(velocity (B,1,70,70) | None, seismic (B, shots, nt, nr) | None) of z, eval mode."""
        z = f32(z, "z")
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be (B, {self.latent_dim}), got {z.shape}")
        B = z.shape[0]
        vel = np.empty((B, 1, 70, 70), np.float32) if velocity else None
        seis = np.empty((B,) + self.seismic_shape, np.float32) if seismic else None
        lib.ae_decode(self._handle(), vel, seis, z)
        return vel, seis

    def _step(self, fn, vel, seis, mode, freeze, lr, betas, eps, weight_decay, gammas) -> dict:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        v = self._vel(vel)
        s = self._seis(seis, v.shape[0])
        if s is None and mode not in VELOCITY_ONLY_MODES:
            raise ValueError(f"mode {mode!r} needs seismic records (seis)")
        gammas = weights_arg(gammas, "gammas (l1_v, mse_v, l1_s, mse_s)", 4)
        adam = adam_args(lr, betas, eps, weight_decay)
        losses = np.empty(len(LOSS_KEYS), np.float32)
        fn(self._handle(), losses, v, s, MODES[mode], bool(freeze), adam, gammas)
        return {k: float(x) for k, x in zip(LOSS_KEYS, losses)}

    def train_step(self, vel, seis=None, mode: str = "step1", freeze: bool = False, lr: float = 1e-4,
                   betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-4,
                   gammas=(1.0, 1.0, 1.0, 1.0)) -> dict:
        """One AdamW step on a batch; returns the losses (NaN where a mode does not compute one).
        The same as forward_backward then apply_update (in one C call)."""
        return self._step(lib.ae_train_step, vel, seis, mode, freeze, lr, betas, eps, weight_decay, gammas)

    def forward_backward(self, vel, seis=None, mode: str = "step1", freeze: bool = False,
                         gammas=(1.0, 1.0, 1.0, 1.0)) -> dict:
        """Losses and gradients (``parameter(name, 'grad')``) of a training step, without the update.
        BatchNorm runs in training mode (running statistics are updated)."""
        return self._step(lib.ae_forward_backward, vel, seis, mode, freeze, 0.0, (0.9, 0.999), 1e-8, 0.0, gammas)

    def apply_update(self, mode: str = "step1", freeze: bool = False, lr: float = 1e-4, betas=(0.9, 0.999),
                     eps: float = 1e-8, weight_decay: float = 1e-4) -> None:
        """AdamW on the groups `mode`/`freeze` train, from the gradients as they
        stand (after forward_backward, and in data-parallel training an
        all-reduce of the trained_slice of the gradient buffer)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        lib.ae_apply_update(self._handle(), MODES[mode], bool(freeze), adam_args(lr, betas, eps, weight_decay))

    def set_bn_sync(self, allreduce=None) -> None:
        """Training-mode BatchNorm statistics over all data-parallel ranks (SyncBatchNorm) in
        every BatchNorm of the model (E's and D_v's conv blocks, the velocity and seismic
        heads; D_s has LayerNorms only): ``allreduce(buf)`` sums a float64 array over the
        ranks in place (e.g. ``Comm.allreduce_sum``), called from inside forward and backward.
        None: per-process statistics again (the default). CPU models only."""
        from ._bn_sync import attach
        attach(self, lib.ae_set_bn_sync, self._handle(), allreduce, "CoLatentAutoencoder")

    def trained_slice(self, mode: str = "step1", freeze: bool = False) -> slice:
        """Where the parameters (and gradients) a mode trains lie in the flat buffers:
        from its first to its last trained group ("seis_first" also spans the
        velocity head and D_v, whose gradient it zeroes and does not apply)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        off, n = lib.ae_trained_range(self._handle(), MODES[mode], bool(freeze))
        return slice(off, off + n)

    # ---- parts driven from outside (the baselines of ubdiff.baselines) ----------------------
    def decode_backward(self, z, vel=None, seis=None, gammas=(1.0, 1.0, 1.0, 1.0)):
        """Heads and decoders of the given modalities on an external latent z (B, latent), BatchNorm
        in training mode: returns (losses dict, dz (B, latent) = dl/dz) with l = l_v + l_s of the
        modalities given (vel (B,1,70,70) and/or seis (B, shots, nt, nr)); their parameter
        gradients accumulate (zero_grad first); apply_update then steps the groups trained."""
        z = f32(z, "z")
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must be (B, {self.latent_dim}), got {z.shape}")
        if vel is None and seis is None:
            raise ValueError("decode_backward: give vel, seis or both")
        v = None if vel is None else self._vel(vel)
        if v is not None and v.shape[0] != z.shape[0]:
            raise ValueError(f"vel holds {v.shape[0]} maps, z {z.shape[0]} latents")
        s = self._seis(seis, z.shape[0])
        gammas = weights_arg(gammas, "gammas (l1_v, mse_v, l1_s, mse_s)", 4)
        losses = np.empty(len(LOSS_KEYS), np.float32)
        dz = np.empty_like(z)
        lib.ae_decode_backward(self._handle(), losses, dz, z, v, s, gammas)
        return {k: float(x) for k, x in zip(LOSS_KEYS, losses)}, dz

    def encode_backward(self, dz, vel) -> None:
        """E's parameter gradients += for dz (B, latent) = dl/dz, after encode(vel, training=True)
        of the same maps with no other encode in between."""
        lib.ae_encode_backward(self._handle(), f32(dz, "dz"), self._vel(vel))

    def reset_optimizer(self) -> None:
        lib.ae_reset_optimizer(self._handle())

    def optimizer_steps(self) -> dict:
        """Adam steps taken per parameter group."""
        return lib.ae_steps(self._handle())

    def init(self, seed: int = 0) -> None:
        """Re-initialise (PyTorch defaults, Philox seed) and reset the optimiser."""
        lib.ae_init(self._handle(), seed_arg(seed))

    def free(self) -> None:
        """Drops the model; its memory is released once no views of it remain."""
        self._h = None

    def __repr__(self):
        where = self.device if self._h is not None else "freed"
        return f"CoLatentAutoencoder({self.config}, {self.num_parameters():,} parameters, device={where!r})"
