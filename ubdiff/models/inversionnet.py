"""InversionNet (Wu & Lin 2019; OpenFWI's network.py), the paper's evaluator.

Maps normalised seismic records (N, 5, nt, nx) to normalised velocity maps
(N, 1, 70, 70) in [-1, 1]. The network runs in the C core (one C call per
training step: forward, L1 + MSE loss, backward, AdamW); this class holds the
model, batches and shuffles the data, shows progress and saves checkpoints.

Configurations (``InversionNet(config=...)``):

* ``"paper"`` — OpenFWI's InversionNet: channel widths dim1..dim5 =
  32, 64, 128, 256, 512, input (5, 1000, 70); 24,409,123 parameters.
* ``"small"`` — the same 25 blocks with widths 8, 16, 32, 64, 128 and a
  time axis subsampled 4x (nt = 250), for quick experiments on a CPU.
  Its encoder ends on a 2 x 9 map, so convblock8's kernel is (2, 9).
* a dict of overrides on top of ``base`` ("paper" unless given), e.g.
  ``{"base": "small", "nt": 500, "dims": (16, 32, 64, 128, 256)}``.
  Keys: base, dims, in_channels, nt, nx, slope, bn_momentum, bn_eps.

convblock8's kernel is the size of the map it receives (computed from nt and
nx), so any nt/nx that survives the encoder gives a 1 x 1 code; network.py
hard-codes (8, ceil(70 sample_spatial / 8)), the same (8, 9) for the paper.

Parameter and statistics names are the keys of network.py's state_dict
(``convblock1.layers.0.weight``, ``convblock1.layers.1.running_mean``, ...),
so OpenFWI weights load with :meth:`InversionNet.from_state_dict`.

Devices: ``device="cpu" | "cuda" | "auto"`` (default "auto": the GPU when this
build has CUDA and one is visible, else the CPU). The C model runs every op on
that device; inputs and outputs are NumPy arrays that cross over once per
call. On the CPU :meth:`parameters`, :meth:`gradients` and :meth:`buffers`
are zero-copy views (writes go to the model); on a GPU they are copies, and
:meth:`get_tensor` / :meth:`set_tensor` / :meth:`load_state_dict` reach the
model on any device. Checkpoints hold the same bytes whichever device wrote
them and load on either.

:meth:`InversionNet.backward` differentiates the activations of the last
training forward. Every call that changes the weights or BatchNorm statistics
(``set_tensor``, ``load_state_dict``, ``apply_update``, ``train_step``, a
larger batch than max_batch) makes the model forget them, so a following
backward raises until a new ``forward(..., train=True)`` ran. A write through a
CPU view (``parameters()``, ``buffers()``, ``flat()``) is not seen (it cannot
be, cheaply): after one, forward again before backward, or the gradients are
those of the old weights.
"""
from __future__ import annotations

import math

import numpy as np

from .. import checkpoint
from .._native import lib
from ..ops import f32
from ._args import adam_args, seed_arg, weights_arg

__all__ = ["InversionNet", "PRESETS"]

KIND = "inversionnet"
OUT = 70  # output maps are 70 x 70

PRESETS = {
    "paper": {"dims": (32, 64, 128, 256, 512), "in_channels": 5, "nt": 1000, "nx": 70},
    "small": {"dims": (8, 16, 32, 64, 128), "in_channels": 5, "nt": 250, "nx": 70},
}
_DEFAULTS = {"slope": 0.2, "bn_momentum": 0.1, "bn_eps": 1e-5}
_KEYS = ("dims", "in_channels", "nt", "nx", "slope", "bn_momentum", "bn_eps")


