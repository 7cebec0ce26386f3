"""Figures of a comparison.

- Fig. 5 analogue (``fig5_samples.png``): samples of every method side by side,
  real held-out data in the first row pair: a velocity map (m/s) and, under it,
  its middle shot gather; velocity-only methods show an empty gather row.
- Fig. 6 analogue (``fig6_<method>.png``, paired methods): generated velocity
  map, generated gather, the gather forward-modelled from the generated map
  (ubdiff.physics, OpenFWI's acquisition), and their difference, on one grey
  scale per row so the difference reads in the units of the gathers.

PNGs are written atomically.
"""
from __future__ import annotations

import numpy as np


def _figure(w, h):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(w, h), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=90):
    from ..data.npyio import atomic_path
    with atomic_path(str(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return str(path)


def _clip(g):
    return float(np.percentile(np.abs(g), 97.0)) or 1.0


def samples_figure(path, rows, vmin=1500.0, vmax=4500.0, shot=None, title="") -> str:
    """rows: [(label, velocity (k,1,70,70) m/s or None, seismic (k,S,T,R) or None)]."""
    k = max(len(v if v is not None else s) for _, v, s in rows)
    fig = _figure(1.35 * k + 1.4, 2.5 * len(rows) + 0.8)
    axes = np.asarray(fig.subplots(2 * len(rows), k, squeeze=False))
    im_v = None
    for r, (label, vel, seis) in enumerate(rows):
        av, asx = axes[2 * r], axes[2 * r + 1]
        if seis is not None:
            sh = seis.shape[1] // 2 if shot is None else shot
            g = np.asarray(seis[:, sh])
            lim = _clip(g)
        for c in range(k):
            for ax in (av[c], asx[c]):
                ax.set_xticks([])
                ax.set_yticks([])
            if vel is not None and c < len(vel):
                im_v = av[c].imshow(vel[c, 0], cmap="jet", vmin=vmin, vmax=vmax, interpolation="nearest")
            else:
                av[c].axis("off")
            if seis is not None and c < len(seis):
                asx[c].imshow(g[c], cmap="gray", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
            else:
                asx[c].axis("off")
        av[0].set_ylabel(label, fontsize=8)
        if seis is not None:
            asx[0].set_ylabel(f"shot {sh + 1} gather", fontsize=7)
    if im_v is not None:
        cb = fig.colorbar(im_v, ax=axes.ravel().tolist(), location="right", shrink=0.4)
        cb.set_label("velocity (m/s)", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def physics_figure(path, velocity, seismic, simulated, vmin=1500.0, vmax=4500.0, shot=None, title="") -> str:
    """Rows: generated map | generated gather | forward-modelled gather | generated - simulated.
    velocity (k,1,70,70) m/s, seismic and simulated (k,S,T,R) on the same time axis."""
    k = len(velocity)
    sh = seismic.shape[1] // 2 if shot is None else shot
    fig = _figure(7.6, 1.9 * k + 0.9)
    axes = np.asarray(fig.subplots(k, 4, squeeze=False))
    for i in range(k):
        gen, sim = np.asarray(seismic[i, sh]), np.asarray(simulated[i, sh])
        lim = _clip(sim)
        im_v = axes[i, 0].imshow(velocity[i, 0], cmap="jet", vmin=vmin, vmax=vmax, interpolation="nearest")
        for j, (img, name) in enumerate(((gen, "generated"), (sim, "forward-modelled"), (gen - sim, "difference")), 1):
            im_s = axes[i, j].imshow(img, cmap="gray", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
            if i == 0:
                axes[i, j].set_title(name, fontsize=8)
        rel = float(np.linalg.norm(gen - sim) / (np.linalg.norm(sim) or 1.0))
        axes[i, 3].text(0.02, 0.02, f"rel. L2 {rel:.2f}", transform=axes[i, 3].transAxes, fontsize=7, color="yellow")
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("generated map", fontsize=8)
    fig.colorbar(im_v, ax=axes[:, 0].tolist(), location="bottom", shrink=0.9).ax.tick_params(labelsize=6)
    cb = fig.colorbar(im_s, ax=axes[:, 1:].ravel().tolist(), location="bottom", shrink=0.5, extend="both")
    cb.set_label(f"amplitude, shot {sh + 1} (per-row scale: 97th percentile of the simulation)", fontsize=7)
    cb.ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def simulate_like(velocity, nt_generated: int):
    """The forward-modelled records of ``velocity`` on a generated time axis of nt_generated samples."""
    from ..metrics.physics import subsample_factor
    from ..physics import forward_model
    sim = forward_model(np.ascontiguousarray(velocity, np.float32))
    k = subsample_factor(sim.shape[2], nt_generated)
    return np.ascontiguousarray(sim[:, :, ::k])
