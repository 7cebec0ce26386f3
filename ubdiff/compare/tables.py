"""The analogues of the paper's Tables 2-5, plus physics consistency and the
autoencoders' reconstruction errors, as Markdown and JSON.

Each table lists the methods of this comparison that belong to it (the paper's
rows first; a later method joins by what it produces), the real-data reference
row where one applies, and one "skipped" line for every selected method that
could not run, with the reason -- never a silent gap.
"""
from __future__ import annotations

import math

from . import registry

#: (key, title, methods in the paper's order, columns: (label, path into a method's evaluation, format))
TABLES = (
    ("table2", "Table 2 -- FID of both modalities (paired methods)",
     ("ubdiff", "mt_diffusion", "wo_opt", "ubdiff_seismic_first"),
     (("velocity FID", ("velocity", "fid"), ".2f"), ("seismic FID", ("seismic", "fid"), ".2f"),
      ("velocity KID", ("velocity", "kid_mean"), ".4f"), ("seismic KID", ("seismic", "kid_mean"), ".4f"),
      ("samples", ("samples",), "d"))),
    ("table3", "Table 3 -- InversionNet trained on generated pairs, tested on held-out real pairs",
     ("ubdiff", "mt_diffusion", "wo_opt", "ubdiff_seismic_first"),
     (("MAE", ("inversionnet", "mae"), ".4f"), ("MSE", ("inversionnet", "mse"), ".4f"),
      ("SSIM", ("inversionnet", "ssim"), ".4f"), ("training pairs", ("inversionnet", "n_train"), "d"))),
    ("table4", "Table 4 -- FID of velocity maps",
     ("ubdiff", "ddpm", "sd_velocity"),
     (("velocity FID", ("velocity", "fid"), ".2f"), ("velocity KID", ("velocity", "kid_mean"), ".4f"),
      ("samples", ("samples",), "d"))),
    ("table5", "Table 5 -- FID of seismic data",
     ("ubdiff", "sd_seismic", "ubdiff_seismic_first"),
     (("seismic FID", ("seismic", "fid"), ".2f"), ("seismic KID", ("seismic", "kid_mean"), ".4f"),
      ("samples", ("samples",), "d"))),
    ("physics", "Physics consistency -- generated seismic vs the forward-modelled seismic of the generated map",
     ("ubdiff", "mt_diffusion", "wo_opt", "ubdiff_seismic_first"),
     (("rel. L2 (median)", ("physics", "rel_l2_median"), ".4f"), ("rel. L1 (median)", ("physics", "rel_l1_median"), ".4f"),
      ("trace corr. (mean)", ("physics", "corr_mean"), ".4f"), ("pairs", ("physics", "pairs"), "d"))),
    ("reconstruction", "Autoencoder reconstruction of real pairs (normalised units; held-out vs training pairs)",
     ("ubdiff", "wo_opt", "ubdiff_seismic_first"),
     (("seismic MSE held-out", ("reconstruction", "heldout", "seismic_mse"), ".5f"),
      ("seismic MSE train", ("reconstruction", "train", "seismic_mse"), ".5f"),
      ("seismic MAE held-out", ("reconstruction", "heldout", "seismic_mae"), ".4f"),
      ("velocity SSIM held-out", ("reconstruction", "heldout", "velocity_ssim"), ".4f"))),
)

#: Which tables hold the real-data reference row.
REFERENCE_IN = ("table2", "table3", "table4", "table5")

NOTES = {
    "table2": "FID / KID on ubdiff's own feature networks (not the paper's Inception network): compare rows, "
              "not values with the paper. Lower is better.",
    "table3": "Higher SSIM, lower MAE / MSE are better; the reference row trains on the n real pairs alone.",
    "table4": "SD (velocity) at F = 1 is UB-Diff's own velocity branch (ubdiff/compare/methods/sd_velocity.py): "
              "equal rows are expected.",
    "physics": "Relative errors in physical units; the generated seismic is compared with the simulation "
               "subsampled to its time axis.",
    "reconstruction": "Real velocity maps through E and both decoders; 'train' are the n pairs the autoencoder "
                      "saw, 'held-out' the test pairs.",
}


