"""The UB-Diff authors' PyTorch checkpoints <-> :class:`ubdiff.UBDiff` (NumPy only).

Their autoencoder is ``VSNet`` (keys as in ubdiff/models/ae_spec.py, incl.
BatchNorm running statistics, num_batches_tracked, the duplicate
``module_list1/2`` / ``blocks`` aliases and an unused ``decoder_s.decoder.head``).
Their diffusion is lucidrains' ``GaussianDiffusion1D`` wrapping ``Unet1D``:
the U-Net's tensors under ``model.``, plus the schedule buffers, which must
equal ours (cosine, s = 0.008, T steps) -- a checkpoint trained with another
schedule would sample wrongly, so a mismatch raises.

A Trainer1D checkpoint ({'model': ..., 'ema': ..., 'step': ...}) is unwrapped
by :func:`unwrap_diffusion`; its EMA weights sit under ``ema_model.model.``.
Reading .pth files needs PyTorch (:func:`read_pth`); nothing else here does.
"""
from __future__ import annotations

import warnings

import numpy as np

PREFIX = "model."
#: GaussianDiffusion1D's registered buffers (float32 copies of float64 schedules).
SCHEDULE_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2", "loss_weight")


def schedule_buffers(diffusion) -> dict:
    """Our schedule under GaussianDiffusion1D's buffer names (float32, as PyTorch stores them)."""
    s = diffusion.schedule
    s["log_one_minus_alphas_cumprod"] = np.log(1.0 - s["alphas_cumprod"])
    return {k: s[k].astype(np.float32) for k in SCHEDULE_BUFFERS if k in s}


def export(model) -> tuple:
    """(VSNet state_dict, GaussianDiffusion1D state_dict) of a UBDiff, authors' names, NumPy arrays."""
    ae = model.autoencoder.state_dict()
    diff = model.diffusion.state_dict("param", prefix=PREFIX)
    diff.update(schedule_buffers(model.diffusion))
    return ae, diff


def check_schedule(diffusion, state: dict) -> None:
    """Raise ValueError unless the schedule buffers in ``state`` equal ours (to float32 rounding)."""
    ours = schedule_buffers(diffusion)
    if "betas" not in state:
        raise KeyError("diffusion state_dict: missing 'betas' (is this a GaussianDiffusion1D state_dict?)")
    for k, want in ours.items():
        if k not in state:
            continue   # older versions register fewer buffers
        got = np.asarray(state[k], np.float64).reshape(-1)
        if got.shape != want.shape:
            raise ValueError(f"diffusion state_dict: {k!r} has {got.size} steps, our schedule has T = {want.size}")
        # float32 storage of float64 values: relative error <= 2^-24; 1e-5 leaves room for
        # their float64 -> float32 order of operations. atol for the ~0 entries.
        if not np.allclose(got, want, rtol=1e-5, atol=1e-7):
            i = int(np.argmax(np.abs(got - want)))
            raise ValueError(f"diffusion state_dict: schedule buffer {k!r} differs from ours at step {i} "
                             f"({got[i]!r} vs {float(want[i])!r}): not a cosine schedule with s = 0.008")


def load_into(model, ae_state: dict, diffusion_state: dict, ema_state: dict | None = None) -> None:
    """Load the authors' tensors into a UBDiff (strict: missing, unknown or mis-shaped keys raise)."""
    model.autoencoder.load_state_dict(ae_state, strict=True)
    check_schedule(model.diffusion, diffusion_state)
    _load_unet(model.diffusion, diffusion_state, "param", "diffusion")
    _load_unet(model.diffusion, diffusion_state if ema_state is None else ema_state, "ema", "EMA")


def _load_unet(diffusion, state, kind, what):
    names = {PREFIX + n for n, _, _ in diffusion.spec()}
    extra = [k for k in state if k not in names and k not in SCHEDULE_BUFFERS]
    unknown = [k for k in extra if k.startswith(PREFIX)]
    if unknown:
        raise KeyError(f"{what} state_dict: unexpected U-Net keys {unknown[:5]} (another Unet1D configuration?)")
    if extra:
        warnings.warn(f"{what} state_dict: ignoring keys {extra[:5]}", stacklevel=3)
    diffusion.load_state_dict({k: np.asarray(v, np.float32) for k, v in state.items() if k in names},
                              kind=kind, prefix=PREFIX, strict=True)


def unwrap_autoencoder(obj) -> dict:
    """A VSNet state_dict from what torch.load returned: the dict itself, or under
    'model' / 'state_dict'; a DataParallel 'module.' prefix is removed."""
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ValueError(f"autoencoder checkpoint: expected a state_dict, got {type(obj).__name__}")
    return {k[7:] if k.startswith("module.") else k: v for k, v in obj.items()}


def unwrap_diffusion(obj) -> tuple:
    """(GaussianDiffusion1D state_dict, EMA state_dict or None) from torch.load's result:
    a Trainer1D checkpoint {'model', 'ema', ...} or a bare state_dict."""
    if not isinstance(obj, dict):
        raise ValueError(f"diffusion checkpoint: expected a dict, got {type(obj).__name__}")
    ema = None
    if isinstance(obj.get("model"), dict):
        if isinstance(obj.get("ema"), dict):
            pre = "ema_model."
            ema = {k[len(pre):]: v for k, v in obj["ema"].items() if k.startswith(pre)} or None
        obj = obj["model"]
    return dict(obj), ema


def read_pth(path: str, trust: bool = False):
    """torch.load(path) with tensors turned into NumPy arrays. Needs PyTorch.
    ``trust=True`` allows arbitrary pickles (only for files you trust)."""
    try:
        import torch
    except ImportError:
        raise ImportError("reading .pth checkpoints needs PyTorch (pip install torch); ubdiff itself does not. "
                          "Alternatively convert them where torch is installed: "
                          "ubdiff.official.read_pth -> safetensors.numpy.save_file") from None
    obj = torch.load(path, map_location="cpu", weights_only=not trust)

    def conv(x):
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        return x
    return conv(obj)
