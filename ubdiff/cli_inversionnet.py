"""``train-inversionnet``: InversionNet on the pairs of a folder, in a resumable run folder;
data-parallel over MPI ranks when started by mpirun (ubdiff/distributed/invnet_train.py).

    python -m ubdiff train-inversionnet --data pairs/ --run inv/ --epochs 10
    mpirun -n 2 python -m ubdiff train-inversionnet --data pairs/ --run inv/ --epochs 10
"""
from __future__ import annotations

import argparse
import sys


def _pairs(args, cfg):
    from .data import openfwi
    from .metrics.usefulness import _normalizer, _Pairs, open_pairs_folder
    dataset = args.dataset
    if dataset is None:
        if not openfwi.has_meta(args.data):
            raise SystemExit(f"{args.data}: no ubdiff_dataset.json to take the normalisation constants from; "
                             "pass --dataset FAMILY (e.g. flatvel-a)")
        dataset = args.data
    norm = _normalizer(False, dataset, None, None)
    return _Pairs(open_pairs_folder(args.data, args.max_samples), args.data, cfg, norm, "auto")


def _cmd(args) -> int:
    import ubdiff
    from .distributed import comm as comm_mod
    from .distributed.invnet_train import RunError, run_config, train_inversionnet

    comm = comm_mod.world()
    ubdiff.set_num_threads(args.threads or comm_mod.default_threads(comm))

    def say(text):
        if comm.is_root:
            print(text, flush=True)

    def run():
        cfg = comm.agree(lambda: run_config(args.run, args.config), f"reading {args.run}")
        pairs = comm.agree(lambda: _pairs(args, cfg), f"opening {args.data}")
        say(f"InversionNet on {len(pairs)} pairs of {args.data}: {comm.size} rank(s) ({comm.backend}), "
            f"{ubdiff.get_num_threads()} thread(s) each")
        given = dict(config=args.config, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                     weight_decay=args.weight_decay, sync_bn=True if args.sync_bn else None)
        try:
            _, st = train_inversionnet(pairs, args.run, args.epochs, comm=comm, save_every=args.save_every,
                                    progress=not args.quiet, log=say, **given)
        except RunError as e:
            raise SystemExit(f"{args.run}: {e}") from None
        say(f"{args.run}: epoch {st['epoch']}, step {st['step']}")
        return 0

    if comm.size == 1:
        return run()
    try:   # several ranks: failures seen by all of them (comm.agree) are said once, by rank 0
        return run()
    except SystemExit as e:
        if isinstance(e.code, str):
            if comm.is_root:
                print(e.code, file=sys.stderr)
            return 1
        raise
    except RuntimeError as e:
        if comm.is_root:
            print(f"ubdiff train-inversionnet: error: {e}", file=sys.stderr)
        return 1
    except BaseException:   # this rank alone: the others would wait forever in a collective
        import traceback
        traceback.print_exc()
        comm.abort(1)
        raise


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train-inversionnet", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="train InversionNet on the pairs of a folder (data-parallel under mpirun)",
        description="Train InversionNet (L1 + MSE, AdamW) on the (seismic, velocity) pairs of --data in the run "
                    "folder --run (created, or continued: saved after every --save-every epochs). Started by "
                    "`mpirun -n R`, the R ranks train one model data-parallel: each reads its slice of every "
                    "global batch and the gradients are summed by one MPI all-reduce per step; BatchNorm "
                    "statistics are per rank (as PyTorch DDP) unless --sync-bn. Needs `pip install 'ubdiff[mpi]'` for R > 1.")
    p.add_argument("--data", required=True, metavar="DIR", help="pairs: a folder made by make-dataset or generate, "
                   "or OpenFWI-layout files (then --dataset)")
    p.add_argument("--run", required=True, metavar="DIR", help="run folder (created or continued)")
    p.add_argument("--epochs", type=int, required=True, help="epochs to run (more, if continuing)")
    p.add_argument("--config", default=None, help="InversionNet config of a new run: small (default) | paper")
    p.add_argument("--batch-size", type=int, default=None, metavar="B",
                   help="global batch, split among the ranks (new runs; default 16)")
    p.add_argument("--lr", type=float, default=None, help="AdamW learning rate (new runs; default 1e-4)")
    p.add_argument("--weight-decay", type=float, default=None, help="AdamW weight decay (new runs; default 1e-4)")
    p.add_argument("--seed", type=int, default=None, help="initialisation and shuffling seed (new runs; default 0)")
    p.add_argument("--sync-bn", action="store_true",
                   help="BatchNorm statistics over all ranks (SyncBatchNorm; new runs): a step then equals one "
                        "process on the global batch (default: each rank's own, as PyTorch DDP)")
    p.add_argument("--dataset", default=None, metavar="FAMILY",
                   help="normalisation constants (default: the --data folder's ubdiff_dataset.json)")
    p.add_argument("--max-samples", type=int, default=None, metavar="N", help="use the first N pairs only")
    p.add_argument("--save-every", type=int, default=1, metavar="E", help="save every E epochs (default 1)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads per rank (default: this machine's cores shared by its ranks)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd)
    return p
