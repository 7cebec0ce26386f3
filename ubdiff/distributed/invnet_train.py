"""InversionNet trained data-parallel (MPI ranks) or in one process, in a resumable run folder.

    python -m ubdiff train-inversionnet --data pairs/ --run inv/ --epochs 10            # one process
    mpirun -n 4 python -m ubdiff train-inversionnet --data pairs/ --run inv/ --epochs 10

Run folder: ``inversionnet.safetensors`` (weights, BatchNorm statistics, AdamW
moments and step: :meth:`InversionNet.save`) and ``train.json`` (settings,
epoch, history), written together by rank 0 after every ``save_every`` epochs
through one atomic folder swap (ubdiff.data.files.atomic_folder); every rank
loads it on start, so a rerun continues where the last save stopped.

Batches: epoch e visits the permutation ``default_rng(seed + e)`` of the pairs
in global batches of ``batch_size`` (InversionNet.fit's rule, whatever the
number of ranks); rank r reads its contiguous slice of each global batch.
BatchNorm uses each rank's own batch statistics and rank 0's running
statistics, as PyTorch DDP without SyncBatchNorm: with R ranks a step equals a
single-process step on the global batch only up to that (one rank: bit for
bit). ``sync_bn=True`` (``--sync-bn``) takes the statistics over all ranks
(SyncBatchNorm): a step then equals the single-process step on the global
batch up to float rounding. Resuming on the same ranks and thread counts
continues bit for bit.
"""
from __future__ import annotations

import json
import math
import os
import time

import numpy as np

from .comm import Comm, on_all_ranks, world
from .data_parallel import DataParallel
from .sampler import ShardedBatches, epoch_batches

FORMAT = "ubdiff-inversionnet-run-1"
MODEL_FILE = "inversionnet.safetensors"
STATE_FILE = "train.json"
RUN_FILES = (MODEL_FILE, STATE_FILE)
#: Settings fixed when a run starts; a resumed run keeps them.
SETTINGS = ("config", "seed", "batch_size", "lr", "betas", "eps", "weight_decay", "l1_weight", "mse_weight",
            "sync_bn")
DEFAULTS = dict(config="small", seed=0, batch_size=16, lr=1e-4, betas=[0.9, 0.999], eps=1e-8, weight_decay=1e-4,
                l1_weight=1.0, mse_weight=1.0, sync_bn=False)


class RunError(ValueError):
    """A run folder that cannot be continued with the given settings."""


def _settings(given: dict, saved: dict | None) -> dict:
    """The run's settings: a new run's from ``given`` (None: the default), a resumed run's
    from the folder; a given value that differs from the saved one is an error."""
    if saved is None:
        out = {k: (DEFAULTS[k] if given.get(k) is None else given[k]) for k in SETTINGS}
        out["betas"] = [float(b) for b in out["betas"]]
        return out
    clash = [k for k in SETTINGS if given.get(k) is not None and _norm(given[k]) != _norm(saved[k])]
    if clash:
        raise RunError("the run folder was started with other settings: " +
                       ", ".join(f"{k} {saved[k]!r} (given {given[k]!r})" for k in clash) +
                       "; omit them to continue it, or use another run folder")
    return {k: saved[k] for k in SETTINGS}


def _norm(v):
    return [float(x) for x in v] if isinstance(v, (list, tuple)) else v


def load_run(run_dir: str, given: dict):
    """(InversionNet, train state) of a run folder, or a new model and state when it holds none."""
    from ..checkpoint import CheckpointError
    from ..data.files import read_json, recover_folder
    from ..models import InversionNet
    from ..models.inversionnet import resolve_config

    recover_folder(run_dir)
    fn = os.path.join(run_dir, STATE_FILE)
    if not os.path.lexists(fn):
        st = _settings(given, None)
        cfg = resolve_config(st["config"])
        model = InversionNet(cfg, seed=st["seed"], max_batch=st["batch_size"])
        st["config"] = {**cfg, "dims": list(cfg["dims"])}
        return model, {"format": FORMAT, **st, "epoch": 0, "step": 0, "history": []}
    info = read_json(fn, "InversionNet run state", CheckpointError)
    if info.get("format") != FORMAT or not all(k in info for k in SETTINGS + ("epoch", "step", "history")):
        raise CheckpointError(f"{fn}: not an InversionNet run state ({FORMAT})")
    st = _settings({k: v for k, v in given.items() if k != "config"}, info)
    if given.get("config") is not None:
        cfg = resolve_config(given["config"])
        if {**cfg, "dims": list(cfg["dims"])} != info["config"]:
            raise RunError(f"{run_dir}: the run was started with InversionNet config {info['config']}, not "
                           f"{given['config']!r}; omit --config to continue it")
    model = InversionNet.load(os.path.join(run_dir, MODEL_FILE), max_batch=int(info["batch_size"]))
    if model.step != info["step"]:
        raise CheckpointError(f"{run_dir}: {MODEL_FILE} is at step {model.step}, {STATE_FILE} at {info['step']}")
    return model, {**info, **st}