def resolve_config(config="paper") -> dict:
    """The full config dict of a preset name or an override dict."""
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"InversionNet: unknown config {config!r}; choose from {sorted(PRESETS)} or pass a dict")
        return {**PRESETS[config], **_DEFAULTS, "dims": tuple(PRESETS[config]["dims"])}
    if not isinstance(config, dict):
        raise TypeError(f"InversionNet: config must be a preset name or a dict, got {type(config).__name__}")
    extra = set(config) - set(_KEYS) - {"base"}
    if extra:
        raise ValueError(f"InversionNet: unknown config keys {sorted(extra)}; allowed: base, {', '.join(_KEYS)}")
    cfg = resolve_config(config.get("base", "paper"))
    cfg.update({k: v for k, v in config.items() if k != "base"})
    dims = tuple(cfg["dims"])
    if len(dims) != 5 or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0
                                 for d in dims):
        raise ValueError(f"InversionNet: dims must be 5 positive ints (dim1..dim5), got {cfg['dims']!r}")
    cfg["dims"] = tuple(int(d) for d in dims)
    for k in ("in_channels", "nt", "nx"):
        v = cfg[k]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"InversionNet: {k} must be a positive int, got {v!r}")
        cfg[k] = int(v)
    for k in ("slope", "bn_momentum", "bn_eps"):
        cfg[k] = float(cfg[k])
    return cfg


def _c_config(cfg: dict, max_batch: int) -> tuple:
    return (tuple(cfg["dims"]), cfg["in_channels"], cfg["nt"], cfg["nx"], int(max_batch), cfg["slope"],
            cfg["bn_momentum"], cfg["bn_eps"])


def layout(config="paper"):
    """(params, stats, blocks) tables of a config, computed by the C core
    without allocating a model: params/stats are [(name, shape)] in
    state_dict order; blocks [(name, transposed, C, OC, H, W, KH, KW, SH, SW,
    PH, PW, OH, OW, activation, crop_before)]."""
    return lib.invnet_layout(_c_config(resolve_config(config), 1))


def count_parameters(config="paper") -> int:
    """Number of trainable parameters of a config (no model is allocated)."""
    params, _, _ = layout(config)
    return sum(math.prod(shape) for _, shape in params)


def _progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc=desc, leave=False)


DEVICES = ("auto", "cpu", "cuda")
KINDS = ("param", "grad", "m", "v", "stats")  # stats: BatchNorm running mean / variance


