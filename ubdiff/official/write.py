"""ubdiff models -> the files the authors' and OpenFWI's modules load with
``load_state_dict(strict=True)`` (.safetensors, or .pth / .pt with PyTorch).

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

import os

import numpy as np

from . import layouts as L
from .convert import schedule_buffers
from .pth import save_pth

#: Adam settings of the authors' train_diff.py (Trainer1D: lr 8e-5, betas (0.9, 0.99)).
TRAINER_ADAM = {"lr": 8e-5, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0, "amsgrad": False}


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
