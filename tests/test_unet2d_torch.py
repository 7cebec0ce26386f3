"""The 2-D U-Net against a PyTorch module (``-m torch``; skipped without
PyTorch): a transcription of denoising-diffusion-pytorch 1.8.0's ``Unet``
(its training dependencies -- accelerate, ema-pytorch, torchvision -- kept
out), built from torch.nn layers so that its state_dict keys come from
PyTorch itself. Checked: ubdiff's parameter table is that state_dict (names,
order, shapes), the paper configuration's count, load_state_dict(strict=True)
of ubdiff's weights, and the same outputs (float32 both; rtol 1e-4, atol 1e-4
of the output scale: summation order only). 70 x 70 maps go in padded to 72
as ubdiff pads them."""
import math
from functools import partial

import numpy as np
import pytest
from test_unet2d import REF, TINY

import ubdiff
from ubdiff.models.unet2d import UNet2D, layout, resolve_config

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="PyTorch is not installed (an optional cross-check)")
nn, F = torch.nn, torch.nn.functional


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x):
        return F.normalize(x, dim=1) * self.g * x.shape[1] ** 0.5


def sinusoidal(t, dim):
    half = dim // 2
    f = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000) / (half - 1)))
    a = t[:, None].float() * f[None]
    return torch.cat((a.sin(), a.cos()), dim=-1)


class Block(nn.Module):
    def __init__(self, dim, dim_out, groups):
        super().__init__()
        self.proj = nn.Conv2d(dim, dim_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, dim_out)

    def forward(self, x, scale_shift=None):
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            x = x * (scale_shift[0] + 1) + scale_shift[1]
        return F.silu(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim, dim_out, time_dim, groups):
        super().__init__()
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * dim_out))
        self.block1 = Block(dim, dim_out, groups)
        self.block2 = Block(dim_out, dim_out, groups)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, t):
        ss = self.mlp(t)[:, :, None, None].chunk(2, dim=1)
        return self.block2(self.block1(x, ss)) + self.res_conv(x)


class LinearAttention(nn.Module):
    def __init__(self, dim, heads, dim_head):
        super().__init__()
        self.heads, self.scale, hidden = heads, dim_head ** -0.5, heads * dim_head
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Conv2d(dim, 3 * hidden, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(hidden, dim, 1), RMSNorm(dim))

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = (z.reshape(b, self.heads, -1, h * w) for z in self.to_qkv(self.norm(x)).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        ctx = torch.einsum("bhdn,bhen->bhde", k, v)
        return self.to_out(torch.einsum("bhde,bhdn->bhen", ctx, q).reshape(b, -1, h, w))


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head):
        super().__init__()
        self.heads, hidden = heads, heads * dim_head
        self.norm = RMSNorm(dim)
        self.to_qkv = nn.Conv2d(dim, 3 * hidden, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = (z.reshape(b, self.heads, -1, h * w).transpose(-1, -2)
                   for z in self.to_qkv(self.norm(x)).chunk(3, dim=1))
        att = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(dim=-1)
        return self.to_out((att @ v).transpose(-1, -2).reshape(b, -1, h, w))


class Unet(nn.Module):
    def __init__(self, dim, dim_mults, full_attn, channels, groups, heads, dim_head):
        super().__init__()
        dims = [dim] + [dim * m for m in dim_mults]
        in_out = list(zip(dims[:-1], dims[1:]))
        n, td = len(in_out), 4 * dim
        rb = partial(ResnetBlock, time_dim=td, groups=groups)

        def attn(c, full):
            return (Attention if full else LinearAttention)(c, heads, dim_head)

        self.dim = dim
        self.init_conv = nn.Conv2d(channels, dim, 7, padding=3)
        self.time_mlp = nn.Sequential(nn.Identity(), nn.Linear(dim, td), nn.GELU(), nn.Linear(td, td))
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        for i, (a, b) in enumerate(in_out):
            down = (nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * a, b, 1)) if i < n - 1
                    else nn.Conv2d(a, b, 3, padding=1))
            self.downs.append(nn.ModuleList([rb(a, a), rb(a, a), attn(a, full_attn[i]), down]))
        self.mid_block1 = rb(dims[-1], dims[-1])
        self.mid_attn = Attention(dims[-1], heads, dim_head)
        self.mid_block2 = rb(dims[-1], dims[-1])
        for j, (a, b) in enumerate(reversed(in_out)):
            up = (nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(b, a, 3, padding=1))
                  if j < n - 1 else nn.Conv2d(b, a, 3, padding=1))
            self.ups.append(nn.ModuleList([rb(b + a, b), rb(b + a, b), attn(b, full_attn[n - 1 - j]), up]))
        self.final_res_block = rb(2 * dim, dim)
        self.final_conv = nn.Conv2d(dim, channels, 1)

    def forward(self, x, time):
        x = self.init_conv(x)
        r = x.clone()
        t = self.time_mlp(sinusoidal(time, self.dim))
        h = []
        for b1, b2, attn, down in self.downs:
            x = b1(x, t)
            h.append(x)
            x = b2(x, t)
            x = attn(x) + x
            h.append(x)
            x = down(x)
        x = self.mid_block1(x, t)
        x = self.mid_attn(x) + x
        x = self.mid_block2(x, t)
        for b1, b2, attn, up in self.ups:
            x = b1(torch.cat((x, h.pop()), dim=1), t)
            x = b2(torch.cat((x, h.pop()), dim=1), t)
            x = up(attn(x) + x)
        return self.final_conv(self.final_res_block(torch.cat((x, r), dim=1), t))


def torch_unet(cfg):
    c = resolve_config(cfg)
    return Unet(c["dim"], c["dim_mults"], c["full_attn"], c["channels"], c["groups"], c["heads"], c["dim_head"])


@pytest.mark.parametrize("cfg", ["paper", "small", TINY, REF])
def test_state_dict_is_the_modules(cfg):
    sd = torch_unet(cfg).state_dict()
    params, _ = layout(cfg)
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == [(n, tuple(s)) for n, s in params]


def test_paper_parameter_count():
    assert sum(p.numel() for p in torch_unet("paper").parameters()) == 35_703_937


@pytest.mark.parametrize("cfg", [TINY, REF, "small"])
def test_same_outputs_as_the_module(cfg):
    ubdiff.set_num_threads(1)
    rng = np.random.default_rng(0)
    m = UNet2D(cfg, seed=3, max_batch=2, device="cpu")
    for v in m.parameters().values():
        v += (0.1 * rng.standard_normal(v.shape)).astype(np.float32)
    net = torch_unet(cfg)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()}, strict=True)
    c = m.config
    x = rng.standard_normal((2, c["channels"], c["height"], c["width"])).astype(np.float32)
    t = np.array([4.0, 201.0], np.float32)
    (ph, pw), (top, left) = layout(cfg)[1]["padded"], layout(cfg)[1]["offset"]
    xp = F.pad(torch.from_numpy(x), (left, pw - c["width"] - left, top, ph - c["height"] - top))
    with torch.no_grad():
        want = net(xp, torch.from_numpy(t))[:, :, top:top + c["height"], left:left + c["width"]].numpy()
    got = m.forward(x, t)
    err = np.abs(got - want) - (1e-4 + 1e-4 * np.abs(want).max())
    assert (err <= 0).all(), f"max excess {err.max():.3g}"