class InversionNet:
    """InversionNet on the C core. ``seed`` draws PyTorch's default
    initialisation from Philox streams; ``max_batch`` sizes the activation
    buffers (they grow on demand when fit() is given a larger batch_size);
    ``device`` is "cpu", "cuda" or "auto" (the GPU when one is usable)."""

    def __init__(self, config="paper", seed: int = 0, max_batch: int = 8, device: str = "auto"):
        seed = seed_arg(seed, "InversionNet: seed")
        if isinstance(max_batch, bool) or not isinstance(max_batch, (int, np.integer)) or max_batch < 1:
            raise ValueError(f"InversionNet: max_batch must be a positive int, got {max_batch!r}")
        if device not in DEVICES:
            raise ValueError(f"InversionNet: device must be 'cpu', 'cuda' or 'auto', got {device!r}")
        self.config = resolve_config(config)
        self.max_batch = int(max_batch)
        self._h = lib.invnet_create(_c_config(self.config, self.max_batch), seed, device)
        self._names, self._stat_names = self._tables()

    def _tables(self):
        params, stats, _ = lib.invnet_layout(_c_config(self.config, 1))
        self._n_params = sum(math.prod(shape) for _, shape in params)
        return [n for n, _ in params], [n for n, _ in stats]

    # ---- tensors -----------------------------------------------------------
    @property
    def device(self) -> str:
        """"cpu" or "cuda": where the model's memory and ops are."""
        return lib.invnet_device(self._h)

    def num_parameters(self) -> int:
        return self._n_params

    def _tensors(self, kind, names) -> dict:
        if self.device == "cpu":
            return {n: lib.invnet_view(self._h, kind, n) for n in names}
        return {n: lib.invnet_get(self._h, kind, n) for n in names}

    def parameters(self) -> dict:
        """name -> float32 array of each parameter: on the CPU a zero-copy view
        (writes go to the model, unseen by a saved forward: forward again before
        backward), on a GPU a copy (use set_tensor to write)."""
        return self._tensors("param", self._names)

    def gradients(self) -> dict:
        """name -> each parameter's gradient from the last backward (view on the CPU, copy on a GPU)."""
        return self._tensors("grad", self._names)

    def buffers(self) -> dict:
        """name -> each BatchNorm running mean / variance (view on the CPU, copy on a GPU)."""
        return self._tensors("stats", self._stat_names)

    def get_tensor(self, name: str | None = None, kind: str = "param") -> np.ndarray:
        """A copy of one tensor, or of the whole flat buffer when name is None.
        kind: param, grad, m, v (AdamW moments) or stats (BatchNorm statistics)."""
        if kind not in KINDS:
            raise ValueError(f"InversionNet: kind must be one of {KINDS}, got {kind!r}")
        return lib.invnet_get(self._h, kind, name)

    def set_tensor(self, name: str | None, value, kind: str = "param") -> None:
        """Copies `value` (its shape: the tensor's; name None: the whole flat
        buffer) into the model on any device."""
        if kind not in KINDS:
            raise ValueError(f"InversionNet: kind must be one of {KINDS}, got {kind!r}")
        label = name if name is not None else f"the {kind} buffer"
        lib.invnet_set(self._h, kind, name, f32(value, label))

    def state_dict(self) -> dict:
        """Copies of parameters and BatchNorm statistics under OpenFWI's names."""
        return {**{n: self.get_tensor(n, "param") for n in self._names},
                **{n: self.get_tensor(n, "stats") for n in self._stat_names}}

    def load_state_dict(self, state_dict) -> None:
        """Sets parameters and BatchNorm statistics from a dict under OpenFWI's
        names (network.py's state_dict as NumPy, or anything np.asarray accepts).
        num_batches_tracked entries are ignored; missing, unknown, mis-shaped or
        non-finite entries raise ValueError naming them, before anything is set."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"load_state_dict: expected a dict of arrays, got {type(state_dict).__name__}")
        params, stats, _ = lib.invnet_layout(_c_config(self.config, 1))
        targets = dict(params + stats)
        given = {k for k in state_dict.keys() if not str(k).endswith("num_batches_tracked")}
        missing = sorted(set(targets) - given)
        extra = sorted(given - set(targets))
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} keys (first: {missing[:3]})")
            if extra:
                parts.append(f"unexpected {len(extra)} keys (first: {extra[:3]})")
            raise ValueError(f"load_state_dict: state_dict does not fit InversionNet config: {'; '.join(parts)}")
        values = {}
        for name, shape in targets.items():
            a = np.asarray(state_dict[name])
            if a.shape != tuple(shape):
                raise ValueError(f"load_state_dict: {name!r} has shape {a.shape}, the model expects {tuple(shape)}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"load_state_dict: {name!r} holds non-finite values")
            values[name] = a
        for name, a in values.items():
            self.set_tensor(name, a, "stats" if name in self._stat_names else "param")

    @property
    def step(self) -> int:
        """AdamW steps taken so far."""
        return lib.invnet_step(self._h)

    # ---- input checks ------------------------------------------------------
    def _seis(self, seismic, name="seismic"):
        x = f32(seismic, name)
        c = self.config
        want = (c["in_channels"], c["nt"], c["nx"])
        if x.ndim != 4 or x.shape[1:] != want:
            raise ValueError(f"InversionNet: {name} must have shape (N, {want[0]}, {want[1]}, {want[2]}), "
                             f"got {x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"InversionNet: {name} holds no samples")
        return x

    def _grow(self, batch: int):
        """Makes room for `batch` samples (only activation buffers move;
        parameter views stay valid)."""
        if batch > self.max_batch:
            lib.invnet_reserve(self._h, int(batch))
            self.max_batch = int(batch)

    # ---- inference -----------------------------------------------------------
    def forward(self, seismic, train: bool = False) -> np.ndarray:
        """One C forward pass over a batch of at most max_batch samples
        (train=True: batch statistics, running statistics updated)."""
        x = self._seis(seismic)
        self._grow(x.shape[0])
        out = np.empty((x.shape[0], 1, OUT, OUT), np.float32)
        lib.invnet_forward(self._h, out, x, bool(train))
        return out

    def backward(self, dout, seismic) -> None:
        """Accumulates parameter gradients of sum(output * dout) after a
        forward(seismic, train=True) of the same batch (see gradients())."""
        x = self._seis(seismic)
        lib.invnet_backward(self._h, f32(dout, "dout"), x)

    def zero_grad(self) -> None:
        lib.invnet_zero(self._h, "grad")

    def predict(self, seismic, batch_size: int | None = None, progress: bool | None = None) -> np.ndarray:
        """Normalised velocity (N, 1, 70, 70) of normalised seismic (N, C, nt, nx),
        in eval mode, in batches of batch_size (default max_batch). A progress
        bar shows for more than one batch unless progress=False."""
        x = np.asarray(seismic)
        if x.ndim != 4:
            raise ValueError(f"InversionNet.predict: seismic must be 4-D (N, C, nt, nx), got shape {x.shape}")
        bs = self.max_batch if batch_size is None else int(batch_size)
        if bs < 1:
            raise ValueError(f"InversionNet.predict: batch_size must be positive, got {batch_size}")
        self._grow(bs)
        n = x.shape[0]
        if n == 0:
            raise ValueError("InversionNet.predict: seismic holds no samples")
        out = np.empty((n, 1, OUT, OUT), np.float32)
        starts = range(0, n, bs)
        show = (len(starts) > 1) if progress is None else bool(progress)
        for s in _progress(starts, len(starts), "InversionNet predict", show):
            xb = self._seis(x[s:s + bs])
            lib.invnet_forward(self._h, out[s:s + bs], xb, False)
        return out

    # ---- training ------------------------------------------------------------
    def train_step(self, seismic, velocity, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4,
                   l1_weight=1.0, mse_weight=1.0) -> tuple:
        """One step on one batch: returns (loss, l1, mse) before the update."""
        x = self._seis(seismic)
        v = f32(velocity, "velocity")
        if v.shape != (x.shape[0], 1, OUT, OUT):
            raise ValueError(f"InversionNet: velocity must have shape ({x.shape[0]}, 1, {OUT}, {OUT}), got {v.shape}")
        self._grow(x.shape[0])
        losses = np.zeros(3, np.float32)
        lr, b1, b2, eps, weight_decay = adam_args(lr, betas, eps, weight_decay)
        l1_weight, mse_weight = weights_arg((l1_weight, mse_weight), "loss weights (l1_weight, mse_weight)", 2)
        lib.invnet_train_step(self._h, losses, x, v, lr, b1, b2, eps, weight_decay, l1_weight, mse_weight)
        return tuple(float(t) for t in losses)

    # ---- data-parallel training: the step split in two (ubdiff.distributed) -------------------
    def flat(self, kind: str = "param") -> np.ndarray:
        """Zero-copy 1-D view of a whole buffer: param | grad | m | v (AdamW moments) | stats
        (BatchNorm running means and variances). CPU models only (a GPU model's buffers are
        device memory: get_tensor / set_tensor copy them). Writes of param or stats through
        the view are not seen by a saved forward: forward again before backward."""
        if self.device != "cpu":
            raise ValueError(f"InversionNet.flat: zero-copy views need a CPU model, this one is on {self.device!r}; "
                             "data-parallel training runs on the CPU for now")
        return lib.invnet_view(self._h, kind)

    def bn_stats(self) -> np.ndarray:
        """The BatchNorm running statistics as one 1-D view (flat("stats"))."""
        return self.flat("stats")

    def device_collective(self, kind: str, nccl, root: int | None = None) -> None:
        """A GPU model's whole buffer ``kind`` (param | grad | m | v | stats) summed over the
        ranks of ``nccl`` (ubdiff.distributed.nccl.NCCLComm) in place on the device, or set to
        rank ``root``'s: DataParallel's all-reduce where there are no zero-copy views."""
        lib.invnet_allreduce(self._h, kind, nccl.handle, 0, -1, -1 if root is None else int(root))

    def set_bn_sync(self, allreduce=None) -> None:
        """Training-mode BatchNorm statistics over all data-parallel ranks (SyncBatchNorm):
        ``allreduce(buf)`` sums a float64 array over the ranks in place (e.g.
        ``Comm.allreduce_sum``); it is called from inside forward and backward, three times
        per block and step. None: per-process statistics again (the default)."""
        from ._bn_sync import attach
        attach(self, lib.invnet_set_bn_sync, self._h, allreduce, "InversionNet")

    def forward_backward(self, seismic, velocity, loss_scale: float = 1.0, l1_weight: float = 1.0,
                         mse_weight: float = 1.0) -> tuple:
        """The first half of train_step: a training forward of the batch (batch statistics;
        running statistics updated), the L1 + MSE loss and its backward, whose parameter
        gradients, multiplied by ``loss_scale``, are ADDED to flat("grad"). Returns the
        batch's (loss, l1, mse), not scaled. ``zero_grad(); forward_backward(s, v);
        apply_update(...)`` is train_step(s, v, ...), bit for bit; a data-parallel rank
        passes loss_scale = its share of the global batch, so that the sum over ranks of
        the gradients is the gradient of the global batch's mean loss."""
        x = self._seis(seismic)
        v = f32(velocity, "velocity")
        if v.shape != (x.shape[0], 1, OUT, OUT):
            raise ValueError(f"InversionNet: velocity must have shape ({x.shape[0]}, 1, {OUT}, {OUT}), got {v.shape}")
        for name, val in (("loss_scale", loss_scale), ("l1_weight", l1_weight), ("mse_weight", mse_weight)):
            if not (isinstance(val, (int, float, np.floating)) and math.isfinite(val) and val >= 0):
                raise ValueError(f"InversionNet.forward_backward: {name} must be a finite number >= 0, got {val!r}")
        pred = self.forward(x, train=True)
        l1, mse = lib.l1_forward(pred, v), lib.mse_forward(pred, v)
        dpred = np.zeros_like(pred)
        if l1_weight > 0:
            lib.l1_backward(dpred, pred, v, float(np.float32(loss_scale) * np.float32(l1_weight)))
        if mse_weight > 0:
            lib.mse_backward(dpred, pred, v, float(np.float32(loss_scale) * np.float32(mse_weight)))
        lib.invnet_backward(self._h, dpred, x)
        loss = np.float32(l1_weight) * np.float32(l1) + np.float32(mse_weight) * np.float32(mse)   # as the C step
        return float(loss), float(l1), float(mse)

    def apply_update(self, lr: float = 1e-4, betas=(0.9, 0.999), eps: float = 1e-8,
                     weight_decay: float = 1e-4) -> None:
        """The second half of train_step: one AdamW step (decoupled weight decay, bias
        correction by the step count) from flat("grad") as it stands -- after a
        data-parallel all-reduce, the global batch's gradient."""
        b1, b2 = betas
        if not (math.isfinite(lr) and lr >= 0 and 0 <= b1 < 1 and 0 <= b2 < 1 and eps > 0
                and math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"InversionNet.apply_update: need lr >= 0, betas in [0, 1), eps > 0, weight_decay "
                             f">= 0; got lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        # in C (any device): the step also forgets the saved forward, whose activations belong to
        # the old weights (a backward after it raises until a new forward ran)
        lib.invnet_apply_update(self._h, (float(lr), float(b1), float(b2), float(eps), float(weight_decay)))

    def fit(self, seismic, velocity, epochs: int = 1, batch_size: int = 16, lr: float = 1e-4,
            betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-4, l1_weight: float = 1.0,
            mse_weight: float = 1.0, seed: int = 0, progress: bool = True) -> list:
        """Trains on (seismic, velocity) pairs (normalised; arrays or memmaps)
        with L1 + MSE loss and AdamW (OpenFWI's defaults). Each epoch visits a
        fresh permutation (numpy Generator seeded with seed + epoch) in batches
        of batch_size; a final partial batch is dropped as in OpenFWI (BatchNorm
        is unreliable on tiny batches) unless it is the only one. Returns the
        mean loss of every epoch."""
        n = len(seismic)
        if len(velocity) != n:
            raise ValueError(f"InversionNet.fit: {n} seismic records but {len(velocity)} velocity maps")
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ValueError(f"InversionNet.fit: epochs must be a positive int, got {epochs!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"InversionNet.fit: batch_size must be a positive int, got {batch_size!r}")
        seed = seed_arg(seed)
        bs = min(int(batch_size), n)
        if bs < 2:
            raise ValueError("InversionNet.fit: needs at least 2 samples per batch (BatchNorm batch statistics)")
        nb = n // bs
        history = []
        for epoch in range(int(epochs)):
            order = np.random.default_rng(seed + epoch).permutation(n)
            total, bar = 0.0, _progress(range(nb), nb, f"InversionNet epoch {epoch + 1}/{epochs}", progress)
            for i in bar:
                idx = np.sort(order[i * bs:(i + 1) * bs])  # sorted: sequential reads from memmaps
                loss, _, _ = self.train_step(np.asarray(seismic[idx]), np.asarray(velocity[idx]), lr, betas, eps,
                                             weight_decay, l1_weight, mse_weight)
                total += loss
                if progress:
                    bar.set_postfix(loss=f"{total / (i + 1):.4f}")
            history.append(total / nb)
        return history

    # ---- checkpoints ---------------------------------------------------------
    def save(self, path: str) -> None:
        """Parameters, BatchNorm statistics, AdamW moments and step to a
        safetensors checkpoint (atomic)."""
        tensors = self.state_dict()
        for kind in ("m", "v"):
            tensors.update({f"adam_{kind}.{n}": self.get_tensor(n, kind) for n in self._names})
        meta = {"kind": KIND, "config": {**self.config, "dims": list(self.config["dims"])}, "step": self.step}
        checkpoint.save(path, tensors, meta)

    @classmethod
    def load(cls, path: str, max_batch: int = 8, device: str = "auto") -> "InversionNet":
        """A model restored from save() on `device` (a checkpoint of either
        device loads on either): identical predictions and training state."""
        meta = checkpoint.read_meta(path)
        if meta.get("kind") != KIND:
            raise checkpoint.CheckpointError(f"{path}: holds a {meta.get('kind')!r} checkpoint, expected {KIND!r}")
        try:
            model = cls(meta["config"], max_batch=max_batch, device=device)
        except (KeyError, TypeError, ValueError) as e:
            raise checkpoint.CheckpointError(f"{path}: bad InversionNet config in metadata ({e})") from None
        params, stats, _ = lib.invnet_layout(_c_config(model.config, 1))
        expected = dict(params + stats)
        expected.update({f"adam_{k}.{n}": s for k in ("m", "v") for n, s in params})
        tensors, _ = checkpoint.load(path, expected=expected, kind=KIND)
        for n in model._names:
            model.set_tensor(n, tensors[n], "param")
            model.set_tensor(n, tensors[f"adam_m.{n}"], "m")
            model.set_tensor(n, tensors[f"adam_v.{n}"], "v")
        for n in model._stat_names:
            model.set_tensor(n, tensors[n], "stats")
        lib.invnet_step(model._h, int(meta.get("step", 0)))
        return model

    @classmethod
    def from_state_dict(cls, state_dict, config="paper", max_batch: int = 8,
                        device: str = "auto") -> "InversionNet":
        """A model holding OpenFWI weights: `state_dict` maps network.py's
        state_dict keys to arrays (NumPy, or anything np.asarray accepts).
        num_batches_tracked entries are ignored; missing, unknown or
        mis-shaped entries raise ValueError naming them."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"from_state_dict: expected a dict of arrays, got {type(state_dict).__name__}")
        model = cls(config, max_batch=max_batch, device=device)
        model.load_state_dict(state_dict)
        return model

    def __repr__(self):
        c = self.config
        return (f"InversionNet(dims={c['dims']}, input=({c['in_channels']}, {c['nt']}, {c['nx']}), "
                f"parameters={self.num_parameters():,}, step={self.step}, device={self.device!r})")
