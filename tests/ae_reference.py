"""NumPy (float64) reference of the co-latent autoencoder in eval mode,
written from the authors' PyTorch modules (VSNet / Encoder_v / Decoder_V /
TDecoder_S / vit.py), reading the parameters by their state_dict names."""
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

BN_EPS, LN_EPS = 1e-5, 1e-6


def conv2d(x, w, b, s, p):
    """x (B,C,H,W), w (O,C,k,k) -> (B,O,OH,OW) as torch.nn.Conv2d."""
    x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    k = w.shape[2]
    win = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (B,C,OH,OW,k,k)
    return np.einsum("bchwij,ocij->bohw", win, w) + b[None, :, None, None]


def conv_transpose2d(x, w, b, s, p):
    """x (B,C,H,W), w (C,O,k,k) -> (B,O,(H-1)s-2p+k, ...) as torch.nn.ConvTranspose2d."""
    B, C, H, W = x.shape
    k = w.shape[2]
    full = np.zeros((B, w.shape[1], (H - 1) * s + k, (W - 1) * s + k))
    for i in range(k):
        for j in range(k):
            full[:, :, i:i + (H - 1) * s + 1:s, j:j + (W - 1) * s + 1:s] += np.einsum("bchw,co->bohw", x, w[:, :, i, j])
    OH, OW = full.shape[2] - 2 * p, full.shape[3] - 2 * p
    return full[:, :, p:p + OH, p:p + OW] + b[None, :, None, None]


def bn(x, P, pre, train=False):
    """BatchNorm2d: eval mode with the running statistics, training mode with
    the batch's (biased variance), over every axis but the channel axis 1."""
    g, be = P[pre + ".weight"], P[pre + ".bias"]
    sh = (1, -1) + (1,) * (x.ndim - 2)
    if train:
        axes = (0,) + tuple(range(2, x.ndim))
        rm, rv = x.mean(axes), x.var(axes)
    else:
        rm, rv = P[pre + ".running_mean"], P[pre + ".running_var"]
    return (x - rm.reshape(sh)) / np.sqrt(rv.reshape(sh) + BN_EPS) * g.reshape(sh) + be.reshape(sh)


def layernorm(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * g + b


def gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def block(x, P, pre, transposed, s, p, act, train=False):
    w, b = P[pre + ".layers.0.weight"], P[pre + ".layers.0.bias"]
    y = conv_transpose2d(x, w, b, s, p) if transposed else conv2d(x, w, b, s, p)
    y = bn(y, P, pre + ".layers.1", train)
    return np.tanh(y) if act == "tanh" else np.maximum(y, 0)


ENC = [("1_1", 1, 0), ("1_2", 1, 1), ("2_1", 2, 1), ("2_2", 1, 0), ("3_1", 1, 1), ("3_2", 1, 0), ("4_1", 2, 1),
       ("4_2", 1, 0), ("5_1", 1, 0), ("5_2", 1, 0), ("6_1", 2, 1), ("6_2", 1, 0), ("7_1", 2, 1), ("7_2", 2, 1),
       ("8", 2, 1)]


def encode(P, vel, train=False):
    x = vel.astype(np.float64)
    for name, s, p in ENC:
        x = block(x, P, f"encoder.convBlock{name}", False, s, p, "tanh" if name == "8" else "relu", train)
    return x.reshape(x.shape[0], -1)


def head(P, z, fc, bn_name, train=False):
    y = z @ P[fc + ".weight"].T + P[fc + ".bias"]
    y = bn(y, P, bn_name, train)
    return np.where(y > 0, y, 0.2 * y)


def decode_velocity(P, z, train=False):
    x = head(P, z, "fc_v", "batch_norm_v", train)[:, :, None, None]
    for name, tr, s, p in [("1_1", True, 2, 0), ("1_2", False, 1, 1), ("2_1", True, 2, 1), ("2_2", False, 1, 1),
                           ("3_1", True, 2, 1), ("3_2", False, 1, 1), ("4_1", True, 2, 1), ("4_2", False, 1, 1),
                           ("5_1", True, 2, 1), ("5_2", False, 1, 1)]:
        x = block(x, P, f"decoder_v.deconvBlock{name}", tr, s, p, "relu", train)
    x = x[:, :, 5:-5, 5:-5]  # F.pad(x, [-5, -5, -5, -5])
    return block(x, P, "decoder_v.deconvBlock6", False, 1, 1, "tanh", train)


def decode_seismic(P, z, cfg, train=False):
    zs = head(P, z, "fc_s", "batch_norm_s", train)
    B, C = zs.shape
    pre = "decoder_s.decoder."
    tok = zs @ P[pre + "patch_embed.proj.weight"].reshape(C, C).T + P[pre + "patch_embed.proj.bias"]
    x = np.concatenate([np.broadcast_to(P[pre + "cls_token"].reshape(1, 1, C), (B, 1, C)), tok[:, None]], 1)
    x = x + P[pre + "pos_embed"]
    NH = cfg["heads"]
    hd = C // NH
    for l in range(cfg["depth"]):
        bp = f"{pre}blocks.{l}."
        h = layernorm(x, P[bp + "norm1.weight"], P[bp + "norm1.bias"])
        qkv = h @ P[bp + "attn.qkv.weight"].T + P[bp + "attn.qkv.bias"]  # (B, T, 3C)
        qkv = qkv.reshape(B, 2, 3, NH, hd).transpose(2, 0, 3, 1, 4)  # (3, B, NH, T, hd)
        q, k, v = qkv
        dp = q @ k.transpose(0, 1, 3, 2) * hd ** -0.5
        att = np.exp(dp - dp.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = (att @ v).transpose(0, 2, 1, 3).reshape(B, 2, C)
        x = x + o @ P[bp + "attn.proj.weight"].T + P[bp + "attn.proj.bias"]
        h = layernorm(x, P[bp + "norm2.weight"], P[bp + "norm2.bias"])
        h = gelu(h @ P[bp + "mlp.fc1.weight"].T + P[bp + "mlp.fc1.bias"])
        x = x + h @ P[bp + "mlp.fc2.weight"].T + P[bp + "mlp.fc2.bias"]
    x = layernorm(x, P[pre + "norm.weight"], P[pre + "norm.bias"])
    sel = x.transpose(0, 2, 1)[:, :, 1:].reshape(B, -1)  # the non-class token
    out = sel @ P["decoder_s.mlp.weight"].T + P["decoder_s.mlp.bias"]
    return out.reshape(B, cfg["shots"], cfg["nt"], cfg["nr"])


def loss(pred, target, g1=1.0, g2=1.0):
    d = pred - target
    return g1 * np.abs(d).mean() + g2 * (d ** 2).mean()
