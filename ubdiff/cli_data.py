"""``make-dataset`` sub-command (the lead wires ``register`` into ``python -m ubdiff``)."""
from __future__ import annotations

import argparse


def _cmd_make_dataset(args) -> int:
    from .data import make_dataset
    from .distributed.cli import client_from_args
    with client_from_args(args) as client:
        meta = make_dataset(args.family, args.maps, args.paired, args.out, seed=args.seed,
                            freq=args.freq, nt=args.nt, dt=args.dt, progress=not args.quiet,
                            preview=not args.no_preview, chunk=args.chunk, client=client,
                            threads=args.worker_threads, device=args.device)
    print(f"{args.out}: {meta['maps']} velocity maps in {len(meta['velocity_files'])} file(s),"
          f" {meta['paired']} with seismic in {len(meta['seismic_files'])} file(s);"
          f" data_min/data_max = {meta['data_min']}/{meta['data_max']}")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``make-dataset`` to an argparse sub-parser collection; returns its parser."""
    from .data.openfwi import FAMILIES
    p = subparsers.add_parser(
        "make-dataset",
        help="generate an OpenFWI-layout dataset (velocity maps + simulated seismic)",
        description=(
            "Generate MAPS velocity maps of an OpenFWI family and forward-model seismic data "
            "for the first PAIRED of them, written in OpenFWI's layout into DIR: "
            "model{i}.npy (500 maps each, (n,1,70,70) float32 m/s), data{i}.npy ((n,5,NT,70) "
            "float32), ubdiff_dataset.json (parameters and data_min/data_max) and preview.png. "
            "Resumable: rerun the same command to finish an interrupted run (complete files "
            "are kept)."))
    p.add_argument("--family", required=True, choices=FAMILIES, metavar="FAMILY",
                   help="velocity family: " + ", ".join(FAMILIES)
                   + " (style-a/b are a Gaussian-random-field stand-in)")
    p.add_argument("--maps", type=int, required=True, metavar="M",
                   help="number of velocity maps (all written)")
    p.add_argument("--paired", type=int, required=True, metavar="N",
                   help="how many of them (the first N) get simulated seismic; 0 <= N <= M")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="random seed of the maps (default: %(default)s)")
    p.add_argument("--freq", type=float, default=15.0, metavar="F",
                   help="Ricker source peak frequency in Hz (default: %(default)s)")
    p.add_argument("--nt", type=int, default=1000, metavar="NT",
                   help="number of time steps (default: %(default)s)")
    p.add_argument("--dt", type=float, default=1e-3, metavar="DT",
                   help="time step in s (default: %(default)s)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where to forward-model: the GPU when one is usable (auto), or cpu / cuda "
                        "(default: %(default)s)")
    p.add_argument("--chunk", type=int, default=50, metavar="K",
                   help="maps simulated per call; with --workers / --scheduler, one shard (default: %(default)s)")
    p.add_argument("--no-preview", action="store_true", help="do not write preview.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from .distributed.cli import add_dask_arguments
    add_dask_arguments(p)
    p.set_defaults(func=_cmd_make_dataset)
    return p
