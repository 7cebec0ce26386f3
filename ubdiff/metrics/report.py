"""Evaluation report: report.json (everything), report.md (summary) and PNG figures."""
from __future__ import annotations

import json
import math
import os
from numbers import Number

import numpy as np

MAX_JSON_ARRAY = 100_000  # larger arrays (e.g. raw records) are described, not dumped


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        if x.size > MAX_JSON_ARRAY:
            return {"omitted_array": {"shape": list(x.shape), "dtype": str(x.dtype)}}
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")  # strict JSON has no NaN/Inf
    if x is None or isinstance(x, (str, bool, int, float)):
        return x
    return str(x)


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, Number):
        return f"{v:.6g}" if isinstance(v, float) else str(v)
    return str(v).replace("|", "\\|")  # a bare | would end the table cell


def _is_scalar(v) -> bool:
    return v is None or isinstance(v, (str, bool, Number))


def _is_scalar_dict(v) -> bool:
    return isinstance(v, dict) and bool(v) and all(_is_scalar(x) for x in v.values())


def _wide_table(rows: dict) -> list[str]:
    """name -> {column: scalar} as one table (e.g. several summaries side by side)."""
    cols = list(dict.fromkeys(c for r in rows.values() for c in r))
    out = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    out += [f"| {name} | " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for name, r in rows.items()]
    return out


def _render(body: dict, level: int) -> list[str]:
    lines = []
    scalars = {k: v for k, v in body.items() if _is_scalar(v)}
    if scalars:
        lines += ["| quantity | value |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in scalars.items()]
        lines.append("")
    summaries = {k: v for k, v in body.items() if _is_scalar_dict(v)}
    if summaries:
        lines += _wide_table(summaries) + [""]
    for k, v in body.items():
        if isinstance(v, dict) and not _is_scalar_dict(v):
            lines += [f"{'#' * min(level, 6)} {k}", ""]
            lines += [f"*Skipped*: {v['skipped']}", ""] if "skipped" in v else _render(v, level + 1)
    if any(isinstance(v, (list, tuple, np.ndarray)) for v in body.values()):
        lines += ["Arrays (per-sample values, shapes) are in report.json.", ""]
    return lines


def _markdown(results: dict, figure_files: list[str], title: str) -> str:
    lines = [f"# {title}", ""]
    for section, body in results.items():
        lines += [f"## {section}", ""]
        if isinstance(body, dict) and "skipped" in body:
            lines += [f"*Skipped*: {body['skipped']}", ""]
        elif isinstance(body, dict):
            lines += _render(body, 3)
        else:
            lines += [_fmt(body), ""]
    if figure_files:
        lines += ["## Figures", ""]
        lines += [f"![{os.path.splitext(f)[0]}]({f})\n" for f in figure_files]
    return "\n".join(lines)


def write_report(out_dir, results: dict, figures: dict | None = None, title: str = "ubdiff evaluation") -> dict:
    """Write out_dir/report.json, out_dir/report.md and one PNG per figure.

    `results`: sections (name -> dict of values; a section {"skipped": reason}
    is reported as skipped). `figures`: name -> matplotlib Figure, PNG bytes or
    an existing PNG path. Returns the written paths.
    """
    os.makedirs(out_dir, exist_ok=True)
    written = {"json": os.path.join(out_dir, "report.json"), "markdown": os.path.join(out_dir, "report.md"),
               "figures": []}
    names = []
    for name, fig in (figures or {}).items():
        fname = f"{name}.png"
        path = os.path.join(out_dir, fname)
        if isinstance(fig, (bytes, bytearray)):
            with open(path, "wb") as f:
                f.write(fig)
        elif isinstance(fig, (str, os.PathLike)):
            if os.path.abspath(fig) != os.path.abspath(path):
                with open(fig, "rb") as src, open(path, "wb") as dst:
                    dst.write(src.read())
        elif hasattr(fig, "savefig"):
            fig.savefig(path, dpi=110)
            import matplotlib.pyplot as plt
            plt.close(fig)
        else:
            raise TypeError(f"figure {name!r}: expected a matplotlib Figure, PNG bytes or a path")
        names.append(fname)
        written["figures"].append(path)
    with open(written["json"], "w") as f:
        json.dump(_jsonable(results), f, indent=2, allow_nan=False)
    with open(written["markdown"], "w") as f:
        f.write(_markdown(results, names, title))
    return written


# ---- figures ----------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def plot_velocity_grid(velocity, n: int = 16, title: str = "velocity maps", vmin=None, vmax=None):
    """Grid of up to n velocity maps (N, 1, H, W) with a shared colour scale."""
    plt = _plt()
    v = np.asarray(velocity[:n], np.float32)[:, 0]
    cols = int(math.ceil(math.sqrt(len(v))))
    rows = int(math.ceil(len(v) / cols))
    lo = float(v.min()) if vmin is None else vmin
    hi = float(v.max()) if vmax is None else vmax
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols + 0.8, 1.6 * rows + 0.4), squeeze=False)
    im = None
    for ax in axes.ravel():
        ax.axis("off")
    for ax, m in zip(axes.ravel(), v):
        im = ax.imshow(m, cmap="viridis", vmin=lo, vmax=hi)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.03)
    fig.suptitle(title, fontsize=9)
    return fig


def plot_seismic_grid(seismic, n: int = 8, shot: int | None = None, title: str = "shot gathers"):
    """Up to n shot gathers (N, S, T, R): the middle shot of each record, symmetric colour scale."""
    plt = _plt()
    s = np.asarray(seismic[:n], np.float32)
    shot = s.shape[1] // 2 if shot is None else shot
    g = s[:, shot]
    cols = min(len(g), 4)
    rows = int(math.ceil(len(g) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, m in zip(axes.ravel(), g):
        lim = float(np.percentile(np.abs(m), 99)) or 1.0
        ax.imshow(m, cmap="seismic", vmin=-lim, vmax=lim, aspect="auto")
    fig.suptitle(f"{title} (shot {shot})", fontsize=9)
    return fig


def plot_histograms(values: dict, title: str = "metric histograms", bins: int = 30):
    """One histogram panel per name -> array (non-finite values dropped); arrays
    given as a (label -> array) dict are overlaid in one panel."""
    plt = _plt()
    names = list(values)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        series = values[name] if isinstance(values[name], dict) else {name: values[name]}
        for label, x in series.items():
            x = np.asarray(x, np.float64).ravel()
            ax.hist(x[np.isfinite(x)], bins=bins, alpha=0.6, label=label, density=len(series) > 1)
        if len(series) > 1:
            ax.legend(fontsize=7)
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
