"""`ubdiff evaluate`: metrics of a generated set against a real set, written as a report.

Computes value statistics and figures, physics consistency of the generated
pairs (forward model), pairwise SSIM/MAE/MSE when the two sets are paired
(--paired), and FID/KID through ubdiff's reference feature networks (or a
feature callable given with --features). The report names the feature network
and its version: FID/KID from ubdiff's networks are not comparable with the
paper's Inception-based values. With --inversionnet small|paper it also runs
the paper's Table 3 protocol (ubdiff.metrics.usefulness): InversionNet trained
on the generated pairs (and on --real-train pairs as the reference point),
tested on the real set. The lead wires register() into ubdiff.__main__.
"""
from __future__ import annotations

import argparse
import importlib



def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evaluate", help="evaluate generated velocity/seismic data against real data",
        description="Evaluate a folder of generated data against real OpenFWI-layout data and write "
                    "report.json, report.md and PNG figures.")
    p.add_argument("--generated", required=True, metavar="DIR",
                   help="generated data: model*/vel*.npy (N,1,70,70) and data*/seis*.npy (N,5,nt,70), physical units")
    p.add_argument("--real", required=True, metavar="DIR", help="real data, same layout")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="output folder of the report")
    p.add_argument("--max-samples", type=int, default=None, metavar="N",
                   help="use at most N samples of each set (default: all, loaded into memory)")
    p.add_argument("--skip-physics", action="store_true", help="skip the forward-model consistency check")
    p.add_argument("--physics-samples", type=int, default=64, metavar="N",
                   help="pairs checked by the forward model (default 64; about 0.6 s per 70x70 pair on 2 CPU cores)")
    p.add_argument("--paired", action="store_true",
                   help="generated[i] is a prediction of real[i] (e.g. InversionNet output): compute SSIM/MAE/MSE")
    p.add_argument("--dataset", default=None,
                   help="OpenFWI family (e.g. FlatVel-A) giving the seismic data_min/data_max for normalisation; "
                        "default: the real data's own min/max")
    p.add_argument("--features", default=None, metavar="MODULE:FUNC",
                   help="feature callable for FID/KID (normalised batch -> (B, d)); default: ubdiff's reference "
                        "feature network of each modality (seismic needs nt a multiple of 250, e.g. 1000)")
    p.add_argument("--skip-fid", action="store_true", help="skip FID/KID")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0, help="seed of the KID subsets and of the InversionNet training")
    from .cli_pipeline import add_device_argument
    add_device_argument(p, what="the feature networks, the InversionNets and the forward modelling")
    g = p.add_argument_group("InversionNet usefulness (paper Table 3)")
    g.add_argument("--inversionnet", choices=("off", "small", "paper"), default="off",
                   help="train InversionNet of this config on the generated pairs and test it on the real set "
                        "(default off; 'small' is CPU-sized, 'paper' is the paper's 24M-parameter network)")
    g.add_argument("--inv-epochs", type=int, default=2, metavar="N", help="InversionNet training epochs (default 2)")
    g.add_argument("--inv-batch-size", type=int, default=16, metavar="B",
                   help="InversionNet training batch size (default 16)")
    g.add_argument("--inv-lr", type=float, default=1e-4, help="InversionNet AdamW learning rate (default 1e-4)")
    g.add_argument("--real-train", default=None, metavar="DIR",
                   help="real training pairs (same layout): the same InversionNet trained on them is the "
                        "reference point, reported side by side (read batch by batch; --max-samples applies)")
    from .distributed.cli import add_dask_arguments
    add_dask_arguments(p)
    p.set_defaults(func=run_evaluate)
    return p


def _load_callable(spec: str):
    mod, _, name = spec.partition(":")
    if not mod or not name:
        raise ValueError(f"--features must be MODULE:FUNC, got {spec!r}")
    fn = getattr(importlib.import_module(mod), name)
    if not callable(fn):
        raise TypeError(f"--features {spec}: not callable")
    return fn


def _shape(a):
    return None if a is None else list(a.shape)


def run_evaluate(args) -> int:
    from .cli_pipeline import device_arg
    from .distributed.cli import client_from_args
    device_arg(args)   # --device cuda on a machine without a GPU: one line, before any data is read
    with client_from_args(args) as client:
        return _evaluate(args, client)


