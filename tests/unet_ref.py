"""NumPy (float64) reference of lucidrains' Unet1D as the UB-Diff authors
vendored it (diffusion/ddpm_1d.py): the state_dict key/shape table, written
from the PyTorch module structure, and the forward pass, written from the
PyTorch forward code. Independent of the C implementation it checks."""
import math

import numpy as np
from scipy.special import erf


def torch_keys(dim, dim_mults, channels=1, heads=4, dim_head=32):
    """[(key, shape)] in the order Unet1D.state_dict() lists them."""
    keys = []
    hid, tdim = heads * dim_head, 4 * dim
    dims = [dim] + [dim * m for m in dim_mults]
    in_out = list(zip(dims[:-1], dims[1:]))

    def conv(p, ci, co, k, bias=True):
        keys.append((p + ".weight", (co, ci, k)))
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

    def attn(p, c, linear):
        conv(p + ".fn.fn.to_qkv", c, 3 * hid, 1, bias=False)
        if linear:
            conv(p + ".fn.fn.to_out.0", hid, c, 1)
            keys.append((p + ".fn.fn.to_out.1.g", (1, c, 1)))
        else:
            conv(p + ".fn.fn.to_out", hid, c, 1)
        keys.append((p + ".fn.norm.g", (1, c, 1)))

    conv("init_conv", channels, dim, 7)
    keys += [("time_mlp.1.weight", (tdim, dim)), ("time_mlp.1.bias", (tdim,)),
             ("time_mlp.3.weight", (tdim, tdim)), ("time_mlp.3.bias", (tdim,))]
    for i, (a, b) in enumerate(in_out):
        res(f"downs.{i}.0", a, a)
        res(f"downs.{i}.1", a, a)
        attn(f"downs.{i}.2", a, True)
        conv(f"downs.{i}.3", a, b, 4 if i < len(in_out) - 1 else 3)
    for i, (a, b) in enumerate(reversed(in_out)):
        res(f"ups.{i}.0", b + a, b)
        res(f"ups.{i}.1", b + a, b)
        attn(f"ups.{i}.2", b, True)
        conv(f"ups.{i}.3.1" if i < len(in_out) - 1 else f"ups.{i}.3", b, a, 3)
    res("mid_block1", dims[-1], dims[-1])
    attn("mid_attn", dims[-1], False)
    res("mid_block2", dims[-1], dims[-1])
    res("final_res_block", 2 * dim, dim)
    conv("final_conv", dim, channels, 1)
    return keys


# ---- forward ----------------------------------------------------------------
def conv1d(x, w, b=None, stride=1, pad=0):
    B, C, L = x.shape
    O, _, K = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    OL = (L + 2 * pad - K) // stride + 1
    cols = np.stack([xp[:, :, k:k + stride * (OL - 1) + 1:stride] for k in range(K)], axis=-1)  # B C OL K
    out = np.einsum("bclk,ock->bol", cols, w)
    return out + (b[None, :, None] if b is not None else 0)


def groupnorm(x, G, g, b, eps=1e-5):
    B, C, L = x.shape
    xr = x.reshape(B, G, -1)
    m = xr.mean(-1, keepdims=True)
    v = xr.var(-1, keepdims=True)
    return ((xr - m) / np.sqrt(v + eps)).reshape(B, C, L) * g[None, :, None] + b[None, :, None]


def rmsnorm(x, g):
    n = np.maximum(np.sqrt((x ** 2).sum(1, keepdims=True)), 1e-12)
    return x / n * g.reshape(1, -1, 1) * math.sqrt(x.shape[1])


def silu(x):
    return x / (1 + np.exp(-x))


def gelu(x):
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def sinusoidal(t, dim):
    half = dim // 2
    f = np.exp(np.arange(half) * -(math.log(10000) / (half - 1)))
    a = np.asarray(t, np.float64)[:, None] * f[None]
    return np.concatenate([np.sin(a), np.cos(a)], -1)


