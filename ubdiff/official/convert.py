"""The authors' / OpenFWI's files -> ubdiff models (writing: ubdiff/official/write.py).

:func:`load` and :func:`load_inversionnet` accept every layout of
ubdiff/official/layouts.py, as a path or as what torch.load returned, and load
strictly: a missing, unknown or mis-shaped tensor raises, naming it.
"""
from __future__ import annotations

import math
import os
import warnings

import numpy as np

from . import layouts as L
from .pth import read_pth, require_checkpoint_file


# ---- reading -----------------------------------------------------------------------
def read(source, trust: bool = False):
    """A path (.pth / .pt read by :func:`read_pth`, .safetensors) or an already-read object."""
    if not isinstance(source, (str, os.PathLike)):
        return source
    path = os.fspath(source)
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file
        require_checkpoint_file(path)
        return load_file(path)
    return read_pth(path, trust=trust)


def inspect(source, trust: bool = False) -> L.Checkpoint:
    """What a file (or torch.load's result) holds: layout, model, weights, info."""
    if isinstance(source, L.Checkpoint):
        return source
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "checkpoint"
    return L.parse(read(source, trust), name)


def schedule_buffers(diffusion) -> dict:
    """Our schedule under GaussianDiffusion1D's buffer names (float32, as PyTorch stores them)."""
    s = diffusion.schedule
    s["log_one_minus_alphas_cumprod"] = np.log(1.0 - s["alphas_cumprod"])
    return {k: s[k].astype(np.float32) for k in L.SCHEDULE_BUFFERS if k in s}


def check_schedule(diffusion, state: dict, required: bool = True) -> None:
    """Raise ValueError unless the schedule buffers in ``state`` equal ours (to float32 rounding).
    required=False: a state without any schedule (a bare Unet1D) passes."""
    ours = schedule_buffers(diffusion)
    if "betas" not in state:
        if not required and not any(k in state for k in L.SCHEDULE_BUFFERS):
            return
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


def load_into(model, ae_state: dict, diffusion_state: dict, ema_state: dict | None = None,
              require_schedule: bool = True) -> None:
    """Load the authors' tensors into a UBDiff (strict: missing, unknown or mis-shaped keys raise).
    diffusion_state goes into the weights, ema_state (default: the same) into the EMA copy."""
    model.autoencoder.load_state_dict(ae_state, strict=True)
    check_schedule(model.diffusion, diffusion_state, required=require_schedule)
    _load_unet(model.diffusion, diffusion_state, "param", "diffusion")
    if ema_state is not None:
        check_schedule(model.diffusion, ema_state, required=require_schedule)
    _load_unet(model.diffusion, diffusion_state if ema_state is None else ema_state, "ema", "EMA")


def _load_unet(diffusion, state, kind, what):
    pre = L.UNET_IN_DIFFUSION
    names = {pre + n for n, _, _ in diffusion.spec()}
    extra = [k for k in state if k not in names and k not in L.SCHEDULE_BUFFERS]
    unknown = [k for k in extra if k.startswith(pre)]
    if unknown:
        raise KeyError(f"{what} state_dict: unexpected U-Net keys {unknown[:5]} (another Unet1D configuration?)")
    if extra:
        warnings.warn(f"{what} state_dict: ignoring keys {extra[:5]}", stacklevel=3)
    diffusion.load_state_dict({k: np.asarray(v, np.float32) for k, v in state.items() if k in names},
                              kind=kind, prefix=pre, strict=True)


