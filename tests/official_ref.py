"""The dicts the UB-Diff authors' and OpenFWI's code save, rebuilt in NumPy for tests.

Written from their code, independently of ubdiff/official (only the canonical
tensor names come from ubdiff, whose C layout mirrors their modules):

- VSNet (encoder_decoder/vsnet.py, encoder.py): Encoder_v registers its 15
  blocks twice -- as convBlock1_1 .. convBlock8 and, appended in that order, as
  module_list1 (the first 10) and module_list2 (the last 5); Decoder_V's
  ``blocks`` is a plain list (not registered); TDecoder_S's ViT has a
  classifier head Linear(width, 1000).
- UB_Diff (diffusion/architecture.py) registers encoder, unet, diffusion
  (GaussianDiffusion1D: 13 float32 schedule buffers, then .model = the same
  unet), decoder_v, decoder_s, fc_v, fc_s, batch_norm_v, batch_norm_s.
- ema-pytorch 0.2.3: EMA buffers initted = Tensor([False]) (float), step =
  tensor([0]) (int64), modules online_model and ema_model.
- Trainer1D.save: {'step', 'model', 'opt', 'ema', 'scaler'}.
- train_EncDec.py / fine_tune_Dec_S.py / OpenFWI train.py: {'model',
  'optimizer', 'lr_scheduler', 'epoch', 'step', 'args'}.
"""
import argparse
import math

import numpy as np

BLOCKS = ["1_1", "1_2", "2_1", "2_2", "3_1", "3_2", "4_1", "4_2", "5_1", "5_2", "6_1", "6_2", "7_1", "7_2", "8"]


def cosine_schedule_buffers(T, s=0.008):
    """GaussianDiffusion1D's buffers for cosine_beta_schedule(T) and objective pred_v (ddpm_1d.py)."""
    x = np.linspace(0, T, T + 1, dtype=np.float64)
    ac = np.cos(((x / T) + s) / (1 + s) * math.pi * 0.5) ** 2
    ac = ac / ac[0]
    betas = np.clip(1 - ac[1:] / ac[:-1], 0, 0.999)
    alphas = 1.0 - betas
    acp = np.cumprod(alphas)
    prev = np.concatenate([[1.0], acp[:-1]])
    post_var = betas * (1.0 - prev) / (1.0 - acp)
    snr = acp / (1 - acp)
    b = {"betas": betas, "alphas_cumprod": acp, "alphas_cumprod_prev": prev,
         "sqrt_alphas_cumprod": np.sqrt(acp), "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - acp),
         "log_one_minus_alphas_cumprod": np.log(1.0 - acp), "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / acp),
         "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / acp - 1), "posterior_variance": post_var,
         "posterior_log_variance_clipped": np.log(np.maximum(post_var, 1e-20)),
         "posterior_mean_coef1": betas * np.sqrt(prev) / (1.0 - acp),
         "posterior_mean_coef2": (1.0 - prev) * np.sqrt(alphas) / (1.0 - acp), "loss_weight": snr / (snr + 1)}
    return {k: v.astype(np.float32) for k, v in b.items()}


def vsnet(ae):
    """VSNet.state_dict() of a CoLatentAutoencoder's weights."""
    canon = ae.state_dict()
    out = dict(canon)
    for i, b in enumerate(BLOCKS):
        lst, j = ("module_list1", i) if i < 10 else ("module_list2", i - 10)
        pre = f"encoder.convBlock{b}."
        for k, v in canon.items():
            if k.startswith(pre):
                out[f"encoder.{lst}.{j}." + k[len(pre):]] = v
    width = ae.config["shots"] * ae.config["head_width"]
    out["decoder_s.decoder.head.weight"] = np.full((1000, width), 0.5, np.float32)
    out["decoder_s.decoder.head.bias"] = np.full(1000, -0.5, np.float32)
    return out


