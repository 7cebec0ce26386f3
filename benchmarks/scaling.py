"""Scaling out on this machine: Dask workers for make-dataset and generate, MPI ranks for training.

    python benchmarks/scaling.py                       # all three parts, Markdown tables
    python benchmarks/scaling.py --part make-dataset --maps 16
    python benchmarks/scaling.py --part generate --n 32
    python benchmarks/scaling.py --part train --steps 8          # InversionNet
    python benchmarks/scaling.py --part train-autoencoder        # UB-Diff step 1, per-rank and --sync-bn
    python benchmarks/scaling.py --part train-diffusion          # the latent diffusion
    python benchmarks/scaling.py --quick                         # every part at smoke sizes (seconds)

make-dataset: ``--maps`` maps, all with full-size seismic (5 shots x 1000 steps x 70
receivers; the forward modelling is the whole cost), shards of ``--chunk`` maps.
generate: ``--n`` pairs of the small UB-Diff configuration (untrained: sampling costs the
same), ancestral DDPM over its 256 steps, file pairs of ``--file-size``. train: InversionNet
steps at global batch ``--batch`` on random normalised pairs (``--config small``: nt 250,
or paper), timed on rank 0 after one warm-up step; 2 ranks = ``mpirun -n 2``.
train-autoencoder: step-1 steps of the small co-latent autoencoder at global batch
``--batch`` on random maps, BatchNorm per rank and with sync-bn (its all-reduces inside
forward and backward). train-diffusion: steps of the small latent diffusion (accum 1) at
global batch ``--batch`` on random latents. ``--quick``: 4 maps, 4 pairs, 2 steps, batch 8
-- a check that every part runs, not a measurement.

Rows: one process (1 and 2 threads), then a LocalCluster / mpirun with 1 and 2 workers /
ranks (one thread each unless said). The cluster's start-up (a few seconds, with the
workers' first imports) is reported apart, not in the throughput; generate's workers still
load the model once per job inside the timed part. Results are the same bits whatever the row (the tests check
that); only time differs. The machine is shared: every figure is one run, note the load.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, table  # noqa: E402

import ubdiff  # noqa: E402


def _load():
    return "%.1f" % os.getloadavg()[0]


def _warm():
    """What a worker imports for its first shard (timed with the start-up, not the throughput)."""
    import ubdiff.data.builder  # noqa: F401
    import ubdiff.physics  # noqa: F401
    import ubdiff.pipeline  # noqa: F401


def _cluster(workers):
    from ubdiff.distributed import dask_client
    t0 = time.perf_counter()
    cm = dask_client(workers=workers)
    c = cm.__enter__()
    c.run(_warm)
    return cm, c, time.perf_counter() - t0


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_make_dataset(maps, chunk, work):
    from ubdiff.data import make_dataset
    kw = dict(family="flatvel-a", maps=maps, paired=maps, chunk=chunk, preview=False, progress=False)
    rows = []
    for threads in (1, 2):
        ubdiff.set_num_threads(threads)
        out = os.path.join(work, f"md-serial-{threads}")
        load = _load()
        rows.append((f"one process, {threads} thread(s)", "-", f"{maps / _timed(lambda: make_dataset(out_dir=out, **kw)):.2f}",
                     load))
        shutil.rmtree(out)
    for workers in (1, 2):
        cm, c, up = _cluster(workers)
        try:
            out = os.path.join(work, f"md-dask-{workers}")
            load = _load()
            dt = _timed(lambda: make_dataset(out_dir=out, client=c, threads=1, **kw))
        finally:
            cm.__exit__(None, None, None)
        rows.append((f"LocalCluster, {workers} worker(s) x 1 thread", f"{up:.1f}", f"{maps / dt:.2f}", load))
        shutil.rmtree(out)
    return table(rows, ["run", "cluster start s", "maps / s", "load"])


def bench_generate(n, file_size, work):
    from ubdiff import UBDiff
    m = UBDiff("small", seed=0)
    m.set_constants("flatvel-a")
    kw = dict(seed=0, file_size=file_size, progress=False)
    rows = []
    for threads in (1, 2):
        ubdiff.set_num_threads(threads)
        out = os.path.join(work, f"gen-serial-{threads}")
        load = _load()
        rows.append((f"one process, {threads} thread(s)", "-", f"{n / _timed(lambda: m.generate(n, out, **kw)):.2f}", load))
        shutil.rmtree(out)
    for workers in (1, 2):
        cm, c, up = _cluster(workers)
        try:
            out = os.path.join(work, f"gen-dask-{workers}")
            load = _load()
            dt = _timed(lambda: m.generate(n, out, client=c, threads=1, **kw))
        finally:
            cm.__exit__(None, None, None)
        rows.append((f"LocalCluster, {workers} worker(s) x 1 thread", f"{up:.1f}", f"{n / dt:.2f}", load))
        shutil.rmtree(out)
    return table(rows, ["run", "cluster start s", "pairs / s", "load"])


def _rank_model(model, config, batch, comm, sync_bn):
    """(DataParallel, local batch, loss kwargs of a step) of one benchmark rank."""
    from ubdiff.distributed.data_parallel import DataParallel
    from ubdiff.distributed.sampler import shard, shard_bounds
    rng = np.random.default_rng(comm.rank)
    local = shard(np.arange(batch), comm.rank, comm.size)
    if model == "inversionnet":
        from ubdiff.models import InversionNet
        net = InversionNet(config, seed=0, max_batch=batch, device="cpu")
        c = net.config
        s = np.tanh(rng.standard_normal((len(local), c["in_channels"], c["nt"], c["nx"]))).astype(np.float32)
        v = np.tanh(rng.standard_normal((len(local), 1, 70, 70))).astype(np.float32)
        return DataParallel(net, comm, sync_bn=sync_bn), (s, v), {}, dict(lr=1e-4)
    from ubdiff import UBDiff
    from ubdiff.distributed.ubdiff_train import AutoencoderReplica, DiffusionReplica
    m = UBDiff(config, seed=0, max_batch=max(2, batch), diffusion_max_batch=max(1, batch), device="cpu")
    if model == "autoencoder":
        v = np.tanh(rng.standard_normal((len(local), 1, 70, 70))).astype(np.float32)
        dp = DataParallel(AutoencoderReplica(m.autoencoder, "step1"), comm, sync_bn=sync_bn)
        return dp, (v, None), {}, dict(lr=1e-4, weight_decay=1e-4)
    z = np.tanh(rng.standard_normal((len(local), 1, m.autoencoder.latent_dim))).astype(np.float32)
    first, _ = shard_bounds(batch, comm.rank, comm.size)
    return DataParallel(DiffusionReplica(m.diffusion), comm), (z,), dict(accum=1, first=first), dict(lr=1e-4)


def train_rank(model, config, batch, steps, out, sync_bn=False):
    """One rank of a training benchmark (also run alone for 1 rank)."""
    from ubdiff.distributed.comm import world
    comm = world()
    ubdiff.set_num_threads(1)
    dp, data, loss, update = _rank_model(model, config, batch, comm, sync_bn)

    def step(k):
        kw = dict(loss, step=k) if model == "diffusion" else loss
        dp.step(data, batch, dict(update, step=k) if model == "diffusion" else update, kw)
    step(0)   # warm-up
    comm.barrier()
    t0 = time.perf_counter()
    for k in range(steps):
        step(k + 1)
    comm.barrier()
    dt = time.perf_counter() - t0
    if comm.is_root:
        with open(out, "w") as f:
            json.dump({"seconds": dt, "steps": steps, "ranks": comm.size}, f)


def bench_train(model, config, batch, steps, work, sync_bn=(False,)):
    here = os.path.abspath(__file__)
    launcher = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    launcher = launcher if os.path.exists(launcher) else shutil.which("mpiexec")
    rows = []
    for ranks in (1, 2):
        for sync in sync_bn if ranks > 1 else (False,):
            out = os.path.join(work, f"train-{model}-{ranks}-{int(sync)}.json")
            cmd = [sys.executable, here, "--train-rank", out, "--model", model, "--config", config,
                   "--batch", str(batch), "--steps", str(steps)] + (["--sync-bn"] if sync else [])
            label = "one process, 1 thread" if ranks == 1 else \
                f"mpirun -n {ranks}, 1 thread each{', sync-bn' if sync else ''}"
            if ranks > 1:
                if launcher is None:
                    rows.append((label, "-", "no mpiexec (pip install 'ubdiff[mpi]')", _load()))
                    continue
                cmd = [launcher, "-n", str(ranks)] + cmd
            load = _load()
            subprocess.run(cmd, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            r = json.load(open(out))
            rows.append((label, f"{batch // ranks}", f"{r['steps'] / r['seconds']:.2f}", load))
    return table(rows, ["run", "samples per rank", f"steps / s (global batch {batch})", "load"])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("all", "make-dataset", "generate", "train", "train-autoencoder",
                                      "train-diffusion"), default="all")
    p.add_argument("--maps", type=int, default=16)
    p.add_argument("--chunk", type=int, default=4)
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--file-size", type=int, default=8)
    p.add_argument("--config", default="small")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--quick", action="store_true", help="smoke sizes: every part in seconds, not a measurement")
    p.add_argument("--train-rank", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model", default="inversionnet", help=argparse.SUPPRESS)
    p.add_argument("--sync-bn", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.train_rank:
        return train_rank(a.model, a.config, a.batch, a.steps, a.train_rank, a.sync_bn)
    if a.quick:
        a.maps, a.chunk, a.n, a.file_size, a.steps, a.batch = 4, 2, 4, 2, 2, 8
    print(f"machine: {machine()}; load average at start {_load()}")
    work = tempfile.mkdtemp(prefix="ubdiff-scaling-")
    try:
        if a.part in ("all", "make-dataset"):
            print(f"\nmake-dataset: {a.maps} maps with seismic (5 x 1000 x 70), shards of {a.chunk} maps\n")
            print(bench_make_dataset(a.maps, a.chunk, work))
        if a.part in ("all", "generate"):
            print(f"\ngenerate: {a.n} pairs, small config, DDPM 256 steps, file pairs of {a.file_size}\n")
            print(bench_generate(a.n, a.file_size, work))
        if a.part in ("all", "train"):
            print(f"\ntrain: InversionNet ({a.config}), {a.steps} data-parallel steps, global batch {a.batch}\n")
            print(bench_train("inversionnet", a.config, a.batch, a.steps, work))
        if a.part in ("all", "train-autoencoder"):
            print(f"\ntrain-autoencoder: UB-Diff step 1 ({a.config}), {a.steps} data-parallel steps, "
                  f"global batch {a.batch}\n")
            print(bench_train("autoencoder", a.config, a.batch, a.steps, work, sync_bn=(False, True)))
        if a.part in ("all", "train-diffusion"):
            print(f"\ntrain-diffusion: latent diffusion ({a.config}), {a.steps} data-parallel steps, "
                  f"global batch {a.batch}\n")
            print(bench_train("diffusion", a.config, a.batch, a.steps, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
