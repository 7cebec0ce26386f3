"""Sub-commands of the UB-Diff pipeline: train-autoencoder, finetune, train-diffusion,
generate (and convert-official, export-official from ubdiff/official/cli.py). Each works
on a run folder (ubdiff.UBDiff.save/load), saving after every epoch (or --save-every
diffusion steps), so an interrupted command continues exactly when rerun.

    python -m ubdiff make-dataset --family flatvel-a --maps 2000 --paired 200 --out data/
    python -m ubdiff train-autoencoder --data data/ --run run/ --config small --epochs 20
    python -m ubdiff finetune --data data/ --run run/ --epochs 20 [--no-freeze | --wo-opt]
    python -m ubdiff train-diffusion --data data/ --run run/ --steps 5000
    python -m ubdiff generate --run run/ --n 1000 --out generated/

Started by ``mpirun -n R``, train-autoencoder, finetune and train-diffusion train one
model data-parallel over the R ranks (ubdiff/distributed/ubdiff_train.py): each reads its
slice of every global batch, rank 0 prints and saves, every rank loads the run folder.
"""
from __future__ import annotations

import argparse
import json
import os
import time


def _data(args, velocity_only):
    """Velocity-only dataset of all maps, or the paired samples (optionally n of them, seeded)."""
    from .data import OpenFWIDataset, openfwi, unbalanced_split
    root = args.data
    split = None if openfwi.has_meta(root) else "train"
    if split is not None and not args.family:
        raise SystemExit(f"{root}: an OpenFWI folder needs --family (to find its official train files)")
    if velocity_only:
        return OpenFWIDataset.from_folder(root, args.family, split, velocity_only=True)
    if getattr(args, "n_paired", None) is None:
        return OpenFWIDataset.from_folder(root, args.family, split)
    return unbalanced_split(root, args.family, n_paired=args.n_paired, seed=args.split_seed, split=split).paired


def _family(args):
    from .data import openfwi
    if args.family:
        return args.family
    meta = openfwi.read_meta(args.data, partial=True) if getattr(args, "data", None) else None
    return meta.get("family") if meta else None


def _hyper(args):
    """lr and lr_decay: the flags, else the paper's values for the family, else 1e-4 / 0.995."""
    from .pipeline import paper_hyperparameters
    fam = _family(args)
    try:
        hp = paper_hyperparameters(fam) if fam else {"lr": 1e-4, "lr_decay": 0.995}
    except ValueError:   # not an OpenFWI family (e.g. "generated")
        hp = {"lr": 1e-4, "lr_decay": 0.995}
    return (args.lr if args.lr is not None else hp["lr"],
            args.lr_decay if args.lr_decay is not None else hp["lr_decay"])


def _config(text):
    if text in ("small", "paper"):
        return text
    if os.path.exists(text):
        from .data.files import read_json
        return read_json(text, "--config")
    try:
        return json.loads(text)
    except ValueError as e:
        raise SystemExit(f"--config: {text!r} is neither 'small', 'paper', a JSON file nor JSON text ({e})")


def _comm():
    """The MPI ranks this command runs on (a group of one without mpirun)."""
    from .distributed.comm import world
    return world()


def _say(text):
    if _comm().is_root:
        print(text, flush=True)


def _model(args, create=False):
    from .data.files import recover_folder
    from .pipeline import STATE_FILE, UBDiff
    comm = _comm()
    # a save a kill interrupted (file systems without an atomic exchange): mended by rank 0 alone
    comm.agree(lambda: recover_folder(args.run) if comm.is_root else None, f"recovering {args.run}")

    def load():   # what each rank's file system says: agreed on (a rank that cannot see --run fails all)
        if os.path.lexists(os.path.join(args.run, STATE_FILE)):
            if create and args.config is not None:
                raise SystemExit(f"{args.run}: holds a run already; omit --config to continue it, or use another "
                                 "--run")
            return UBDiff.load(args.run, device=_train_device(args)), True
        if not create:
            raise SystemExit(f"{args.run}: no UBDiff run here (start one with train-autoencoder)")
        return UBDiff(_config(args.config or "small"), seed=args.seed, max_batch=args.max_batch,
                      device=_train_device(args)), False
    m, resumed = comm.agree(load, f"loading {args.run}")
    if resumed:
        _say(f"continuing {args.run}: {m!r}")
    return m


def _agreed_data(args, velocity_only):
    """_data on every rank, its errors agreed on (a rank whose --data is missing fails them all)."""
    return _comm().agree(lambda: _data(args, velocity_only), f"opening {args.data}")