def run_config(run_dir: str, config=None) -> dict:
    """The InversionNet config of a run: the one saved in run_dir, else ``config`` (None: DEFAULTS')."""
    from ..checkpoint import CheckpointError
    from ..data.files import read_json
    from ..models.inversionnet import resolve_config
    fn = os.path.join(run_dir, STATE_FILE)
    if os.path.lexists(fn):
        saved = read_json(fn, "InversionNet run state", CheckpointError).get("config")
        if isinstance(saved, dict):
            return resolve_config(saved)
    return resolve_config(DEFAULTS["config"] if config is None else config)


def save_run(run_dir: str, model, state: dict) -> None:
    """Both files of the run, replacing the old ones in one atomic step."""
    from ..data.files import atomic_folder
    with atomic_folder(run_dir, lambda n: n in RUN_FILES) as tmp:
        model.save(os.path.join(tmp, MODEL_FILE))
        with open(os.path.join(tmp, STATE_FILE), "w") as f:
            json.dump(state, f, indent=1)
            f.flush()
            os.fsync(f.fileno())


def train_inversionnet(pairs, run_dir: str, epochs: int, comm: Comm | None = None, save_every: int = 1,
                       progress: bool = True, log=None, **given) -> dict:
    """Train InversionNet on ``pairs`` for ``epochs`` more epochs in ``run_dir``.

    pairs: an object with ``len(pairs)`` and ``pairs.read(sorted indices) -> (seismic,
    velocity)`` normalised float32 batches (ubdiff.metrics.usefulness's reader of a folder,
    or any such reader); every rank reads only its own indices. given: the run settings
    (SETTINGS; None = default / keep the run's). comm: the process group (default
    :func:`ubdiff.distributed.comm.world`: MPI ranks under mpirun). log(text): called on
    rank 0 after every epoch. Returns (this rank's InversionNet, the run state: settings,
    epoch, step, history).
    """
    comm = world() if comm is None else comm
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs must be a non-negative int, got {epochs!r}")
    if isinstance(save_every, bool) or not isinstance(save_every, (int, np.integer)) or save_every < 1:
        raise ValueError(f"save_every must be a positive int, got {save_every!r}")
    model, state = comm.agree(lambda: load_run(run_dir, given), f"loading {run_dir}")
    n, bs = len(pairs), int(state["batch_size"])
    if bs < 2 * comm.size:
        raise ValueError(f"batch_size {bs} gives some of the {comm.size} ranks fewer than 2 samples a step "
                         "(training-mode BatchNorm needs 2); use a larger batch or fewer ranks")
    if n < bs:
        raise ValueError(f"{n} training pairs are fewer than one batch of {bs}")
    with comm.guard("data-parallel InversionNet training"):   # one rank's own error ends the job (MPI_Abort)
        dp = DataParallel(model, comm, sync_bn=state["sync_bn"])
        try:
            _epochs(pairs, run_dir, epochs, comm, save_every, progress, log, model, state, dp, n, bs)
        finally:   # agreed errors too: the BatchNorm hook (sync_bn) leaves the model
            dp.close()
    return model, state


def _epochs(pairs, run_dir, epochs, comm, save_every, progress, log, model, state, dp, n, bs):
    """The epochs of train_inversionnet (state updated in place, rank 0 saving)."""
    update = dict(lr=state["lr"], betas=tuple(state["betas"]), eps=state["eps"], weight_decay=state["weight_decay"])
    loss_kw = dict(l1_weight=state["l1_weight"], mse_weight=state["mse_weight"])

    for _ in range(int(epochs)):
        e = state["epoch"]
        t0 = time.perf_counter()
        steps = ShardedBatches(epoch_batches(n, bs, state["seed"], e), comm.rank, comm.size, min_local=2)
        local = np.zeros(3)
        it = steps
        if progress and comm.is_root:
            from tqdm.auto import tqdm
            it = tqdm(steps, total=len(steps), desc=f"InversionNet epoch {e + 1}", leave=False)
        for idx, n_global in it:
            local += dp.step(lambda idx=idx: pairs.read(idx), n_global, update, loss_kw)
        tot = comm.allreduce_sum(local) / len(steps)
        if not math.isfinite(tot[0]):   # the global loss: every rank raises
            raise on_all_ranks(FloatingPointError(f"InversionNet: loss became {tot[0]} in epoch {e}; lower lr"))
        rec = {"epoch": e, "loss": float(tot[0]), "l1": float(tot[1]), "mse": float(tot[2]), "steps": len(steps),
               "ranks": comm.size, "seconds": round(time.perf_counter() - t0, 3)}
        state["history"].append(rec)
        state["epoch"], state["step"] = e + 1, model.step
        if state["epoch"] % save_every == 0 or _ == epochs - 1:
            comm.agree(lambda: save_run(run_dir, model, state) if comm.is_root else None, f"saving {run_dir}")
        if log is not None and comm.is_root:
            log(f"epoch {e + 1}: loss {rec['loss']:.4f} (l1 {rec['l1']:.4f}, mse {rec['mse']:.4f}), "
                f"{rec['steps']} steps on {comm.size} rank(s), {rec['seconds']:.1f} s")
