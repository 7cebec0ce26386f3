"""The authors' / OpenFWI's weights <-> ubdiff models, and their files <-> ours.

Reading (:func:`load`, :func:`load_inversionnet`) accepts every layout of
ubdiff/official/layouts.py, as a path or as what torch.load returned.
Writing (:func:`export_files`, :func:`save_inversionnet`) produces what their
modules load with ``load_state_dict(strict=True)``:

- the VSNet state_dict repeats the 15 encoder blocks under
  ``encoder.module_list1/2.*`` (105 aliases, num_batches_tracked included; the
  same arrays, so a .pth stores them once, as torch.save of their module does)
  and has ``decoder_s.decoder.head.*``, which ubdiff does not model: zeros of
  shape (1000, width) and (1000,). Their forward never uses it.
- the diffusion is their UB_Diff: ``unet.*`` and ``diffusion.model.*`` hold the
  same arrays; ``diffusion.<schedule>`` is our schedule in float32.

ubdiff -> their layout -> ubdiff is the identity for every tensor ubdiff has
(parameters, BatchNorm statistics, U-Net weights and EMA); Adam's moments are
not carried either way (their optimiser indexes parameters by position).
"""
from __future__ import annotations

import math
import os
import warnings

import numpy as np

from . import layouts as L
from .pth import read_pth, save_pth

#: Adam settings of the authors' train_diff.py (Trainer1D: lr 8e-5, betas (0.9, 0.99)).
TRAINER_ADAM = {"lr": 8e-5, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0, "amsgrad": False}


