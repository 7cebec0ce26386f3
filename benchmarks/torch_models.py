"""PyTorch reference modules of the paper configuration, for benchmarks/vs_pytorch.py.

Written from shared/specs/paper_config.md (layer tables, names of the
authors' state_dict keys), not copied from any code base. Attribute names
follow the authors' state_dict keys, so ubdiff's parameters (which carry the
same names) are copied in by name: ``load_from(module, named_arrays)``.
Plain eager PyTorch, as the authors' code runs: Conv/BatchNorm/Linear modules,
explicit attention (no fused kernels), torch.optim defaults.

Needs torch; imported only when it is installed.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_from(module: nn.Module, arrays: dict, strict: bool = True) -> None:
    """Copy arrays (name -> ndarray) into the parameters and buffers of module by name."""
    own = dict(module.named_parameters())
    own.update(dict(module.named_buffers()))
    missing = [n for n in own if n not in arrays and not n.endswith("num_batches_tracked")]
    if strict and missing:
        raise KeyError(f"load_from: no value for {missing[:5]}")
    with torch.no_grad():
        for n, t in own.items():
            if n not in arrays:
                continue
            a = torch.from_numpy(np.ascontiguousarray(arrays[n], dtype=np.float32))
            if n.endswith("num_batches_tracked"):
                t.fill_(int(a.reshape(-1)[0]))
                continue
            if tuple(a.shape) != tuple(t.shape):
                raise ValueError(f"load_from: {n} has shape {tuple(a.shape)}, module expects {tuple(t.shape)}")
            t.copy_(a)


# ---- co-latent autoencoder (E, heads, D_v, D_s) --------------------------------------
class _Block(nn.Module):
    """Conv (or ConvTranspose) + BatchNorm + activation, as `layers` 0, 1, 2."""

    def __init__(self, ci, co, k, s, p, transposed=False, act="relu"):
        super().__init__()
        conv = nn.ConvTranspose2d(ci, co, k, s, p) if transposed else nn.Conv2d(ci, co, k, s, p)
        a = {"relu": nn.ReLU(), "tanh": nn.Tanh(), "leaky": nn.LeakyReLU(0.2)}[act]
        self.layers = nn.Sequential(conv, nn.BatchNorm2d(co), a)

    def forward(self, x):
        return self.layers(x)


class Encoder(nn.Module):
    # (name, ci, co, k, s, p): the encoder table of paper_config.md
    TABLE = [("1_1", 1, 32, 1, 1, 0), ("1_2", 32, 32, 3, 1, 1), ("2_1", 32, 64, 3, 2, 1), ("2_2", 64, 64, 1, 1, 0),
             ("3_1", 64, 64, 3, 1, 1), ("3_2", 64, 64, 1, 1, 0), ("4_1", 64, 128, 3, 2, 1),
             ("4_2", 128, 128, 1, 1, 0), ("5_1", 128, 128, 3, 1, 0), ("5_2", 128, 128, 1, 1, 0),
             ("6_1", 128, 256, 3, 2, 1), ("6_2", 256, 256, 1, 1, 0), ("7_1", 256, 256, 3, 2, 1),
             ("7_2", 256, 256, 3, 2, 1), ("8", 256, 128, 3, 2, 1)]

    def __init__(self):
        super().__init__()
        self.names = []
        for name, ci, co, k, s, p in self.TABLE:
            setattr(self, f"convBlock{name}", _Block(ci, co, k, s, p, act="tanh" if name == "8" else "relu"))
            self.names.append(f"convBlock{name}")

    def forward(self, x):
        for n in self.names:
            x = getattr(self, n)(x)
        return x.flatten(1)  # z (B, 128)


class VelocityDecoder(nn.Module):
    TABLE = [("1_1", 128, 128, 5, 2, 0, True), ("1_2", 128, 128, 3, 1, 1, False),
             ("2_1", 128, 256, 4, 2, 1, True), ("2_2", 256, 256, 3, 1, 1, False),
             ("3_1", 256, 128, 4, 2, 1, True), ("3_2", 128, 128, 3, 1, 1, False),
             ("4_1", 128, 64, 4, 2, 1, True), ("4_2", 64, 64, 3, 1, 1, False),
             ("5_1", 64, 32, 4, 2, 1, True), ("5_2", 32, 32, 3, 1, 1, False)]

    def __init__(self):
        super().__init__()
        self.names = []
        for name, ci, co, k, s, p, tr in self.TABLE:
            setattr(self, f"deconvBlock{name}", _Block(ci, co, k, s, p, transposed=tr))
            self.names.append(f"deconvBlock{name}")
        self.deconvBlock6 = _Block(32, 1, 3, 1, 1, act="tanh")

    def forward(self, x):  # x (B, 128, 1, 1)
        for n in self.names:
            x = getattr(self, n)(x)
        x = x[:, :, 5:-5, 5:-5]  # 80x80 -> 70x70
        return self.deconvBlock6(x)


class _Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        hd = C // self.heads
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) * hd ** -0.5
        att = att.softmax(-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, N, C))


class _Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class _TBlock(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 1)


class _Transformer(nn.Module):
    def __init__(self, dim, heads, hidden, depth):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 2, dim))
        self.patch_embed = _PatchEmbed(dim)
        self.blocks = nn.ModuleList([_TBlock(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, zs):  # (B, 640)
        B, C = zs.shape
        tok = self.patch_embed.proj(zs[:, :, None, None]).flatten(2).transpose(1, 2)  # (B, 1, C)
        x = torch.cat([self.cls_token.expand(B, -1, -1), tok], 1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.norm(x)[:, 1]  # the non-class token (B, C)


class SeismicDecoder(nn.Module):
    def __init__(self, dim=640, heads=8, hidden=3200, depth=2, shots=5, nt=1000, nr=70):
        super().__init__()
        self.shape = (shots, nt, nr)
        self.decoder = _Transformer(dim, heads, hidden, depth)
        self.mlp = nn.Linear(dim, shots * nt * nr)

    def forward(self, zs):
        return self.mlp(self.decoder(zs)).reshape(zs.shape[0], *self.shape)


class CoLatentAE(nn.Module):
    """E, velocity head (fc_v, batch_norm_v), D_v, seismic head (fc_s, batch_norm_s), D_s."""

    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.fc_v = nn.Linear(128, 128)
        self.batch_norm_v = nn.BatchNorm1d(128)
        self.decoder_v = VelocityDecoder()
        self.fc_s = nn.Linear(128, 640)
        self.batch_norm_s = nn.BatchNorm1d(640)
        self.decoder_s = SeismicDecoder()

    def head_v(self, z):
        return F.leaky_relu(self.batch_norm_v(self.fc_v(z)), 0.2)

    def head_s(self, z):
        return F.leaky_relu(self.batch_norm_s(self.fc_s(z)), 0.2)

    def decode(self, z, seismic=True):
        v = self.decoder_v(self.head_v(z)[:, :, None, None])
        return v, (self.decoder_s(self.head_s(z)) if seismic else None)


def modality_loss(pred, target):
    """gamma_a L1 + gamma_b MSE with all gammas 1 (paper Eq. 2)."""
    return F.l1_loss(pred, target) + F.mse_loss(pred, target)


# ---- 1-D U-Net and v-prediction diffusion ----------------------------------------------
class _RMSNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, c, 1))

    def forward(self, x):
        return F.normalize(x, dim=1) * self.g * math.sqrt(x.shape[1])


class _UBlock(nn.Module):
    def __init__(self, ci, co, groups):
        super().__init__()
        self.proj = nn.Conv1d(ci, co, 3, padding=1)
        self.norm = nn.GroupNorm(groups, co)

    def forward(self, x, ss=None):
        x = self.norm(self.proj(x))
        if ss is not None:
            x = x * (ss[0] + 1) + ss[1]
        return F.silu(x)


class _ResBlock(nn.Module):
    def __init__(self, ci, co, tdim, groups):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(tdim, 2 * co))
        self.block1 = _UBlock(ci, co, groups)
        self.block2 = _UBlock(co, co, groups)
        self.res_conv = nn.Conv1d(ci, co, 1) if ci != co else nn.Identity()

    def forward(self, x, temb):
        ss = self.mlp(temb)[:, :, None].chunk(2, dim=1)
        h = self.block2(self.block1(x, ss))
        return h + self.res_conv(x)


class _LinearAttention(nn.Module):
    def __init__(self, c, heads=4, dh=32):
        super().__init__()
        self.heads, self.scale = heads, dh ** -0.5
        self.to_qkv = nn.Conv1d(c, 3 * heads * dh, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv1d(heads * dh, c, 1), _RMSNorm(c))

    def forward(self, x):
        B, _, L = x.shape
        q, k, v = (t.reshape(B, self.heads, -1, L) for t in self.to_qkv(x).chunk(3, dim=1))
        q = q.softmax(-2) * self.scale
        k = k.softmax(-1)
        ctx = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", ctx, q).reshape(B, -1, L)
        return self.to_out(out)


class _FullAttention(nn.Module):
    def __init__(self, c, heads=4, dh=32):
        super().__init__()
        self.heads, self.scale = heads, dh ** -0.5
        self.to_qkv = nn.Conv1d(c, 3 * heads * dh, 1, bias=False)
        self.to_out = nn.Conv1d(heads * dh, c, 1)

    def forward(self, x):
        B, _, L = x.shape
        q, k, v = (t.reshape(B, self.heads, -1, L) for t in self.to_qkv(x).chunk(3, dim=1))
        att = torch.einsum("bhdi,bhdj->bhij", q * self.scale, k).softmax(-1)
        out = torch.einsum("bhij,bhdj->bhid", att, v)  # (B, h, L, d)
        return self.to_out(out.permute(0, 1, 3, 2).reshape(B, -1, L))


class _PreNorm(nn.Module):
    def __init__(self, c, fn):
        super().__init__()
        self.fn, self.norm = fn, _RMSNorm(c)

    def forward(self, x):
        return self.fn(self.norm(x))


class _Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


class _SinEmb(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, t):
        half = self.dim // 2
        f = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
        a = t.float()[:, None] * f[None]
        return torch.cat([a.sin(), a.cos()], -1)


class UNet1D(nn.Module):
    """The paper's denoiser: dim 128, multipliers (1, 2, 2, 4), 1 channel."""

    def __init__(self, dim=128, dim_mults=(1, 2, 2, 4), channels=1, groups=8):
        super().__init__()
        tdim = 4 * dim
        dims = [dim] + [dim * m for m in dim_mults]
        io = list(zip(dims[:-1], dims[1:]))
        self.init_conv = nn.Conv1d(channels, dim, 7, padding=3)
        self.time_mlp = nn.Sequential(_SinEmb(dim), nn.Linear(dim, tdim), nn.GELU(), nn.Linear(tdim, tdim))
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        for i, (a, b) in enumerate(io):
            last = i == len(io) - 1
            self.downs.append(nn.ModuleList([
                _ResBlock(a, a, tdim, groups), _ResBlock(a, a, tdim, groups),
                _Residual(_PreNorm(a, _LinearAttention(a))),
                nn.Conv1d(a, b, 3, padding=1) if last else nn.Conv1d(a, b, 4, 2, 1)]))
        mid = dims[-1]
        self.mid_block1 = _ResBlock(mid, mid, tdim, groups)
        self.mid_attn = _Residual(_PreNorm(mid, _FullAttention(mid)))
        self.mid_block2 = _ResBlock(mid, mid, tdim, groups)
        for i, (a, b) in enumerate(reversed(io)):
            last = i == len(io) - 1
            self.ups.append(nn.ModuleList([
                _ResBlock(b + a, b, tdim, groups), _ResBlock(b + a, b, tdim, groups),
                _Residual(_PreNorm(b, _LinearAttention(b))),
                nn.Conv1d(b, a, 3, padding=1) if last else
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(b, a, 3, padding=1))]))
        self.final_res_block = _ResBlock(2 * dim, dim, tdim, groups)
        self.final_conv = nn.Conv1d(dim, channels, 1)

    def forward(self, x, t):
        x = self.init_conv(x)
        r = x.clone()
        temb = self.time_mlp(t)
        skips = []
        for b1, b2, attn, down in self.downs:
            x = b1(x, temb)
            skips.append(x)
            x = attn(b2(x, temb))
            skips.append(x)
            x = down(x)
        x = self.mid_block2(self.mid_attn(self.mid_block1(x, temb)), temb)
        for b1, b2, attn, up in self.ups:
            x = b1(torch.cat([x, skips.pop()], 1), temb)
            x = b2(torch.cat([x, skips.pop()], 1), temb)
            x = up(attn(x))
        return self.final_conv(self.final_res_block(torch.cat([x, r], 1), temb))


