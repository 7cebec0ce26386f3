"""Scaling out on this machine: Dask workers for make-dataset and generate, MPI ranks for training.

    python benchmarks/scaling.py                       # all three parts, Markdown tables
    python benchmarks/scaling.py --part make-dataset --maps 16
    python benchmarks/scaling.py --part generate --n 32
    python benchmarks/scaling.py --part train --steps 8

make-dataset: ``--maps`` maps, all with full-size seismic (5 shots x 1000 steps x 70
receivers; the forward modelling is the whole cost), shards of ``--chunk`` maps.
generate: ``--n`` pairs of the small UB-Diff configuration (untrained: sampling costs the
same), ancestral DDPM over its 256 steps, file pairs of ``--file-size``. train: InversionNet
steps at global batch ``--batch`` on random normalised pairs (``--config small``: nt 250,
or paper), timed on rank 0 after one warm-up step; 2 ranks = ``mpirun -n 2``.

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


def train_rank(config, batch, steps, out):
    """One rank of the training benchmark (also run alone for 1 rank)."""
    from ubdiff.distributed.comm import world
    from ubdiff.distributed.data_parallel import DataParallel
    from ubdiff.distributed.sampler import shard
    from ubdiff.models import InversionNet
    comm = world()
    ubdiff.set_num_threads(1)
    net = InversionNet(config, seed=0, max_batch=batch)
    c = net.config
    rng = np.random.default_rng(comm.rank)
    local = shard(np.arange(batch), comm.rank, comm.size)
    s = np.tanh(rng.standard_normal((len(local), c["in_channels"], c["nt"], c["nx"]))).astype(np.float32)
    v = np.tanh(rng.standard_normal((len(local), 1, 70, 70))).astype(np.float32)
    dp = DataParallel(net, comm)
    dp.step((s, v), batch, dict(lr=1e-4))   # warm-up
    comm.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        dp.step((s, v), batch, dict(lr=1e-4))
    comm.barrier()
    dt = time.perf_counter() - t0
    if comm.is_root:
        with open(out, "w") as f:
            json.dump({"seconds": dt, "steps": steps, "ranks": comm.size}, f)


def bench_train(config, batch, steps, work):
    here = os.path.abspath(__file__)
    launcher = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    launcher = launcher if os.path.exists(launcher) else shutil.which("mpiexec")
    rows = []
    for ranks in (1, 2):
        out = os.path.join(work, f"train-{ranks}.json")
        cmd = [sys.executable, here, "--train-rank", out, "--config", config, "--batch", str(batch),
               "--steps", str(steps)]
        if ranks > 1:
            if launcher is None:
                rows.append((f"mpirun -n {ranks}", "-", "no mpiexec (pip install 'ubdiff[mpi]')", _load()))
                continue
            cmd = [launcher, "-n", str(ranks)] + cmd
        load = _load()
        subprocess.run(cmd, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        r = json.load(open(out))
        label = "one process, 1 thread" if ranks == 1 else f"mpirun -n {ranks}, 1 thread each"
        rows.append((label, f"{batch // ranks}", f"{r['steps'] / r['seconds']:.2f}", load))
    return table(rows, ["run", "samples per rank", f"steps / s (global batch {batch})", "load"])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("all", "make-dataset", "generate", "train"), default="all")
    p.add_argument("--maps", type=int, default=16)
    p.add_argument("--chunk", type=int, default=4)
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--file-size", type=int, default=8)
    p.add_argument("--config", default="small")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--train-rank", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.train_rank:
        return train_rank(a.config, a.batch, a.steps, a.train_rank)
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
            print(bench_train(a.config, a.batch, a.steps, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