# ---- reading -----------------------------------------------------------------------
def read(source, trust: bool = False):
    """A path (.pth / .pt read by :func:`read_pth`, .safetensors) or an already-read object."""
    if not isinstance(source, (str, os.PathLike)):
        return source
    path = os.fspath(source)
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such checkpoint file")
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
         seed: int = 0):
    """A UBDiff holding the authors' weights, read from their files without surgery.

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
    m = UBDiff(config, seed=seed)
    load_into(m, ae, online, chosen, require_schedule=dck.model != "unet1d")
    if dck.layout in ("trainer1d", "ema") and dck.info.get("step") is not None:
        m.diffusion.step = int(dck.info["step"])   # their step counts optimiser steps, as ours does
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


# ---- writing --------------------------------------------------------------------------
def encoder_aliases(config) -> dict:
    """{alias: name} of the encoder.module_list1/2 keys their Encoder_v registers."""
    from ..models import ae_spec
    return {a: n for a, n in ae_spec.torch_aliases(config).items() if a.startswith("encoder.")}


def vsnet_state_dict(model) -> dict:
    """Their VSNet.state_dict() (strict-loadable) from a UBDiff or CoLatentAutoencoder, in their key order."""
    ae = getattr(model, "autoencoder", model)
    sd = ae.state_dict()
    out = {k: v for k, v in sd.items() if k.startswith("encoder.")}
    out.update({a: sd[n] for a, n in encoder_aliases(ae.config).items()})   # the same arrays
    out.update({k: v for k, v in sd.items() if not k.startswith("encoder.")})
    width = ae.config["shots"] * ae.config["head_width"]
    out[L.HEAD + "weight"] = np.zeros((L.HEAD_CLASSES, width), np.float32)
    out[L.HEAD + "bias"] = np.zeros(L.HEAD_CLASSES, np.float32)
    return out


def export(model) -> tuple:
    """(VSNet state_dict, GaussianDiffusion1D state_dict) of a UBDiff, their names, NumPy arrays."""
    diff = model.diffusion.state_dict("param", prefix=L.UNET_IN_DIFFUSION)
    diff.update(schedule_buffers(model.diffusion))
    return vsnet_state_dict(model), diff


def ub_diff_state_dict(model, weights: str = "online", vsnet: dict | None = None) -> dict:
    """Their UB_Diff.state_dict() (strict-loadable) with the online or the EMA U-Net."""
    if weights not in L.WEIGHTS:
        raise ValueError(f"weights must be one of {L.WEIGHTS}, got {weights!r}")
    ae = vsnet if vsnet is not None else vsnet_state_dict(model)
    unet = model.diffusion.state_dict("param" if weights == "online" else "ema")
    out = {k: v for k, v in ae.items() if k.startswith("encoder.")}
    out.update({L.UB_DIFF_UNET + k: v for k, v in unet.items()})
    out.update({L.UB_DIFF_DIFFUSION + k: v for k, v in schedule_buffers(model.diffusion).items()})
    out.update({L.UB_DIFF_DIFFUSION + L.UNET_IN_DIFFUSION + k: v for k, v in unet.items()})   # shared
    out.update({k: v for k, v in ae.items() if not k.startswith("encoder.")})
    return out


def ema_state_dict(model) -> dict:
    """Their EMA(UB_Diff).state_dict(): initted, step, online_model.*, ema_model.*."""
    step = int(model.diffusion.step)
    # ema-pytorch sets initted at the first update past update_after_step: the call
    # with step 110 (update_every 10), i.e. after the 111th optimiser step.
    initted = step >= L.EMA_AFTER + L.EMA_EVERY + 1
    ae = vsnet_state_dict(model)
    out = {"initted": np.array([float(initted)], np.float32), "step": np.array([step], np.int64)}
    out.update({L.EMA_ONLINE + k: v for k, v in ub_diff_state_dict(model, "online", ae).items()})
    out.update({L.EMA_MODEL + k: v for k, v in ub_diff_state_dict(model, "ema", ae).items()})
    return out


def trainer_checkpoint(model) -> dict:
    """Their Trainer1D.save dict. 'opt' is a valid Adam state_dict for UB_Diff's
    parameters with empty moments (their Trainer1D.load needs one); 'model'
    and 'ema.online_model.*' are the same arrays, as in their files."""
    ema = ema_state_dict(model)
    online = L.strip(ema, L.EMA_ONLINE)
    n_params = len(model.autoencoder.parameter_names()) + 2 + len(model.diffusion.spec())   # + the unused head
    group = dict(TRAINER_ADAM, maximize=False, foreach=None, capturable=False, differentiable=False, fused=None,
                 params=list(range(n_params)))
    return {"step": int(model.diffusion.step), "model": online, "opt": {"state": {}, "param_groups": [group]},
            "ema": ema, "scaler": None}


def _save(obj, path: str, layout: str) -> None:
    """.safetensors: a flat state_dict; .pth / .pt: torch.save (needs PyTorch). Atomic:
    written to a temporary file beside ``path``, then renamed."""
    from ..data.npyio import atomic_path
    if path.endswith(".safetensors"):
        from safetensors.numpy import save_file
        if not L.is_state_dict(obj):
            raise ValueError(f"{path}: safetensors holds one flat state_dict")
        arrays = {k: np.asarray(v) for k, v in obj.items()}   # 0-d stays 0-d (num_batches_tracked)
        arrays = {k: a if a.flags.c_contiguous else a.copy(order="C") for k, a in arrays.items()}
        write = lambda tmp: save_file(arrays, tmp, metadata={"format": "pt", "layout": layout})  # noqa: E731
    elif path.endswith((".pth", ".pt")):
        write = lambda tmp: save_pth(obj, tmp)  # noqa: E731
    else:
        raise ValueError(f"{path}: choose the format by the extension: .safetensors, .pth or .pt")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_path(path) as tmp:
        write(tmp)


def export_files(model, autoencoder: str | None = None, diffusion: str | None = None) -> list:
    """Writes a UBDiff in the authors' layouts; returns the paths written.

    autoencoder: ``.pth`` -> {'model': VSNet state_dict}, the layout of
      train_EncDec.py / fine_tune_Dec_S.py that their UB_Diff(checkpoint_path=...)
      reads; ``.safetensors`` -> the VSNet state_dict.
    diffusion: ``.pt`` / ``.pth`` -> a Trainer1D.save dict (their Trainer1D.load /
      generation.py read it); ``.safetensors`` -> their EMA(UB_Diff).state_dict()
      (online and EMA weights; ``ema.online_model`` is a UB_Diff).
    """
    if autoencoder is None and diffusion is None:
        raise ValueError("export_files: give autoencoder= and/or diffusion= paths")
    written = []
    if autoencoder is not None:
        sd = vsnet_state_dict(model)
        _save(sd if autoencoder.endswith(".safetensors") else {"model": sd}, autoencoder, "vsnet")
        written.append(autoencoder)
    if diffusion is not None:
        if diffusion.endswith(".safetensors"):
            _save(ema_state_dict(model), diffusion, "ema_ub_diff")
        else:
            _save(trainer_checkpoint(model), diffusion, "trainer1d")
        written.append(diffusion)
    return written


def inversionnet_state_dict(net) -> dict:
    """OpenFWI's InversionNet.state_dict() (strict-loadable): ours plus num_batches_tracked
    (= the training steps taken, which is what BatchNorm counts in train mode)."""
    sd = net.state_dict()
    for k in [k for k in sd if k.endswith(".running_mean")]:
        sd[k[:-len("running_mean")] + "num_batches_tracked"] = np.int64(net.step)
    return sd


def save_inversionnet(net, path: str) -> None:
    """``.pth``: OpenFWI train.py's dict with what test.py reads ('model', 'epoch', 'step');
    ``.safetensors``: the state_dict."""
    sd = inversionnet_state_dict(net)
    _save(sd if path.endswith(".safetensors") else {"model": sd, "epoch": None, "step": int(net.step)}, path,
          "inversionnet")