def ub_diff(m, kind="param"):
    """UB_Diff.state_dict() of a UBDiff, with its online ('param') or EMA U-Net."""
    unet = m.diffusion.state_dict(kind)
    out = dict(vsnet(m.autoencoder))
    out.update({"unet." + k: v for k, v in unet.items()})
    out.update({"diffusion." + k: v for k, v in cosine_schedule_buffers(m.diffusion.config["timesteps"]).items()})
    out.update({"diffusion.model." + k: v for k, v in unet.items()})
    return out


def ema(online, ema_weights, step):
    out = {"initted": np.array([float(step > 110)], np.float32), "step": np.array([step], np.int64)}
    out.update({"online_model." + k: v for k, v in online.items()})
    out.update({"ema_model." + k: v for k, v in ema_weights.items()})
    return out


def adam_state(n, betas=(0.9, 0.99), weight_decay=0.0):
    """An Adam/AdamW state_dict as torch writes it (moments of the first parameter only)."""
    group = {"lr": 8e-5, "betas": betas, "eps": 1e-8, "weight_decay": weight_decay, "amsgrad": False,
             "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": None,
             "params": list(range(n))}
    state = {0: {"step": np.array(3.0, np.float32), "exp_avg": np.zeros(4, np.float32),
                 "exp_avg_sq": np.zeros(4, np.float32)}}
    return {"state": state, "param_groups": [group]}


def trainer1d(m, step):
    """Trainer1D.save's dict of a UBDiff (online = params, EMA = ema buffer)."""
    online = ub_diff(m, "param")
    return {"step": step, "model": online, "opt": adam_state(len(online)),
            "ema": ema(online, ub_diff(m, "ema"), step), "scaler": None}


def train_args(**kw):
    """argparse.Namespace as train_EncDec.py / OpenFWI train.py leave it (a few of its fields)."""
    base = dict(device="cuda", dataset="flatvel-a", file_size=None, num_data=24000, paired_num=5000, dim5=128,
                fault_fam=False, lr=1e-4, lr_milestones=[10, 20], lr_gamma=0.98, lr_warmup_epochs=0,
                epoch_block=20, num_block=25, resume=None, sample_temporal=1, sample_spatial=1.0, epochs=500)
    base.update(kw)
    return argparse.Namespace(**base)


def train_checkpoint(state, epoch=19, step=7500, **args):
    """The dict train_EncDec.py / fine_tune_Dec_S.py / OpenFWI train.py save."""
    sched = {"milestones": [750, 1500], "gamma": 0.98, "warmup_factor": 1e-5, "warmup_iters": 0,
             "warmup_method": "linear", "base_lrs": [1e-4], "last_epoch": step, "_step_count": step + 1,
             "verbose": False, "_get_lr_called_within_step": False, "_last_lr": [1e-4]}
    return {"model": state, "optimizer": adam_state(len(state), betas=(0.9, 0.999), weight_decay=1e-4),
            "lr_scheduler": sched, "epoch": epoch, "step": step, "args": train_args(**args)}


def inversionnet(net, step=11):
    """OpenFWI InversionNet.state_dict(): ours + BatchNorm's num_batches_tracked."""
    sd = net.state_dict()
    for k in [k for k in sd if k.endswith(".running_mean")]:
        sd[k.replace("running_mean", "num_batches_tracked")] = np.int64(step)
    return sd


def legacy_inversionnet(sd):
    """The same with OpenFWI's old Sequential names (network.py's replace_legacy undoes this)."""
    out = {}
    for k, v in sd.items():
        block, rest = k.split(".", 1)
        seq = "Conv2DwithBN" if block.startswith("convblock") or block.endswith("_2") or block == "deconv6" \
            else "Deconv2DwithBN"
        out[f"{block}.{seq}.{rest.split('.', 1)[1]}"] = v
    return out


def with_prefix(d, prefix="module."):
    return {prefix + k: v for k, v in d.items()}