def _train_device(args) -> str:
    """--device; under several MPI ranks "auto" is the CPU (the autoencoder's and diffusion's
    data-parallel steps all-reduce the CPU's zero-copy gradient views; the NCCL path,
    ubdiff/distributed/nccl.py, covers InversionNet only so far)."""
    if _comm().size > 1 and args.device == "auto":
        return "cpu"
    return device_arg(args)


def device_arg(args) -> str:
    """--device, refused up front (a one-line error, no traceback) when it asks for a GPU this
    machine or build cannot give; "auto" takes the GPU when one is visible."""
    import ubdiff
    if args.device == "cuda" and ubdiff.gpu_count() == 0:
        why = "no CUDA GPU is visible" if ubdiff.cuda_compiled() else "this ubdiff was built without CUDA"
        raise SystemExit(f"--device cuda: {why}; use --device cpu or auto")
    return args.device


def add_device_argument(p, what: str = "the models") -> None:
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help=f"where {what} run: auto (default: the GPU when one is visible, else the CPU), cpu "
                        "or cuda. Run folders and checkpoints saved on one device load on the other")


def _setup(args):
    import ubdiff
    if getattr(args, "threads", None):
        ubdiff.set_num_threads(args.threads)
    elif _comm().size > 1:   # ranks on one machine share its cores
        from .distributed.comm import default_threads
        ubdiff.set_num_threads(default_threads(_comm()))


def _save(m, run):
    """Rank 0 writes the run folder (atomically: UBDiff.save); every rank learns whether it did."""
    comm = _comm()
    comm.agree(lambda: m.save(run) if comm.is_root else None, f"saving {run}")


def _on_ranks(cmd, name):
    """cmd(args) on every rank, errors said once (ubdiff.distributed.cli.run_on_ranks)."""
    def run(args):
        from .distributed.cli import run_on_ranks
        return run_on_ranks(_comm(), lambda: cmd(args), name)
    return run


def _lr_schedule(args) -> dict:
    """The lr rule flags (None: the run's saved rule, else the authors' multistep rule)."""
    return dict(lr_rule=args.lr_rule, lr_milestones=args.lr_milestones, lr_warmup_epochs=args.lr_warmup_epochs,
                lr_epoch_batches=args.lr_epoch_batches)


def _epochs(args, m, fit):
    lr, decay = _hyper(args)
    t0 = time.perf_counter()
    every = max(1, args.save_every)
    done = 0
    while done < args.epochs:
        k = min(every, args.epochs - done)
        for rec in fit(k, lr, decay):
            extra = "".join(f" {key} {rec[key]:.4f}" for key in ("velocity", "seismic") if key in rec)
            _say(f"epoch {rec['epoch'] + 1}: loss {rec['total']:.4f}{extra} (lr {rec['lr']:.3g})")
        done += k
        _save(m, args.run)
    _say(f"{args.epochs} epoch(s) in {time.perf_counter() - t0:.1f} s on {_comm().size} rank(s); saved {args.run}")
    return 0


def _cmd_train_autoencoder(args) -> int:
    _setup(args)
    m = _model(args, create=True)
    vel = _agreed_data(args, velocity_only=True)
    _say(f"step 1 on {len(vel)} velocity maps")
    return _epochs(args, m, lambda k, lr, d: m.fit_autoencoder(vel, k, batch_size=args.batch_size, lr=lr,
                                                               lr_decay=d, weight_decay=args.weight_decay,
                                                               progress=not args.quiet, comm=_comm(),
                                                               sync_bn=args.sync_bn,
                                                               **_lr_schedule(args)))


def _cmd_finetune(args) -> int:
    _setup(args)
    m = _model(args)
    pairs = _agreed_data(args, velocity_only=False)
    fit = m.fit_wo_opt if args.wo_opt else m.finetune
    kw = {} if args.wo_opt else {"freeze": args.freeze}
    what = "w/o opt (whole network, from scratch)" if args.wo_opt else f"step 2, F = {int(args.freeze)}"
    _say(f"{what} on {len(pairs)} pairs")
    return _epochs(args, m, lambda k, lr, d: fit(pairs, None, k, batch_size=args.batch_size, lr=lr, lr_decay=d,
                                                 weight_decay=args.weight_decay, progress=not args.quiet,
                                                 comm=_comm(), sync_bn=args.sync_bn, **_lr_schedule(args), **kw))


