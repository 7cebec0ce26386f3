"""PNG of generated pairs as in the paper's Figs. 7-11: each velocity map beside its shot gathers."""
from __future__ import annotations

import numpy as np

from .data.npyio import atomic_path


def save_pairs_figure(path, velocity, seismic, title="", k=4, vmin=1500.0, vmax=4500.0):
    """Write ``path`` (PNG, atomically): one row per pair, the velocity map (m/s) then its
    ``shots`` gathers (time down, receivers across). velocity (n,1,70,70), seismic (n,S,T,R)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = min(int(k), len(velocity))
    if k < 1 or len(seismic) < k:
        raise ValueError("save_pairs_figure: need at least one pair")
    shots = seismic.shape[1]
    fig = Figure(figsize=(1.9 * (shots + 1), 1.9 * k + 0.5))
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(k, shots + 1, squeeze=False))
    clip = float(np.percentile(np.abs(seismic[:k]), 98)) or 1.0   # one scale for all gathers
    for i in range(k):
        ax = axes[i, 0]
        im = ax.imshow(velocity[i, 0], cmap="jet", vmin=vmin, vmax=vmax)
        ax.set_ylabel(f"pair {i}", fontsize=8)
        for j in range(shots):
            ax = axes[i, j + 1]
            ax.imshow(seismic[i, j], cmap="gray", vmin=-clip, vmax=clip, aspect="auto")
            if i == 0:
                ax.set_title(f"shot {j + 1}", fontsize=8)
        for ax in axes[i]:
            ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].set_title("velocity", fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="velocity (m/s)", location="right")
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(str(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    return str(path)
