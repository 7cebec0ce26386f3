"""NumPy (float64) reference of lucidrains' 2-D ``Unet`` (denoising-diffusion-
pytorch 1.8.0): the state_dict key/shape table, written from the PyTorch
module definition, and the forward pass, written from its forward code, plus
the padding of a map to a multiple of 2^(levels-1) that ubdiff wraps around
it. Independent of the C implementation it checks; the pieces it shares with
the 1-D reference (GroupNorm, RMSNorm, activations, softmax, sinusoidal
embedding) come from tests/unet_ref.py, which checks them for the 1-D U-Net."""
import math

import numpy as np
from unet_ref import gelu, silu, sinusoidal, softmax


def torch_keys(dim, dim_mults, full_attn=None, channels=1, heads=4, dim_head=32):
    """[(key, shape)] in the order Unet(...).state_dict() lists them."""
    n = len(dim_mults)
    full_attn = tuple(full_attn) if full_attn is not None else (False,) * (n - 1) + (True,)
    keys = []
    hid, tdim = heads * dim_head, 4 * dim
    dims = [dim] + [dim * m for m in dim_mults]
    in_out = list(zip(dims[:-1], dims[1:]))

    def conv(p, ci, co, k, bias=True):
        keys.append((p + ".weight", (co, ci, k, k)))
        if bias:
            keys.append((p + ".bias", (co,)))

    def res(p, ci, co):
        keys.append((p + ".mlp.1.weight", (2 * co, tdim)))
        keys.append((p + ".mlp.1.bias", (2 * co,)))
        conv(p + ".block1.proj", ci, co, 3)
        keys.extend([(p + ".block1.norm.weight", (co,)), (p + ".block1.norm.bias", (co,))])
        conv(p + ".block2.proj", co, co, 3)
        keys.extend([(p + ".block2.norm.weight", (co,)), (p + ".block2.norm.bias", (co,))])
        if ci != co:
            conv(p + ".res_conv", ci, co, 1)

    def attn(p, c, linear):  # registration: norm, to_qkv, to_out
        keys.append((p + ".norm.g", (1, c, 1, 1)))
        conv(p + ".to_qkv", c, 3 * hid, 1, bias=False)
        if linear:
            conv(p + ".to_out.0", hid, c, 1)
            keys.append((p + ".to_out.1.g", (1, c, 1, 1)))
        else:
            conv(p + ".to_out", hid, c, 1)

    conv("init_conv", channels, dim, 7)
    keys += [("time_mlp.1.weight", (tdim, dim)), ("time_mlp.1.bias", (tdim,)),
             ("time_mlp.3.weight", (tdim, tdim)), ("time_mlp.3.bias", (tdim,))]
    for i, (a, b) in enumerate(in_out):
        res(f"downs.{i}.0", a, a)
        res(f"downs.{i}.1", a, a)
        attn(f"downs.{i}.2", a, not full_attn[i])
        if i < n - 1:
            conv(f"downs.{i}.3.1", 4 * a, b, 1)   # Sequential(Rearrange, Conv2d(4a, b, 1))
        else:
            conv(f"downs.{i}.3", a, b, 3)
    for j, (a, b) in enumerate(reversed(in_out)):
        res(f"ups.{j}.0", b + a, b)
        res(f"ups.{j}.1", b + a, b)
        attn(f"ups.{j}.2", b, not full_attn[n - 1 - j])
        conv(f"ups.{j}.3.1" if j < n - 1 else f"ups.{j}.3", b, a, 3)
    res("mid_block1", dims[-1], dims[-1])
    attn("mid_attn", dims[-1], False)
    res("mid_block2", dims[-1], dims[-1])
    res("final_res_block", 2 * dim, dim)
    conv("final_conv", dim, channels, 1)
    return keys


# ---- layers -------------------------------------------------------------------
def conv2d(x, w, b=None, pad=0):
    B, C, H, W = x.shape
    O, _, K, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH, OW = H + 2 * pad - K + 1, W + 2 * pad - K + 1
    out = np.zeros((B, O, OH, OW))
    for i in range(K):
        for j in range(K):
            out += np.einsum("bchw,oc->bohw", xp[:, :, i:i + OH, j:j + OW], w[:, :, i, j])
    return out + (b[None, :, None, None] if b is not None else 0)


def groupnorm(x, G, g, b, eps=1e-5):
    B, C, H, W = x.shape
    xr = x.reshape(B, G, -1)
    y = (xr - xr.mean(-1, keepdims=True)) / np.sqrt(xr.var(-1, keepdims=True) + eps)
    return y.reshape(B, C, H, W) * g[None, :, None, None] + b[None, :, None, None]


def rmsnorm(x, g):  # F.normalize(x, dim=1) * g * sqrt(C)
    n = np.maximum(np.sqrt((x ** 2).sum(1, keepdims=True)), 1e-12)
    return x / n * g.reshape(1, -1, 1, 1) * math.sqrt(x.shape[1])