class VDiffusion:
    """v-prediction objective and ancestral DDPM sampling on float64 schedule arrays
    (the dict of LatentDiffusion.schedule, cast to float32 tensors)."""

    def __init__(self, model: UNet1D, schedule: dict):
        self.model = model
        self.s = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in schedule.items()}
        self.T = len(schedule["betas"])

    def _at(self, name, t):
        return self.s[name][t][:, None, None]

    def loss(self, z0, t, noise):
        xt = self._at("sqrt_alphas_cumprod", t) * z0 + self._at("sqrt_one_minus_alphas_cumprod", t) * noise
        v = self._at("sqrt_alphas_cumprod", t) * noise - self._at("sqrt_one_minus_alphas_cumprod", t) * z0
        per = F.mse_loss(self.model(xt, t), v, reduction="none").mean(dim=(1, 2))
        return (per * self.s["loss_weight"][t]).mean()

    @torch.no_grad()
    def sample(self, n, shape=(1, 128), generator=None, last=None):
        """Ancestral DDPM over all T steps (last=k: only the last k, for smoke tests)."""
        x = torch.randn((n, *shape), generator=generator)
        for i in reversed(range(self.T if last is None else last)):
            t = torch.full((n,), i, dtype=torch.long)
            v = self.model(x, t)
            x0 = (self._at("sqrt_alphas_cumprod", t) * x - self._at("sqrt_one_minus_alphas_cumprod", t) * v)
            x0 = x0.clamp(-1, 1)
            mean = self._at("posterior_mean_coef1", t) * x0 + self._at("posterior_mean_coef2", t) * x
            if i > 0:
                lv = self._at("posterior_log_variance_clipped", t)
                x = mean + (0.5 * lv).exp() * torch.randn(x.shape, generator=generator)
            else:
                x = mean
        return x