def _evaluate(args, client) -> int:
    from . import metrics as M
    from .metrics import _norm
    from .metrics._io import load_folder

    gen = load_folder(args.generated, args.max_samples, progress=True)
    real = load_folder(args.real, args.max_samples, progress=True)
    results, figures = {}, {}
    results["data"] = {
        "generated": {"folder": args.generated, "velocity_shape": _shape(gen["velocity"]),
                      "seismic_shape": _shape(gen["seismic"]), "paired": gen["paired"],
                      "velocity_only_files_not_loaded": gen["velocity_only_files"]},
        "real": {"folder": args.real, "velocity_shape": _shape(real["velocity"]),
                 "seismic_shape": _shape(real["seismic"]), "paired": real["paired"],
                 "velocity_only_files_not_loaded": real["velocity_only_files"]},
    }

    # ---- value statistics and sample figures (need nothing trained) ----
    stats = {}
    for kind in ("velocity", "seismic"):
        for name, d in (("generated", gen), ("real", real)):
            if d[kind] is not None:
                stats[f"{name}_{kind}"] = M.summarize(d[kind])
    results["value_statistics"] = stats
    hist = {}
    for kind in ("velocity", "seismic"):
        series = {name: d[kind].ravel()[:: max(1, d[kind].size // 200_000)]
                  for name, d in (("generated", gen), ("real", real)) if d[kind] is not None}
        if series:
            hist[f"{kind} values"] = series
    if hist:
        figures["value_histograms"] = M.plot_histograms(hist, title="value distributions (subsampled)")
    for name, d in (("generated", gen), ("real", real)):
        if d["velocity"] is not None:
            figures[f"{name}_velocity"] = M.plot_velocity_grid(d["velocity"], title=f"{name} velocity (m/s)")
        if d["seismic"] is not None:
            figures[f"{name}_seismic"] = M.plot_seismic_grid(d["seismic"], title=f"{name} shot gathers")

    # seismic range for normalisation: named family, else the real data's extremes
    if args.dataset:
        srange = _norm.seismic_range(args.dataset)
    elif real["seismic"] is not None:
        srange = (float(real["seismic"].min()), float(real["seismic"].max()))
    else:
        srange = None

    # ---- pairwise metrics ----
    gv, rv = gen["velocity"], real["velocity"]
    if not args.paired:
        results["pairwise"] = {"skipped": "generated and real samples are not paired (pass --paired when "
                                          "generated[i] is a prediction of real[i], e.g. InversionNet output)"}
    elif gv is None or rv is None or len(gv) != len(rv):
        results["pairwise"] = {"skipped": f"--paired needs velocity maps in both folders with equal counts "
                                          f"(generated {_shape(gv)}, real {_shape(rv)})"}
    else:
        results["pairwise"] = {
            "ssim": M.ssim(gv, rv, normalized=False), "mae": M.mae(gv, rv, normalized=False),
            "mse": M.mse(gv, rv, normalized=False),
            "ssim_per_sample": M.ssim(gv, rv, normalized=False, reduction="none"),
            "note": "MAE/MSE on velocity normalised to [-1, 1]; SSIM on [0, 1] maps (OpenFWI convention)"}

    # ---- FID / KID ----
    if args.skip_fid:
        results["fid_kid"] = {"skipped": "--skip-fid given"}
    else:
        fn = None if args.features is None else _load_callable(args.features)
        fk = {}
        for kind in ("velocity", "seismic"):
            a, b = real[kind], gen[kind]
            if a is None or b is None:
                fk[kind] = {"skipped": f"no {kind} in both folders"}
                continue
            if kind == "seismic" and srange is None:
                fk[kind] = {"skipped": "no seismic data range (pass --dataset)"}
                continue
            kw = dict(modality=kind, batch_size=args.batch_size, progress=True, device=args.device,
                      data_range=srange if kind == "seismic" else None, client=client,
                      threads=getattr(args, "worker_threads", None))
            try:
                net = M.feature_network_info(kind, fn)
                fr = M.extract_features(a, fn, desc=f"real {kind} features", **kw)
                fg = M.extract_features(b, fn, desc=f"generated {kind} features", **kw)
            except (ValueError, FileNotFoundError) as e:  # e.g. an nt the reference network cannot take
                fk[kind] = {"skipped": str(e)}
                continue
            kr = M.kid_from_features(fr, fg, subsets=100, subset_size=min(1000, len(fr), len(fg)), seed=args.seed)
            fk[kind] = {"fid": M.fid_from_features(fr, fg), "kid_mean": kr.mean, "kid_std": kr.std,
                        "feature_dim": int(fr.shape[1]),
                        "features": args.features if args.features else net["name"],
                        "feature_network": net}
        results["fid_kid"] = fk

    # ---- InversionNet usefulness (Table 3) ----
    if args.inversionnet == "off":
        results["inversionnet"] = {"skipped": "--inversionnet off (pass small or paper to train InversionNet on "
                                              "the generated pairs and test it on the real set)"}
    elif not (gen["paired"] and real["paired"]):
        results["inversionnet"] = {"skipped": "needs velocity/seismic pairs in both the generated and the real folder"}
    elif srange is None:
        results["inversionnet"] = {"skipped": "no seismic data range (pass --dataset)"}
    else:
        inv, fig = _inversionnet(args, gen, real, srange, client)
        results["inversionnet"] = inv
        if fig is not None:
            figures["inversionnet_examples"] = fig

    # ---- physics consistency ----
    if args.skip_physics:
        results["physics"] = {"skipped": "--skip-physics given"}
    elif not gen["paired"]:
        results["physics"] = {"skipped": "the generated folder holds no velocity/seismic pairs"}
    else:
        n = min(args.physics_samples, len(gen["velocity"]))
        v, s = gen["velocity"][:n], gen["seismic"][:n]
        try:
            r = M.physics_consistency(v, s, batch_size=max(1, min(args.batch_size, 8)), progress=True,
                                      sim_kwargs={"device": args.device}, client=client,
                                      threads=getattr(args, "worker_threads", None))
        except ImportError as e:
            results["physics"] = {"skipped": str(e)}
        else:
            results["physics"] = {
                "pairs_checked": n, "time_subsample": r["subsample"], "summary": r["summary"],
                "worst_indices": r["worst"], "rel_l1": r["rel_l1"], "rel_l2": r["rel_l2"],
                "corr_per_shot": r["corr"],
                "note": "relative errors ||s_gen - s_sim|| / ||s_sim|| in physical units; "
                        "corr = Pearson correlation per shot"}
            figures["physics_worst_pairs"] = M.plot_worst_pairs(v, s, r, max_pairs=3)
            figures["physics_histograms"] = M.plot_histograms(
                {"relative L1": r["rel_l1"], "relative L2": r["rel_l2"], "per-shot correlation": r["corr"]},
                title="physics consistency")

    written = M.write_report(args.out, results, figures)
    print(f"report written to {written['markdown']} ({len(written['figures'])} figures)")
    return 0


def _inversionnet(args, gen, real, srange, client=None):
    """Runs inversion_usefulness on the loaded sets (+ --real-train, memmapped):
    (report section, figure)."""
    from .metrics import _norm
    from .metrics.usefulness import inversion_usefulness, open_pairs_folder, plot_inversion_examples
    vrange = _norm.VELOCITY_RANGE
    if args.dataset:
        from .data import openfwi
        inf = openfwi.info(args.dataset)
        vrange = (inf.label_min, inf.label_max)
    real_train = None if args.real_train is None else open_pairs_folder(args.real_train, args.max_samples)
    r = inversion_usefulness((gen["seismic"], gen["velocity"]), (real["seismic"], real["velocity"]), real_train,
                             config=args.inversionnet, epochs=args.inv_epochs, batch_size=args.inv_batch_size,
                             lr=args.inv_lr, seed=args.seed, data_range=srange, velocity_range=vrange,
                             progress=True, client=client, threads=getattr(args, "worker_threads", None),
                             device=args.device)
    fig = plot_inversion_examples(r)
    labels = {"generated": "trained on generated", "real": "trained on real (reference)"}
    # flat protocol table in report.md: nested settings become prefixed scalars
    protocol = dict(r["protocol"])
    protocol.update({f"time_subsample_{k}": v for k, v in protocol.pop("time_subsample").items()})
    inputs = protocol.pop("inputs")
    protocol.update(inputs if isinstance(inputs, dict) else {"inputs": inputs})
    protocol["real_train_folder"] = args.real_train
    section = {"summary": {labels[k]: v for k, v in r["summary"].items()}, "protocol": protocol}
    for k in ("generated", "real"):
        if k in r:
            section[labels[k]] = r[k]
    return section, fig


def main(argv=None) -> int:
    """Stand-alone entry (until the lead wires `ubdiff evaluate`)."""
    parser = argparse.ArgumentParser(prog="ubdiff")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