def pixel_unshuffle(x, r=2):  # 'b c (h p1) (w p2) -> b (c p1 p2) h w'
    B, C, H, W = x.shape
    return x.reshape(B, C, H // r, r, W // r, r).transpose(0, 1, 3, 5, 2, 4).reshape(B, C * r * r, H // r, W // r)


def padding(size, levels):
    """(padded size, cells before): the next multiple of 2^(levels-1), split
    evenly with the odd cell after."""
    f = 2 ** (levels - 1)
    p = -(-size // f) * f
    return p, (p - size) // 2


def unet_forward(P, x, t, dim, dim_mults, full_attn=None, groups=8, heads=4, dim_head=32):
    """P: name -> array. x (B, C, H, W) any size (padded and cropped as ubdiff does), t (B,)."""
    P = {k: np.asarray(v, np.float64) for k, v in P.items()}
    x = np.asarray(x, np.float64)
    n = len(dim_mults)
    full_attn = tuple(full_attn) if full_attn is not None else (False,) * (n - 1) + (True,)
    scale = dim_head ** -0.5
    H0, W0 = x.shape[2:]
    (PH, top), (PW, left) = padding(H0, n), padding(W0, n)
    x = np.pad(x, ((0, 0), (0, 0), (top, PH - H0 - top), (left, PW - W0 - left)))

    def heads_of(z):  # (B, heads*dim_head, h, w) -> (B, heads, dim_head, h*w)
        return z.reshape(z.shape[0], heads, dim_head, -1)

    def res(p, h, ts):
        ss = ts @ P[p + ".mlp.1.weight"].T + P[p + ".mlp.1.bias"]
        co = ss.shape[1] // 2
        sc, sh = ss[:, :co, None, None], ss[:, co:, None, None]
        y = conv2d(h, P[p + ".block1.proj.weight"], P[p + ".block1.proj.bias"], pad=1)
        y = groupnorm(y, groups, P[p + ".block1.norm.weight"], P[p + ".block1.norm.bias"])
        y = silu(y * (sc + 1) + sh)
        y = conv2d(y, P[p + ".block2.proj.weight"], P[p + ".block2.proj.bias"], pad=1)
        y = silu(groupnorm(y, groups, P[p + ".block2.norm.weight"], P[p + ".block2.norm.bias"]))
        r = conv2d(h, P[p + ".res_conv.weight"], P[p + ".res_conv.bias"]) if p + ".res_conv.weight" in P else h
        return y + r

    def lin_attn(p, h):
        B, C, hh, ww = h.shape
        xn = rmsnorm(h, P[p + ".norm.g"])
        q, k, v = map(heads_of, np.split(conv2d(xn, P[p + ".to_qkv.weight"]), 3, axis=1))
        q = softmax(q, -2) * scale
        k = softmax(k, -1)
        ctx = np.einsum("bhdn,bhen->bhde", k, v)
        o = np.einsum("bhde,bhdn->bhen", ctx, q).reshape(B, -1, hh, ww)
        o = conv2d(o, P[p + ".to_out.0.weight"], P[p + ".to_out.0.bias"])
        return rmsnorm(o, P[p + ".to_out.1.g"]) + h

    def full(p, h):
        B, C, hh, ww = h.shape
        xn = rmsnorm(h, P[p + ".norm.g"])
        q, k, v = map(heads_of, np.split(conv2d(xn, P[p + ".to_qkv.weight"]), 3, axis=1))
        att = softmax(np.einsum("bhdi,bhdj->bhij", q, k) * scale, -1)
        o = np.einsum("bhij,bhdj->bhdi", att, v).reshape(B, -1, hh, ww)  # 'b h (x y) d -> b (h d) x y'
        return conv2d(o, P[p + ".to_out.weight"], P[p + ".to_out.bias"]) + h

    h = conv2d(x, P["init_conv.weight"], P["init_conv.bias"], pad=3)
    r = h.copy()
    te = sinusoidal(t, dim) @ P["time_mlp.1.weight"].T + P["time_mlp.1.bias"]
    ts = silu(gelu(te) @ P["time_mlp.3.weight"].T + P["time_mlp.3.bias"])
    skips = []
    for i in range(n):
        h = res(f"downs.{i}.0", h, ts)
        skips.append(h)
        h = res(f"downs.{i}.1", h, ts)
        h = full(f"downs.{i}.2", h) if full_attn[i] else lin_attn(f"downs.{i}.2", h)
        skips.append(h)
        if i < n - 1:
            h = conv2d(pixel_unshuffle(h), P[f"downs.{i}.3.1.weight"], P[f"downs.{i}.3.1.bias"])
        else:
            h = conv2d(h, P[f"downs.{i}.3.weight"], P[f"downs.{i}.3.bias"], pad=1)
    h = res("mid_block1", h, ts)
    h = full("mid_attn", h)
    h = res("mid_block2", h, ts)
    for j in range(n):
        h = res(f"ups.{j}.0", np.concatenate([h, skips.pop()], 1), ts)
        h = res(f"ups.{j}.1", np.concatenate([h, skips.pop()], 1), ts)
        h = full(f"ups.{j}.2", h) if full_attn[n - 1 - j] else lin_attn(f"ups.{j}.2", h)
        if j < n - 1:
            h = h.repeat(2, axis=2).repeat(2, axis=3)
            h = conv2d(h, P[f"ups.{j}.3.1.weight"], P[f"ups.{j}.3.1.bias"], pad=1)
        else:
            h = conv2d(h, P[f"ups.{j}.3.weight"], P[f"ups.{j}.3.bias"], pad=1)
    h = res("final_res_block", np.concatenate([h, r], 1), ts)
    out = conv2d(h, P["final_conv.weight"], P["final_conv.bias"])
    return out[:, :, top:top + H0, left:left + W0]
