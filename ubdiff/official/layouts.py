"""What the UB-Diff authors' and OpenFWI's code put in their checkpoint files.

Written from their code (github.com/junhuanyang/UB-Diff; lanl/OpenFWI;
lucidrains' ema-pytorch 0.2.3 and denoising-diffusion-pytorch):

``VSNet.state_dict()`` (encoder_decoder/vsnet.py; the names of ubdiff/models/ae_spec.py)
    encoder.convBlock{1_1 .. 7_2, 8}.layers.{0,1}.*
    encoder.module_list1.{0..9}.*, encoder.module_list2.{0..4}.*
        -- the same 15 blocks again: Encoder_v appends them to two nn.ModuleLists,
        so nn.Module registers (and saves) each tensor under both names
    fc_v.*, fc_s.*, batch_norm_v.*, batch_norm_s.*
    decoder_v.deconvBlock{1_1 .. 5_2, 6}.layers.{0,1}.*
        -- Decoder_V also keeps its blocks in a plain Python list, ``blocks``,
        which nn.Module does not register: no keys (read if present)
    decoder_s.* including decoder_s.decoder.head.{weight, bias}, the
        classifier head of the ViT in TDecoder_S, built but never used
``UB_Diff.state_dict()`` (diffusion/architecture.py): the VSNet groups, plus
    unet.*              Unet1D
    diffusion.model.*   the same Unet1D (GaussianDiffusion1D holds it as .model)
    diffusion.<13 schedule buffers>  (SCHEDULE_BUFFERS)
``EMA(UB_Diff).state_dict()`` (ema-pytorch 0.2.3)
    initted (float (1,)), step (int64 (1,)), online_model.<UB_Diff keys>, ema_model.<UB_Diff keys>
Trainer1D.save, ``model-<milestone>.pt`` (diffusion/diffusion_trainer.py)
    {'step': int, 'model': UB_Diff.state_dict(), 'opt': Adam.state_dict(),
     'ema': EMA.state_dict(), 'scaler': None}
    (lucidrains' own Trainer1D writes the same around a bare GaussianDiffusion1D:
    model.* + schedule buffers, and EMA keys ema_model.model.*, ...)
train_EncDec.py (check_point.pth), fine_tune_Dec_S.py (ft_check_point.pth,
ft_model_<epoch>.pth), OpenFWI's train.py (checkpoint.pth, model_<epoch>.pth)
    {'model': state_dict, 'optimizer': AdamW.state_dict(),
     'lr_scheduler': WarmupMultiStepLR.state_dict(), 'epoch': int, 'step': int,
     'args': argparse.Namespace}
OpenFWI ``InversionNet.state_dict()`` (network.py): convblock1 .. convblock8,
    deconv1_1 .. deconv6, each ``.layers.{0,1}.*``; older checkpoints name the
    Sequential ``Conv2DwithBN`` / ``Deconv2DwithBN`` / ... instead of ``layers``
    (their network.replace_legacy renames them; so does :func:`parse`).

Anything trained with ``torch.nn.DataParallel`` prefixes every key with ``module.``.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import numpy as np

#: GaussianDiffusion1D's registered buffers (float32 copies of float64 schedules), in registration order.
SCHEDULE_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2", "loss_weight")
#: GaussianDiffusion1D keeps its Unet1D under this prefix.
UNET_IN_DIFFUSION = "model."
#: Top-level modules of VSNet, in UB_Diff's registration order after unet/diffusion.
VSNET_PREFIXES = ("encoder.", "decoder_v.", "decoder_s.", "fc_v.", "fc_s.", "batch_norm_v.", "batch_norm_s.")
#: UB_Diff's own diffusion modules.
UB_DIFF_UNET, UB_DIFF_DIFFUSION = "unet.", "diffusion."
#: The unused classifier head of TDecoder_S's ViT: Linear(width -> 1000 classes).
HEAD, HEAD_CLASSES = "decoder_s.decoder.head.", 1000
#: Keys of ema-pytorch's EMA state_dict besides the two model copies.
EMA_BUFFERS = ("initted", "step")
EMA_ONLINE, EMA_MODEL = "online_model.", "ema_model."
#: ema-pytorch 0.2.3 defaults the authors keep (update_after_step, update_every).
EMA_AFTER, EMA_EVERY = 100, 10
#: Trainer1D.save's keys; the training scripts' keys (train_EncDec.py, fine_tune_Dec_S.py, OpenFWI train.py).
TRAINER1D_KEYS = ("step", "model", "opt", "ema", "scaler")
TRAIN_KEYS = ("model", "optimizer", "lr_scheduler", "epoch", "step", "args")
#: OpenFWI's legacy Sequential names (network.replace_legacy).
LEGACY_INVNET = ("Conv2DwithBN", "Conv2DwithBN_Tanh", "Deconv2DwithBN", "ResizeConv2DwithBN")

MODELS = ("ub_diff", "vsnet", "gaussian_diffusion1d", "unet1d", "inversionnet")
DIFFUSION_MODELS = ("ub_diff", "gaussian_diffusion1d", "unet1d")
WEIGHTS = ("ema", "online")


@dataclass
class Checkpoint:
    """One file, recognised: ``layout`` is how it is wrapped ('trainer1d', 'ema',
    'train' for the training scripts' dicts, 'state_dict' for a bare one);
    ``model`` which module's state_dict it holds (MODELS); ``online`` those
    weights, ``ema`` the EMA copy with the same keys (Trainer1D / EMA files
    only); ``info`` step / epoch / args as plain values."""
    layout: str
    model: str
    online: dict
    ema: dict | None = None
    info: dict = field(default_factory=dict)
    name: str = "checkpoint"

    def weights(self, which: str = "ema") -> dict:
        """The EMA weights (default; the online ones where the file has no EMA) or the online ones."""
        if which not in WEIGHTS:
            raise ValueError(f"weights must be one of {WEIGHTS}, got {which!r}")
        return self.ema if which == "ema" and self.ema is not None else self.online


def _is_array(v) -> bool:
    return isinstance(v, (np.ndarray, np.generic))


def is_state_dict(d) -> bool:
    return isinstance(d, dict) and bool(d) and all(isinstance(k, str) and _is_array(v) for k, v in d.items())


def strip(d: dict, prefix: str) -> dict:
    """The entries of d under ``prefix``, without it."""
    n = len(prefix)
    return {k[n:]: v for k, v in d.items() if k.startswith(prefix)}


def strip_data_parallel(d: dict) -> dict:
    """Removes DataParallel's ``module.`` when every key carries it."""
    if d and all(k.startswith("module.") for k in d):
        return strip(d, "module.")
    return d


def replace_legacy(d: dict) -> dict:
    """OpenFWI's legacy Sequential names (Conv2DwithBN, ...) -> ``layers``, one key component at a time."""
    return {".".join("layers" if part in LEGACY_INVNET else part for part in k.split(".")): v for k, v in d.items()}


def model_kind(d: dict, name: str = "checkpoint") -> str:
    """Which module a state_dict belongs to (MODELS), from its keys."""
    if any(k.startswith((UB_DIFF_UNET, UB_DIFF_DIFFUSION + UNET_IN_DIFFUSION)) for k in d):
        return "ub_diff"
    if UNET_IN_DIFFUSION + "init_conv.weight" in d:
        return "gaussian_diffusion1d"
    if "init_conv.weight" in d:
        return "unet1d"
    if any(k.startswith("encoder.") for k in d) and any(k.startswith("decoder_") for k in d):
        return "vsnet"
    if any(k.startswith("convblock1.") for k in d):
        return "inversionnet"
    raise ValueError(f"{name}: a state_dict of an unknown model (first keys {list(d)[:4]}); expected the UB-Diff "
                     "authors' VSNet / UB_Diff / GaussianDiffusion1D / Unet1D or OpenFWI's InversionNet")


def _int(v):
    a = np.asarray(v).reshape(-1)
    return int(a[0]) if a.size == 1 and np.issubdtype(a.dtype, np.number) else None


def _ema_online(ema_sd: dict) -> dict:
    """The online weights an EMA state_dict holds; later ema-pytorch versions keep the
    online model out of it (a list, not a submodule): then the EMA weights stand in."""
    return strip(ema_sd, EMA_ONLINE) or strip(ema_sd, EMA_MODEL)


def parse(obj, name: str = "checkpoint") -> Checkpoint:
    """Recognises what torch.load (or safetensors) returned for one of the layouts above."""
    if not isinstance(obj, dict):
        raise ValueError(f"{name}: expected a checkpoint dict or a state_dict, got {type(obj).__name__}")
    info, ema_sd = {}, None
    if isinstance(obj.get("ema"), dict) and (isinstance(obj.get("model"), dict) or EMA_BUFFERS[0] in obj["ema"]):
        layout, ema_sd = "trainer1d", obj["ema"]
        online = obj["model"] if isinstance(obj.get("model"), dict) else _ema_online(ema_sd)
        info["step"] = _int(obj["step"]) if "step" in obj else _int(ema_sd.get("step"))
    elif is_state_dict(obj) and EMA_BUFFERS[0] in obj and any(k.startswith(EMA_MODEL) for k in obj):
        layout, ema_sd = "ema", obj
        online = _ema_online(obj)
        info["step"] = _int(obj.get("step"))
    elif is_state_dict(obj):
        layout, online = "state_dict", obj
    else:
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                layout, online = "train", obj[key]
                break
        else:
            raise ValueError(f"{name}: neither a state_dict nor a known checkpoint dict (keys {sorted(obj)[:8]}); "
                             f"known: Trainer1D {list(TRAINER1D_KEYS)}, training scripts {list(TRAIN_KEYS)}")
        for k in ("epoch", "step"):
            if _int(obj.get(k)) is not None:
                info[k] = _int(obj[k])
        if isinstance(obj.get("args"), argparse.Namespace):
            info["args"] = vars(obj["args"])
        elif isinstance(obj.get("args"), dict):
            info["args"] = dict(obj["args"])
    if not is_state_dict(online):
        bad = [k for k, v in online.items() if not _is_array(v)][:3] if isinstance(online, dict) else []
        raise ValueError(f"{name}: the weights are not a state_dict of tensors (entries {bad} are not tensors)")
    online = strip_data_parallel(online)
    ema = None
    if ema_sd is not None and _int(ema_sd.get(EMA_BUFFERS[0])) is not None:
        info["ema_initted"] = bool(_int(ema_sd[EMA_BUFFERS[0]]))   # ema-pytorch copied after its warm-up
    if ema_sd is not None:
        ema = strip_data_parallel(strip(ema_sd, EMA_MODEL)) or None
        if ema is not None and not is_state_dict(ema):
            raise ValueError(f"{name}: the EMA's weights are not tensors")
    kind = model_kind(online, name)
    if kind == "inversionnet":
        online = replace_legacy(online)
    if ema is not None and set(ema) != set(online):
        diff = sorted(set(ema) ^ set(online))[:4]
        raise ValueError(f"{name}: the EMA copy and the model hold different keys (e.g. {diff})")
    return Checkpoint(layout, kind, online, ema, info, name)


def vsnet_part(ck: Checkpoint, weights: str = "ema") -> dict:
    """The VSNet state_dict inside a VSNet or UB_Diff checkpoint."""
    if ck.model not in ("vsnet", "ub_diff"):
        raise ValueError(f"{ck.name}: holds a {ck.model} state_dict, which has no autoencoder (VSNet) in it")
    sd = ck.weights(weights)
    if ck.model == "vsnet":
        return dict(sd)
    _check_ub_diff_keys(ck, sd)
    return {k: v for k, v in sd.items() if k.startswith(VSNET_PREFIXES)}


def diffusion_part(ck: Checkpoint, weights: str = "ema") -> dict:
    """The GaussianDiffusion1D state_dict (Unet1D under 'model.', schedule buffers
    where stored) inside a UB_Diff, GaussianDiffusion1D or Unet1D checkpoint."""
    if ck.model not in DIFFUSION_MODELS:
        raise ValueError(f"{ck.name}: holds a {ck.model} state_dict, not a diffusion model (expected one of "
                         f"{list(DIFFUSION_MODELS)})")
    sd = ck.weights(weights)
    if ck.model == "gaussian_diffusion1d":
        return dict(sd)
    if ck.model == "unet1d":
        return {UNET_IN_DIFFUSION + k: v for k, v in sd.items()}
    _check_ub_diff_keys(ck, sd)
    out = strip(sd, UB_DIFF_DIFFUSION)
    for k, v in strip(sd, UB_DIFF_UNET).items():   # the same tensors as diffusion.model.*
        other = out.setdefault(UNET_IN_DIFFUSION + k, v)
        if other is not v and not np.array_equal(other, v):
            raise ValueError(f"{ck.name}: unet.{k} and diffusion.model.{k} differ; in UB_Diff they are one tensor")
    return out


def _check_ub_diff_keys(ck, sd):
    extra = [k for k in sd if not k.startswith(VSNET_PREFIXES + (UB_DIFF_UNET, UB_DIFF_DIFFUSION))]
    if extra:
        raise KeyError(f"{ck.name}: unexpected keys in a UB_Diff state_dict: {extra[:5]}")