def _cmd_train_diffusion(args) -> int:
    _setup(args)
    m = _model(args)
    vel = _agreed_data(args, velocity_only=True)
    _say(f"diffusion on z of {len(vel)} velocity maps")
    t0 = time.perf_counter()
    done, every = 0, max(1, args.save_every)
    while done < args.steps:
        k = min(every, args.steps - done)
        losses = m.fit_diffusion(vel, k, batch_size=args.batch_size, accum=args.accum, lr=args.lr, ema=args.ema,
                                 ema_every=args.ema_every, ema_decay=args.ema_decay, progress=not args.quiet,
                                 comm=_comm())
        done += k
        _save(m, args.run)
        _say(f"step {m.diffusion.step}: mean loss of the last {k} {sum(losses) / len(losses):.4f}")
    _say(f"{args.steps} step(s) in {time.perf_counter() - t0:.1f} s on {_comm().size} rank(s); saved {args.run}")
    return 0


def _cmd_generate(args) -> int:
    _setup(args)
    import numpy as np

    from .data import open_npy, openfwi
    from .pipeline_figure import save_pairs_figure
    from .distributed.cli import client_from_args
    m = _model(args)
    t0 = time.perf_counter()
    with client_from_args(args) as client:
        meta = m.generate(args.n, args.out, seed=args.seed, sampler=args.sampler, steps=args.steps, eta=args.eta,
                          file_size=args.file_size, progress=not args.quiet, weights=args.weights, client=client,
                          threads=args.worker_threads)
    k = min(4, args.n)
    vel = np.array(open_npy(os.path.join(args.out, openfwi.velocity_name(1)))[:k])
    seis = np.array(open_npy(os.path.join(args.out, openfwi.seismic_name(1)))[:k])
    fig = args.figure or os.path.join(args.out, "generated_pairs.png")
    save_pairs_figure(fig, vel, seis, title=f"UB-Diff: generated pairs ({args.sampler}, seed {args.seed})",
                      vmin=m.constants["label_min"], vmax=m.constants["label_max"])
    print(f"{args.n} pairs in {len(meta['velocity_files'])} file pair(s) under {args.out} "
          f"({time.perf_counter() - t0:.1f} s); figure: {fig}")
    return 0