def _member(key: str, name: str, method_eval: dict | None) -> bool:
    listed = next(t[2] for t in TABLES if t[0] == key)
    if name in listed:
        return True
    if any(name in t[2] for t in TABLES):   # a paper method of other tables
        return False
    if method_eval is None or "skipped" in method_eval:
        return False
    prod, paired = method_eval.get("produces", []), method_eval.get("paired", False)
    return {"table2": paired, "table3": paired, "physics": paired, "table4": "velocity" in prod,
            "table5": "seismic" in prod, "reconstruction": "reconstruction" in method_eval}[key]


def _get(d, path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _fmt(v, spec):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "--"
    return format(int(v), "d") if spec == "d" else format(float(v), spec)


def build(results: dict) -> dict:
    """{table key: {'title', 'columns', 'rows': [{'method', 'title', column: value}], 'skipped':
    [{'method', 'title', 'reason'}], 'note'}} from the runner's results."""
    methods, real = results["methods"], results.get("real")
    out = {}
    for key, title, listed, cols in TABLES:
        order = list(listed) + [n for n in methods if n not in listed]
        rows, skipped = [], []
        for name in order:
            if name not in methods or not _member(key, name, methods[name]):
                continue
            ev = methods[name]
            t = ev.get("title") or registry.title(name)
            if "skipped" in ev:
                skipped.append({"method": name, "title": t, "reason": ev["skipped"]})
                continue
            vals = {c[0]: _get(ev, c[1]) for c in cols}
            if all(v is None for c, v in vals.items() if c != "samples"):
                continue   # nothing of this table in its evaluation (e.g. no autoencoder): no row of "--"
            rows.append({"method": name, "title": t, **vals})
        if key in REFERENCE_IN and real is not None and (rows or skipped):
            vals = {c[0]: _get(real, c[1]) for c in cols}
            if key == "table3" or any(v is not None for c, v in vals.items() if c != "samples"):
                rows.append({"method": "real", "title": real["title"], **vals})
        out[key] = {"title": title, "columns": [c[0] for c in cols], "formats": [c[2] for c in cols],
                    "rows": rows, "skipped": skipped, "note": NOTES.get(key, "")}
    return out


def markdown(tables: dict, settings: dict) -> str:
    s = settings
    lines = ["# ubdiff compare", "",
             f"Family {s['family']}, scale {s['scale']}: m = {s['sizes']['train_maps']} training maps, "
             f"n = {s['sizes']['train_pairs']} training pairs, {s['sizes']['test_pairs']} held-out pairs, "
             f"{s['sizes']['test_maps']} held-out maps in the velocity reference; N = {s['samples']} samples per "
             f"method (sampler {s['plan']['sampling']['sampler']}, weights {s['plan']['sampling']['weights']}); "
             f"seed {s['seed']}.", ""]
    for key, t in tables.items():
        if not t["rows"] and not t["skipped"]:
            continue
        lines += [f"## {t['title']}", "", "| method | " + " | ".join(t["columns"]) + " |",
                  "|---" * (len(t["columns"]) + 1) + "|"]
        for r in t["rows"]:
            lines.append(f"| {r['title']} | " + " | ".join(_fmt(r[c], f) for c, f in zip(t["columns"], t["formats"]))
                         + " |")
        lines.append("")
        for sk in t["skipped"]:
            lines.append(f"- *{sk['title']}* ({sk['method']}): skipped -- {sk['reason']}")
        if t["skipped"]:
            lines.append("")
        if t["note"]:
            lines += [t["note"], ""]
    return "\n".join(lines)


def plain(tables: dict) -> str:
    """A compact text version for a terminal or a test log."""
    lines = []
    for key, t in tables.items():
        if not t["rows"] and not t["skipped"]:
            continue
        lines.append(t["title"])
        w = max([len(r["title"]) for r in t["rows"]] + [6])
        lines.append("  " + "method".ljust(w) + "".join(f"  {c:>14}" for c in t["columns"]))
        for r in t["rows"]:
            lines.append("  " + r["title"].ljust(w) + "".join(f"  {_fmt(r[c], f):>14}"
                                                             for c, f in zip(t["columns"], t["formats"])))
        for sk in t["skipped"]:
            lines.append(f"  {sk['title']}: skipped -- {sk['reason']}")
    return "\n".join(lines)
