"""Command line: ``python -m ubdiff <command>`` (also installed as ``ubdiff``)."""
from __future__ import annotations

import argparse
import importlib
import json
import sys


# Modules that each add sub-commands through register(subparsers).
_COMMAND_MODULES = ("cli_data", "cli_evaluate", "cli_pipeline", "cli_inversionnet", "cli_compare")


def _cmd_info(args) -> int:
    import ubdiff
    print(json.dumps(ubdiff.build_info(), indent=2))
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(out_dir=args.out, seed=args.seed, scale=args.scale, threads=args.threads)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ubdiff", description="UB-Diff with a C/CUDA core.")
    sub = p.add_subparsers(dest="command", metavar="<command>")
    s = sub.add_parser("info", help="print build information (BLAS, OpenMP, CUDA, GPU)")
    s.set_defaults(func=_cmd_info)
    s = sub.add_parser("demo", help="end-to-end UB-Diff demo on the small config (data, 3 training stages, generation; minutes on a CPU)")
    s.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--scale", type=float, default=1.0,
                   help="multiply data sizes and training lengths (default 1: a few minutes; 0.2: a smoke run)")
    s.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    s.set_defaults(func=_cmd_demo)
    for mod in _COMMAND_MODULES:
        importlib.import_module(f"ubdiff.{mod}").register(sub)
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if not getattr(args, "func", None):
        p.print_help()
        return 2
    from .checkpoint import CheckpointError
    from .data import DataError
    try:
        return args.func(args)
    except (DataError, CheckpointError, OSError) as e:   # a bad file or folder, a full disk: no traceback
        print(f"ubdiff {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
