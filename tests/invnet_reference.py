"""A float64 NumPy reference of InversionNet's forward pass (test helper).

Written from OpenFWI's network.py, independent of the C core: Conv2d via
strided windows, ConvTranspose2d as a scatter of kernel taps, BatchNorm2d
(training: biased batch variance for normalising, unbiased for the running
update; eval: running statistics), LeakyReLU, the 5-cell crop, Tanh.
The block geometry comes from the layout table (its own test pins the table
to network.py)."""
import numpy as np


def conv2d(x, w, b, stride, pad):
    (sh, sw), (ph, pw) = stride, pad
    kh, kw = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return np.einsum("bchwij,ocij->bohw", win, w, optimize=True) + b[None, :, None, None]


def conv_transpose2d(x, w, b, stride, pad):
    (sh, sw), (ph, pw) = stride, pad
    B, C, H, W = x.shape
    _, OC, kh, kw = w.shape
    full = np.zeros((B, OC, (H - 1) * sh + kh, (W - 1) * sw + kw))
    for i in range(kh):
        for j in range(kw):
            full[:, :, i:i + (H - 1) * sh + 1:sh, j:j + (W - 1) * sw + 1:sw] += np.einsum("bchw,co->bohw", x,
                                                                                       w[:, :, i, j])
    return full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw] + b[None, :, None, None]


def forward(params, stats, blocks, x, train, slope=0.2, momentum=0.1, eps=1e-5, masks=None):
    """params/stats: name -> array (OpenFWI names); blocks: layout()[2];
    returns (output, updated running statistics, LeakyReLU masks).

    masks: {block name: boolean array} to use instead of y > 0 — freezing
    them makes the network smooth around a point (finite differences then
    see no LeakyReLU kinks)."""
    out_masks = {}
    x = np.asarray(x, np.float64)
    new_stats = {}
    for (name, transposed, C, OC, H, W, KH, KW, SH, SW, PH, PW, OH, OW, act, crop) in blocks:
        p = lambda s: np.asarray(params[f"{name}.{s}"], np.float64)  # noqa: E731
        if crop:
            x = x[:, :, 5:-5, 5:-5]
        f = conv_transpose2d if transposed else conv2d
        z = f(x, p("layers.0.weight"), p("layers.0.bias"), (SH, SW), (PH, PW))
        rm = np.asarray(stats[f"{name}.layers.1.running_mean"], np.float64)
        rv = np.asarray(stats[f"{name}.layers.1.running_var"], np.float64)
        if train:
            mean, var = z.mean(axis=(0, 2, 3)), z.var(axis=(0, 2, 3))
            n = z.size // z.shape[1]
            new_stats[f"{name}.layers.1.running_mean"] = (1 - momentum) * rm + momentum * mean
            new_stats[f"{name}.layers.1.running_var"] = (1 - momentum) * rv + momentum * var * n / (n - 1)
        else:
            mean, var = rm, rv
        y = (z - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + eps)
        y = y * p("layers.1.weight")[None, :, None, None] + p("layers.1.bias")[None, :, None, None]
        if act == "tanh":
            x = np.tanh(y)
        else:
            mask = y > 0 if masks is None else masks[name]
            out_masks[name] = mask
            x = np.where(mask, y, slope * y)
    return x, new_stats, out_masks
