"""``python -m ubdiff compare``: the paper's comparisons (Tables 2-5, Figs. 5-6) by one command.

    python -m ubdiff compare --family flatvel-a --scale small --out cmp/
    python -m ubdiff compare --family flatvel-a --paired 1000 --scale paper --out cmp-paper/ --device auto
    python -m ubdiff compare --list
"""
from __future__ import annotations

import argparse


def _cmd_compare(args) -> int:
    from .compare import registry
    if args.list:
        for name in registry.names():
            m, why = registry.status(name)
            title = m.title if m else registry.title(name)
            what = m.description if m else ""
            print(f"{name:<22} {title:<24} {'available' if not why else 'NOT AVAILABLE: ' + why}"
                  + (f"\n{'':<23}{what}" if what else ""))
        return 0
    if not args.out:
        raise SystemExit("compare: --out DIR is required (or --list)")
    if args.threads:
        import ubdiff
        ubdiff.set_num_threads(args.threads)
    from .compare import run
    try:
        run(args.out, family=args.family, paired=args.paired, scale=args.scale, methods=args.methods,
            device=args.device, samples_n=args.samples, seed=args.seed, progress=not args.quiet,
            make_figures=not args.no_figures)
    except (ValueError, LookupError) as e:
        raise SystemExit(f"compare: {e}") from None
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train UB-Diff and its baselines on one split, evaluate them: the paper's Tables 2-5 and Figs. 5-6",
        description="Builds (or reuses) a simulated dataset of the family (m maps, n pairs, held-out real data), "
                    "trains every method on it (or continues from the checkpoints in --out), generates the same "
                    "number of samples with each, evaluates them (FID/KID per modality, InversionNet trained on "
                    "generated pairs and tested on real ones, physics consistency, autoencoder reconstruction), "
                    "and writes tables.md / tables.json and figures/ into --out. Rerunning the same command "
                    "resumes it. Methods: --list.")
    p.add_argument("--family", default="flatvel-a", help="velocity family of the simulated data (default flatvel-a)")
    p.add_argument("--paired", type=int, default=None, metavar="N",
                   help="training pairs n (default: the scale's; 64 small, 1000 paper)")
    p.add_argument("--scale", choices=["small", "paper", "tiny"], default="small",
                   help="small: 2 CPU cores (every method in about 36 min, measured on 2 cores); paper: the paper's configuration (one GPU); "
                        "tiny: seconds, a smoke test (default small)")
    p.add_argument("--out", default=None, metavar="DIR", help="comparison folder (created, or resumed)")
    p.add_argument("--methods", default=None, metavar="A,B",
                   help="comma-separated subset of the methods (default: all; --list shows them)")
    p.add_argument("--device", default="cpu", help="device of the models: cpu (default), cuda or auto")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help="samples generated per method (default: the scale's; 256 small, 10000 paper)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the training and the sampling (default 0)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads (default: adaptive)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--list", action="store_true", help="list the methods and whether this build can run them")
    p.set_defaults(func=_cmd_compare)
