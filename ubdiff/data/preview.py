"""PNG preview of a dataset: a few velocity maps and the middle shot gather of each."""
from __future__ import annotations

import numpy as np

from .npyio import atomic_path


def save_preview(path, velocity, seismic=None, title="", shot=None):
    """Write ``path`` (PNG, atomically): velocity (k,1,70,70) above seismic (k,5,T,70) gathers.

    Uses matplotlib's Agg canvas directly, so the global backend is untouched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(velocity)
    rows = 1 if seismic is None or len(seismic) == 0 else 2
    fig = Figure(figsize=(2.6 * k, 2.6 * rows + 0.4))
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(rows, k, squeeze=False))
    for j in range(k):
        ax = axes[0, j]
        im = ax.imshow(velocity[j, 0], cmap="jet", vmin=1500, vmax=4500)
        ax.set_title(f"map {j}", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
        if rows == 2 and j < len(seismic):
            s = seismic[j, (seismic.shape[1] // 2) if shot is None else shot]
            clip = float(np.percentile(np.abs(s), 98)) or 1.0
            ax = axes[1, j]
            ax.imshow(s, cmap="gray", vmin=-clip, vmax=clip, aspect="auto")
            ax.set_title("middle shot", fontsize=8)
            ax.set_xlabel("receiver", fontsize=7), ax.set_ylabel("time step", fontsize=7)
            ax.tick_params(labelsize=6)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="m/s")
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    return path