def load(diffusion, autoencoder=None, weights: str = "ema", config="paper", constants=None, trust: bool = False,
         seed: int = 0, device: str = "auto"):
    """A UBDiff holding the authors' weights, read from their files without surgery, on
    ``device`` ("cpu", "cuda" or "auto", as :class:`ubdiff.UBDiff`).

    diffusion: Trainer1D ``model-N.pt`` (or any UB_Diff / GaussianDiffusion1D /
      Unet1D / EMA state_dict, DataParallel prefixes allowed): a path, what
      torch.load returned, or :func:`inspect`'s result.
    autoencoder: their VSNet checkpoint (train_EncDec.py / fine_tune_Dec_S.py) or
      state_dict; default: the VSNet part of the UB_Diff state_dict in ``diffusion``.
    weights: "ema" (default) puts their EMA weights into ubdiff's EMA copy, which
      ubdiff samples with; "online" puts the online weights there (their
      generation.py samples with those). The online weights always go into the
      parameters. Files without an EMA give their one set to both.
    constants: family name or dataset folder; default the ``args.dataset`` the
      autoencoder checkpoint records, if it names an OpenFWI family.
    """
    from ..data import openfwi
    from ..pipeline import UBDiff
    dck = inspect(diffusion, trust)
    if dck.model not in L.DIFFUSION_MODELS:
        raise ValueError(f"{dck.name}: holds a {dck.model} state_dict, not a diffusion checkpoint "
                         f"(a Trainer1D model-N.pt or a UB_Diff / GaussianDiffusion1D state_dict)")
    if autoencoder is None:
        if dck.model != "ub_diff":
            raise ValueError(f"{dck.name}: a {dck.model} state_dict has no autoencoder in it; "
                             "pass the VSNet checkpoint as autoencoder (--autoencoder)")
        ack = dck
    else:
        ack = inspect(autoencoder, trust)
    ae = L.vsnet_part(ack, weights)
    online, chosen = L.diffusion_part(dck, "online"), L.diffusion_part(dck, weights)
    m = UBDiff(config, seed=seed, device=device)
    load_into(m, ae, online, chosen, require_schedule=dck.model != "unet1d")
    if dck.layout in ("trainer1d", "ema") and dck.info.get("step") is not None:
        m.diffusion.step = int(dck.info["step"])   # their step counts optimiser steps, as ours does
    if weights == "ema" and "ema_initted" in dck.info:
        # continue ema-pytorch's schedule where theirs stopped; with the online weights in the EMA
        # slot the EMA restarts, and its next update after the warm-up copies (initted False)
        m.diffusion.ema_initted = bool(dck.info["ema_initted"])
    if constants is None:
        family = (ack.info.get("args") or {}).get("dataset")
        try:
            constants = openfwi.family_key(family) if isinstance(family, str) else None
        except ValueError:
            constants = None
    if constants is not None:
        m.set_constants(constants)
    return m


def load_inversionnet(source, config=None, trust: bool = False, max_batch: int = 8):
    """OpenFWI's InversionNet checkpoint (train.py's dict, a bare or DataParallel
    state_dict, legacy names) -> ubdiff.InversionNet. config=None reads the
    widths from the tensors and the time axis from ``args.sample_temporal``."""
    from ..models.inversionnet import InversionNet
    ck = inspect(source, trust)
    if ck.model != "inversionnet":
        raise ValueError(f"{ck.name}: holds a {ck.model} state_dict, not OpenFWI's InversionNet")
    sd = {k: v for k, v in ck.online.items() if not k.endswith("num_batches_tracked")}
    if config is None:
        config = inversionnet_config(sd, ck.info.get("args"))
    return InversionNet.from_state_dict(sd, config=config, max_batch=max_batch)


def inversionnet_config(sd: dict, args: dict | None = None) -> dict:
    """The InversionNet config of an OpenFWI state_dict: dim1..dim5 and the input
    channels from the weight shapes; nt = ceil(1000 / args.sample_temporal)
    (OpenFWI's loader keeps every k-th time sample), 1000 without args."""
    def out_ch(block):
        key = f"{block}.layers.0.weight"
        if key not in sd:
            raise KeyError(f"InversionNet state_dict: missing {key!r}")
        return int(np.shape(sd[key])[0])
    dims = tuple(out_ch(b) for b in ("convblock1", "convblock2_1", "convblock4_1", "convblock6_1", "convblock8"))
    st = int((args or {}).get("sample_temporal") or 1)
    return {"dims": dims, "in_channels": int(np.shape(sd["convblock1.layers.0.weight"])[1]),
            "nt": math.ceil(1000 / st)}