def _common(p, data=True, train=True):
    p.add_argument("--run", required=True, metavar="DIR", help="run folder (UBDiff.save / load)")
    if data:
        p.add_argument("--data", required=True, metavar="DIR",
                       help="dataset folder: made by `ubdiff make-dataset`, or OpenFWI's (then --family)")
        p.add_argument("--family", default=None, metavar="FAMILY",
                       help="OpenFWI family (official train files; the paper's lr / lr decay)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads (default: all; under mpirun: the machine's cores shared by its ranks)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_device_argument(p)
    if train:
        p.add_argument("--epochs", type=int, required=True, metavar="E", help="epochs to run (more, if resuming)")
        p.add_argument("--batch-size", type=int, default=None, metavar="B",
                       help="batch (default: the model's max_batch: 16 small, 64 paper); under mpirun the "
                            "global batch, split among the ranks")
        p.add_argument("--lr", type=float, default=None, help="learning rate (default: the paper's for --family)")
        p.add_argument("--lr-decay", type=float, default=None,
                       help="lr factor (gamma) at each milestone (default: the paper's for the family, else 0.995)")
        p.add_argument("--lr-rule", choices=["multistep", "per-epoch"], default=None,
                       help="multistep: the authors' WarmupMultiStepLR, stepped per batch; per-epoch: lr * "
                            "decay^epoch (default: the run's saved rule; new stages multistep)")
        p.add_argument("--lr-milestones", type=int, nargs="+", default=None, metavar="EPOCH",
                       help="epochs at which the lr is multiplied by --lr-decay (default: every 10 epochs)")
        p.add_argument("--lr-warmup-epochs", type=int, default=None, metavar="W",
                       help="linear lr warm-up from lr*1e-5 over W epochs (default 0, the authors' default)")
        p.add_argument("--lr-epoch-batches", type=int, default=None, metavar="N",
                       help="batches that count as one epoch for milestones and warm-up (default: the "
                            "stage's own; the authors' finetune counts ceil(m / batch) of step 1)")
        p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay (default: 1e-4)")
        p.add_argument("--save-every", type=int, default=1, metavar="E", help="save every E epochs (default: 1)")
        p.add_argument("--sync-bn", action="store_true",
                       help="under mpirun: BatchNorm statistics over all ranks (SyncBatchNorm), so a step equals "
                            "one process on the global batch (default: each rank's own, as PyTorch DDP)")


def register(subparsers) -> None:
    """Add the pipeline sub-commands to ``python -m ubdiff``."""
    raw = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser("train-autoencoder", formatter_class=raw,
                              help="step 1: encoder + velocity decoder on all velocity maps",
                              description="Step 1 of UB-Diff (Eq. 2): train the encoder, velocity head and "
                                          "velocity decoder on every velocity map of --data. Creates --run (or "
                                          "continues it) and saves after every epoch.")
    _common(p)
    p.add_argument("--config", default=None, help="small | paper | a JSON file or string "
                   "{'autoencoder': ..., 'diffusion': ...} (new runs; default small)")
    p.add_argument("--seed", type=int, default=0, help="seed of a new run (default 0)")
    p.add_argument("--max-batch", type=int, default=None, help="largest autoencoder batch of a new run")
    p.set_defaults(func=_on_ranks(_cmd_train_autoencoder, "train-autoencoder"))

    p = subparsers.add_parser("finetune", formatter_class=raw,
                              help="step 2: seismic decoder on the pairs (--freeze / --no-freeze, --wo-opt)",
                              description="Step 2 of UB-Diff (Eqs. 3-4) on the paired samples of --data: "
                                          "loss (1-F) l_v + l_s. --freeze (F=1, default) trains only the seismic "
                                          "head and decoder; --no-freeze trains everything; --wo-opt is the "
                                          "'w/o opt' ablation (whole network, pairs only, from scratch).")
    _common(p)
    p.add_argument("--freeze", action=argparse.BooleanOptionalAction, default=True,
                   help="F = 1: keep the encoder and velocity side fixed (default)")
    p.add_argument("--wo-opt", action="store_true", help="the 'UB-Diff w/o opt' ablation")
    p.add_argument("--n-paired", type=int, default=None, metavar="N",
                   help="use N randomly chosen pairs (default: every sample with seismic)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the choice of N pairs (default 0)")
    p.set_defaults(func=_on_ranks(_cmd_finetune, "finetune"))

    p = subparsers.add_parser("train-diffusion", formatter_class=raw,
                              help="step 3: latent diffusion on z = E(velocity)",
                              description="Train the v-prediction latent diffusion on z = E(velocity) of every "
                                          "velocity map (frozen encoder), saving every --save-every steps.")
    _common(p, train=False)
    p.add_argument("--steps", type=int, required=True, help="optimiser steps to run (more, if resuming)")
    p.add_argument("--batch-size", type=int, default=16, help="micro-batch (default 16)")
    p.add_argument("--accum", type=int, default=2, help="gradient accumulation (default 2)")
    p.add_argument("--lr", type=float, default=8e-5, help="Adam lr (default 8e-5)")
    p.add_argument("--ema", choices=["ema-pytorch", "fixed"], default=None,
                   help="EMA rule: ema-pytorch (the authors': copies to step 101, then a decay warm-up) or fixed "
                        "(default: the run's rule; new runs ema-pytorch)")
    p.add_argument("--ema-every", type=int, default=None, help="EMA update period in steps (default 10)")
    p.add_argument("--ema-decay", type=float, default=None, help="EMA (maximum) decay (default 0.995)")
    p.add_argument("--save-every", type=int, default=1000, metavar="S", help="save every S steps (default 1000)")
    p.set_defaults(func=_on_ranks(_cmd_train_diffusion, "train-diffusion"))

    p = subparsers.add_parser("generate", formatter_class=raw,
                              help="sample new (velocity, seismic) pairs into OpenFWI files + a figure",
                              description="Sample N pairs and write them as OpenFWI files (model{i}.npy in m/s, "
                                          "data{i}.npy, 500 per file) with ubdiff_dataset.json, and a PNG of the "
                                          "first pairs (velocity beside its shot gathers).")
    _common(p, data=False, train=False)
    p.add_argument("--n", type=int, required=True, help="number of pairs")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddpm", help="ddpm (paper, T steps) or ddim")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default T)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta (default 0: deterministic)")
    p.add_argument("--file-size", type=int, default=500, help="samples per file (default 500, OpenFWI's)")
    p.add_argument("--weights", choices=["online", "ema"], default="online",
                   help="diffusion weights that sample: online (default; the authors' generation.py) or ema")
    p.add_argument("--figure", default=None, metavar="PNG", help="figure path (default OUT/generated_pairs.png)")
    from .distributed.cli import add_dask_arguments
    add_dask_arguments(p)
    p.set_defaults(func=_cmd_generate)

    from .official import cli as official_cli   # convert-official, export-official
    official_cli.register(subparsers)