def unet_forward(P, x, t, dim, dim_mults, groups=8, heads=4, dim_head=32):
    """P: name -> array (float64 ok). x (B, C, L), t (B,)."""
    P = {k: np.asarray(v, np.float64) for k, v in P.items()}
    x = np.asarray(x, np.float64)
    dims = [dim] + [dim * m for m in dim_mults]
    nl = len(dim_mults)
    scale = dim_head ** -0.5

    def heads_of(z):
        B, _, L = z.shape
        return z.reshape(B, heads, dim_head, L)

    def res(p, h, ts):
        ss = ts @ P[p + ".mlp.1.weight"].T + P[p + ".mlp.1.bias"]
        co = ss.shape[1] // 2
        sc, sh = ss[:, :co, None], ss[:, co:, None]
        y = conv1d(h, P[p + ".block1.proj.weight"], P[p + ".block1.proj.bias"], pad=1)
        y = groupnorm(y, groups, P[p + ".block1.norm.weight"], P[p + ".block1.norm.bias"])
        y = silu(y * (sc + 1) + sh)
        y = conv1d(y, P[p + ".block2.proj.weight"], P[p + ".block2.proj.bias"], pad=1)
        y = silu(groupnorm(y, groups, P[p + ".block2.norm.weight"], P[p + ".block2.norm.bias"]))
        r = conv1d(h, P[p + ".res_conv.weight"], P[p + ".res_conv.bias"]) if p + ".res_conv.weight" in P else h
        return y + r

    def lin_attn(p, h):
        xn = rmsnorm(h, P[p + ".fn.norm.g"])
        qkv = conv1d(xn, P[p + ".fn.fn.to_qkv.weight"])
        q, k, v = map(heads_of, np.split(qkv, 3, axis=1))
        q = softmax(q, -2) * scale
        k = softmax(k, -1)
        ctx = np.einsum("bhdn,bhen->bhde", k, v)
        o = np.einsum("bhde,bhdn->bhen", ctx, q).reshape(h.shape[0], -1, h.shape[2])
        o = conv1d(o, P[p + ".fn.fn.to_out.0.weight"], P[p + ".fn.fn.to_out.0.bias"])
        return rmsnorm(o, P[p + ".fn.fn.to_out.1.g"]) + h

    def full_attn(p, h):
        xn = rmsnorm(h, P[p + ".fn.norm.g"])
        qkv = conv1d(xn, P[p + ".fn.fn.to_qkv.weight"])
        q, k, v = map(heads_of, np.split(qkv, 3, axis=1))
        att = softmax(np.einsum("bhdi,bhdj->bhij", q * scale, k), -1)
        o = np.einsum("bhij,bhdj->bhid", att, v)  # (b, h, n, d)
        o = o.transpose(0, 1, 3, 2).reshape(h.shape[0], -1, h.shape[2])
        return conv1d(o, P[p + ".fn.fn.to_out.weight"], P[p + ".fn.fn.to_out.bias"]) + h

    h = conv1d(x, P["init_conv.weight"], P["init_conv.bias"], pad=3)
    r = h.copy()
    te = sinusoidal(t, dim) @ P["time_mlp.1.weight"].T + P["time_mlp.1.bias"]
    te = gelu(te) @ P["time_mlp.3.weight"].T + P["time_mlp.3.bias"]
    ts = silu(te)
    skips = []
    for i in range(nl):
        h = res(f"downs.{i}.0", h, ts)
        skips.append(h)
        h = res(f"downs.{i}.1", h, ts)
        h = lin_attn(f"downs.{i}.2", h)
        skips.append(h)
        if i < nl - 1:
            h = conv1d(h, P[f"downs.{i}.3.weight"], P[f"downs.{i}.3.bias"], stride=2, pad=1)
        else:
            h = conv1d(h, P[f"downs.{i}.3.weight"], P[f"downs.{i}.3.bias"], pad=1)
    h = res("mid_block1", h, ts)
    h = full_attn("mid_attn", h)
    h = res("mid_block2", h, ts)
    for j in range(nl):
        h = res(f"ups.{j}.0", np.concatenate([h, skips.pop()], 1), ts)
        h = res(f"ups.{j}.1", np.concatenate([h, skips.pop()], 1), ts)
        h = lin_attn(f"ups.{j}.2", h)
        if j < nl - 1:
            h = np.repeat(h, 2, axis=2)
            h = conv1d(h, P[f"ups.{j}.3.1.weight"], P[f"ups.{j}.3.1.bias"], pad=1)
        else:
            h = conv1d(h, P[f"ups.{j}.3.weight"], P[f"ups.{j}.3.bias"], pad=1)
    h = res("final_res_block", np.concatenate([h, r], 1), ts)
    return conv1d(h, P["final_conv.weight"], P["final_conv.bias"])


def cosine_schedule(T, s=0.008):
    """GaussianDiffusion1D's buffers from cosine_beta_schedule, float64."""
    x = np.linspace(0, T, T + 1, dtype=np.float64)
    ac = np.cos(((x / T) + s) / (1 + s) * math.pi * 0.5) ** 2
    ac = ac / ac[0]
    betas = np.clip(1 - ac[1:] / ac[:-1], 0, 0.999)
    alphas = 1 - betas
    acp = np.cumprod(alphas)
    prev = np.concatenate([[1.0], acp[:-1]])
    pv = betas * (1 - prev) / (1 - acp)
    snr = acp / (1 - acp)
    return dict(betas=betas, alphas_cumprod=acp, alphas_cumprod_prev=prev, sqrt_alphas_cumprod=np.sqrt(acp),
                sqrt_one_minus_alphas_cumprod=np.sqrt(1 - acp), sqrt_recip_alphas_cumprod=np.sqrt(1 / acp),
                sqrt_recipm1_alphas_cumprod=np.sqrt(1 / acp - 1), posterior_variance=pv,
                posterior_log_variance_clipped=np.log(np.maximum(pv, 1e-20)),
                posterior_mean_coef1=betas * np.sqrt(prev) / (1 - acp),
                posterior_mean_coef2=(1 - prev) * np.sqrt(alphas) / (1 - acp), loss_weight=snr / (snr + 1))