# ---- InversionNet (OpenFWI) ------------------------------------------------------------
class InversionNet(nn.Module):
    """Encoder and decoder of paper_config.md, Conv + BN + LeakyReLU(0.2) blocks."""

    def __init__(self, d=(32, 64, 128, 256, 512)):
        super().__init__()
        d1, d2, d3, d4, d5 = d
        enc = [("convblock1", 5, d1, (7, 1), (2, 1), (3, 0)), ("convblock2_1", d1, d2, (3, 1), (2, 1), (1, 0)),
               ("convblock2_2", d2, d2, (3, 1), 1, (1, 0)), ("convblock3_1", d2, d2, (3, 1), (2, 1), (1, 0)),
               ("convblock3_2", d2, d2, (3, 1), 1, (1, 0)), ("convblock4_1", d2, d3, (3, 1), (2, 1), (1, 0)),
               ("convblock4_2", d3, d3, (3, 1), 1, (1, 0)), ("convblock5_1", d3, d3, 3, 2, 1),
               ("convblock5_2", d3, d3, 3, 1, 1), ("convblock6_1", d3, d4, 3, 2, 1),
               ("convblock6_2", d4, d4, 3, 1, 1), ("convblock7_1", d4, d4, 3, 2, 1),
               ("convblock7_2", d4, d4, 3, 1, 1), ("convblock8", d4, d5, (8, 9), 1, 0)]
        dec = [("deconv1_1", d5, d5, 5, 2, 0, True), ("deconv1_2", d5, d5, 3, 1, 1, False),
               ("deconv2_1", d5, d4, 4, 2, 1, True), ("deconv2_2", d4, d4, 3, 1, 1, False),
               ("deconv3_1", d4, d3, 4, 2, 1, True), ("deconv3_2", d3, d3, 3, 1, 1, False),
               ("deconv4_1", d3, d2, 4, 2, 1, True), ("deconv4_2", d2, d2, 3, 1, 1, False),
               ("deconv5_1", d2, d1, 4, 2, 1, True), ("deconv5_2", d1, d1, 3, 1, 1, False)]
        self.enc, self.dec = [e[0] for e in enc], [e[0] for e in dec]
        for name, ci, co, k, s, p in enc:
            setattr(self, name, _Block(ci, co, k, s, p, act="leaky"))
        for name, ci, co, k, s, p, tr in dec:
            setattr(self, name, _Block(ci, co, k, s, p, transposed=tr, act="leaky"))
        self.deconv6 = _Block(d1, 1, 3, 1, 1, act="tanh")

    def forward(self, x):
        for n in self.enc + self.dec:
            x = getattr(self, n)(x)
        return self.deconv6(x[:, :, 5:-5, 5:-5])


