"""PNG of generated pairs as in the paper's Figs. 7-11: each velocity map beside its shot gathers."""
from __future__ import annotations

import numpy as np

from .data.npyio import atomic_path
from .physics import OPENFWI_SRC_X

# Grey levels of the gathers: generated gathers carry sample-to-sample noise, which PNG
# cannot compress; 32 levels look continuous at this size and keep the file ~1/3 smaller.
SEISMIC_GREY_LEVELS = 32


def save_pairs_figure(path, velocity, seismic, title="", k=4, vmin=1500.0, vmax=4500.0, *,
                      shots=None, dx=10.0, duration=1.0, clip_percentile=97.0, dpi=80):
    """Write ``path`` (PNG, atomically): one row per pair, the velocity map (m/s) then its
    shot gathers (time down, receivers across), axes in km and s, a colour bar per modality.
    velocity (n, 1, H, W), seismic (n, S, T, R); the first ``k`` pairs are shown.

    - ``shots``: indices of the gathers to show (default: all S);
    - ``dx``: grid spacing in metres, of the maps and the receivers (OpenFWI: 10 m); with
      S = 5 the sources are labelled at OpenFWI's positions;
    - ``duration``: seconds the T samples span (OpenFWI: 1 s, read at 1 ms or subsampled);
    - ``clip_percentile``: the gathers share one grey scale clipped at this percentile of
      |amplitude| over the pairs shown, so the direct wave saturates and the far weaker
      reflections show.

    The PNG is written with a 256-colour palette (the figure has fewer colours than that).
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    velocity, seismic = np.asarray(velocity), np.asarray(seismic)
    if velocity.ndim != 4 or seismic.ndim != 4:
        raise ValueError(f"save_pairs_figure: velocity must be (n, 1, H, W) and seismic (n, S, T, R), "
                         f"got shapes {velocity.shape} and {seismic.shape}")
    k = min(int(k), len(velocity), len(seismic))
    if k < 1:
        raise ValueError("save_pairs_figure: need at least one pair")
    n_shots, _, nr = seismic.shape[1:]
    shown = list(range(n_shots)) if shots is None else [int(j) for j in shots]
    if not shown or any(not 0 <= j < n_shots for j in shown):
        raise ValueError(f"save_pairs_figure: shots must be indices below {n_shots}, got {shots}")
    h, w = velocity.shape[2:]
    km = dx / 1000.0
    cols = len(shown) + 1
    fig = Figure(figsize=(1.45 * cols + 0.9, 1.75 * k + 1.3), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(k, cols, squeeze=False,
                                   gridspec_kw=dict(width_ratios=[1.15] + [1] * (cols - 1))))
    gathers = seismic[:k][:, shown]
    clip = float(np.percentile(np.abs(gathers), clip_percentile)) or 1.0
    grey = colormaps["gray"].resampled(SEISMIC_GREY_LEVELS)
    for i in range(k):
        # nearest: one block of equal pixels per cell, crisp and compressible
        im_v = axes[i, 0].imshow(velocity[i, 0], cmap="jet", vmin=vmin, vmax=vmax,
                                 extent=(0, w * km, h * km, 0), interpolation="nearest")
        axes[i, 0].set_ylabel("depth (km)", fontsize=8)
        for j in range(len(shown)):
            im_s = axes[i, j + 1].imshow(gathers[i, j], cmap=grey, vmin=-clip, vmax=clip, aspect="auto",
                                         extent=(0, nr * km, duration, 0), interpolation="nearest")
            if j > 0:
                axes[i, j + 1].set_yticklabels([])
        axes[i, 1].set_ylabel("time (s)", fontsize=8)
        if i < k - 1:
            for ax in axes[i]:
                ax.set_xticklabels([])
    for ax in axes.ravel():
        ax.tick_params(labelsize=7, length=2)
    axes[0, 0].set_title("velocity map", fontsize=8)
    axes[-1, 0].set_xlabel("x (km)", fontsize=8)
    for j, s in enumerate(shown):
        axes[-1, j + 1].set_xlabel("receiver x (km)", fontsize=8)
        axes[0, j + 1].set_title(f"source at x = {OPENFWI_SRC_X[s] * km:.2f} km" if n_shots == len(OPENFWI_SRC_X)
                                 else f"shot {s + 1}", fontsize=8)
    cb = fig.colorbar(im_v, ax=axes[:, 0].tolist(), location="bottom", shrink=0.95, aspect=12)
    cb.set_label("velocity (m/s)", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    cb = fig.colorbar(im_s, ax=axes[:, 1:].ravel().tolist(), location="bottom", shrink=0.5, aspect=30,
                      extend="both")
    cb.set_label(f"seismic amplitude (clipped at the {clip_percentile:g}th percentile of |amplitude|)",
                 fontsize=8)
    cb.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(str(path)) as tmp:
        _save_palette_png(fig, tmp, dpi)
    return str(path)


def _save_palette_png(fig, path, dpi):
    """``fig`` as an 8-bit palette PNG (Pillow comes with matplotlib)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    with Image.open(buf) as im:
        pal = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        pal.save(path, format="PNG", optimize=True)