# ---- forward modelling: the spec's stencil with torch.roll ------------------------------
def forward_model(vel: np.ndarray, nt=1000, dt=1e-3, dx=10.0, nbc=120, freq=15.0,
                  src_x=(0, 17, 34, 52, 69), src_z=1, rec_z=1) -> torch.Tensor:
    """(N, 1, 70, 70) m/s -> (N, 5, nt, 70): every (map, shot) simulated at once on
    (N*5, 310, 310) fields, periodic neighbours by torch.roll (shared/specs/forward_modeling.md)."""
    v = torch.as_tensor(vel[:, 0], dtype=torch.float32)
    N, H, W = v.shape
    S = len(src_x)
    vp = F.pad(v[:, None], (nbc, nbc, nbc, nbc), mode="replicate")[:, 0]  # (N, NZ, NX)
    NZ, NX = vp.shape[1:]
    L = (nbc - 1) * dx
    vmin = v.reshape(N, -1).min(1).values
    d0 = 3 * vmin * math.log(1e7) / (2 * L)  # (N,)
    prof = (torch.arange(nbc, dtype=torch.float32) * dx / L) ** 2  # i = 0 next to the interior

    def strip(n_in):  # distance profile along one axis: (nbc reversed, zeros, nbc)
        return torch.cat([prof.flip(0), torch.zeros(n_in), prof])

    pz, px = strip(H), strip(W)
    in_x = (px == 0) & (torch.arange(NX) >= nbc) & (torch.arange(NX) < nbc + W)
    damp = torch.where(in_x[None, :], pz[:, None].expand(NZ, NX), px[None, :].expand(NZ, NX))
    kappa = (d0[:, None, None] * damp[None] * dt).repeat_interleave(S, 0)  # (N*S, NZ, NX)
    alpha = ((vp * dt / dx) ** 2).repeat_interleave(S, 0)
    nw = 2 * math.floor((2.2 / (freq * dt)) / 2) + 1
    nc = nw // 2
    k = torch.arange(nt, dtype=torch.float64)
    beta = (math.pi * freq * dt * (nc - k)) ** 2
    w = torch.where(k < nw, (1 - 2 * beta) * torch.exp(-beta), torch.zeros_like(k)).float()
    sz, rz = src_z + nbc, rec_z + nbc
    sx = torch.tensor([x + nbc for x in src_x]).repeat(N)
    idx = torch.arange(N * S)
    amp = vp[idx // S, sz, sx] ** 2 * dt * dt
    c0, c1 = 2 - 5 * alpha - kappa, 1 - kappa
    p0 = torch.zeros(N * S, NZ, NX)
    p1 = torch.zeros(N * S, NZ, NX)
    rec = torch.empty(nt, N * S, W)
    for n in range(nt):
        lap = (4.0 / 3.0) * (p1.roll(1, 1) + p1.roll(-1, 1) + p1.roll(1, 2) + p1.roll(-1, 2)) \
            - (1.0 / 12.0) * (p1.roll(2, 1) + p1.roll(-2, 1) + p1.roll(2, 2) + p1.roll(-2, 2))
        p2 = c0 * p1 - c1 * p0 + alpha * lap
        p2[idx, sz, sx] += amp * w[n]
        rec[n] = p2[:, rz, nbc:nbc + W]
        p0, p1 = p1, p2
    return rec.permute(1, 0, 2).reshape(N, S, nt, W)
