"""MPI: ``mpirun -n 2`` trains a tiny InversionNet data-parallel. The two ranks hold the same
bits; they equal an in-process simulation of the same two replicas (each its slice of the
global batch, gradients summed, rank 0's BatchNorm statistics) bit for bit; their gradient
equals one process accumulating both slices within float rounding; with --sync-bn a step
equals one process on the global batch within a stated tolerance; a run resumed across 2
ranks equals an uninterrupted one. Skipped with the reason printed without mpi4py or an MPI
launcher (the test extra installs mpi4py and the mpich wheel)."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

mpi4py = pytest.importorskip("mpi4py", reason="mpi4py is not installed: pip install 'ubdiff[mpi]' "
                                              "(the test extra brings it with the mpich wheel)")

import ubdiff  # noqa: E402
from ubdiff.distributed.sampler import epoch_batches, shard  # noqa: E402
from ubdiff.models import InversionNet  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = next((p for p in (os.path.join(os.path.dirname(sys.executable), n) for n in ("mpiexec", "mpirun"))
                 if os.path.exists(p)), None) or shutil.which("mpiexec") or shutil.which("mpirun")
pytestmark = pytest.mark.skipif(LAUNCHER is None, reason="no mpiexec / mpirun next to Python or on PATH "
                                                         "(pip install mpich brings one)")
N, BATCH, LR = 16, 8, 1e-3    # 2 steps an epoch, 4 samples per rank and step


def _mpirun(ranks, *args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([HERE] + sys.path))
    res = subprocess.run([LAUNCHER, "-n", str(ranks), sys.executable, *args], capture_output=True, text=True,
                         timeout=timeout, env=env)
    assert res.returncode == 0, f"mpirun failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    s = np.tanh(rng.standard_normal((N, 5, 250, 70)) * 0.5).astype(np.float32)
    v = np.tanh(rng.standard_normal((N, 1, 70, 70))).astype(np.float32)
    path = str(tmp_path_factory.mktemp("mpi") / "pairs.npz")
    np.savez(path, seismic=s, velocity=v)
    return path, s, v


def _train(tmp, data, ranks, epochs, run="run", out="out"):
    _mpirun(ranks, os.path.join(HERE, "mpi_driver.py"), data, str(tmp / run), str(tmp / out), str(epochs), str(BATCH))
    return [dict(np.load(tmp / out / f"rank{r}.npz")) for r in range(ranks)]


def _simulate_ddp(s, v, ranks, epochs):
    """The same data-parallel training in this process: one replica per rank."""
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    try:
        reps = [InversionNet("small", seed=0, max_batch=BATCH) for _ in range(ranks)]
        for e in range(epochs):
            for b in epoch_batches(N, BATCH, 0, e):
                for r, m in enumerate(reps):
                    i = shard(b, r, ranks)
                    m.zero_grad()
                    m.forward_backward(s[i], v[i], loss_scale=len(i) / len(b))
                total = reps[0].flat("grad") + reps[1].flat("grad")   # MPI_SUM of two: one addition, either order
                for m in reps:
                    m.flat("grad")[:] = total
                    m.apply_update(lr=LR)
                for m in reps[1:]:
                    m.flat("stats")[:] = reps[0].flat("stats")
        return reps[0]
    finally:
        ubdiff.set_num_threads(old)


def test_two_ranks_equal_the_simulated_replicas_and_each_other(tmp_path, data):
    path, s, v = data
    r0, r1 = _train(tmp_path, path, 2, 2)
    assert int(r0["size"]) == 2 and int(r0["step"]) == 4
    for k in ("param", "grad", "m", "v", "stats"):
        assert np.array_equal(r0[k], r1[k]), f"ranks differ in {k}"
    sim = _simulate_ddp(s, v, 2, 2)
    for k in ("param", "grad", "m", "v", "stats"):
        assert np.array_equal(sim.flat(k), r0[k]), f"{k} differs from the in-process simulation"


def test_one_step_gradient_equals_one_process_accumulating_both_slices(tmp_path, data):
    """One process, one model: both ranks' slices through forward_backward into one gradient
    buffer (+= inside the kernels) instead of two buffers summed by MPI. Only the order of the
    float32 additions differs: tolerance 1e-6 of the largest gradient (measured: 1.2e-7)."""
    path, s, v = data
    np.savez(tmp_path / "one_batch.npz", seismic=s[:BATCH], velocity=v[:BATCH])
    (r0, _) = _train(tmp_path, str(tmp_path / "one_batch.npz"), 2, 1)
    ubdiff.set_num_threads(1)
    m = InversionNet("small", seed=0, max_batch=BATCH)
    b = epoch_batches(BATCH, BATCH, 0, 0)[0]
    m.zero_grad()
    for r in range(2):
        i = shard(b, r, 2)
        m.forward_backward(s[i], v[i], loss_scale=len(i) / BATCH)
    g = m.flat("grad")
    np.testing.assert_allclose(r0["grad"], g, rtol=0, atol=1e-6 * np.abs(g).max())
    assert np.abs(g).max() > 1e-3     # a real gradient, not zeros on both sides


def test_sync_bn_two_ranks_equal_one_process_on_the_global_batch(tmp_path, data):
    """--sync-bn: BatchNorm statistics over both ranks, so a step is the single-process step
    on the global batch up to float rounding. Tolerance: relative L2 difference of the whole
    gradient <= 2e-2. This gradient is ill-conditioned (BatchNorm over 8 values per channel
    at InversionNet's 1 x 1 bottleneck): perturbing the input by 1e-7 relative moves it by
    1e-5 .. 8e-3 (measured, 3 draws), and the sgemm rounding of a batch of 4 instead of 8
    is of that kind (measured here: 1.2e-3). Without sync-BN the difference is ~1.4."""
    path, s, v = data
    np.savez(tmp_path / "one_batch.npz", seismic=s[:BATCH], velocity=v[:BATCH])
    _mpirun(2, os.path.join(HERE, "mpi_driver.py"), str(tmp_path / "one_batch.npz"), str(tmp_path / "run"),
            str(tmp_path / "out"), "1", str(BATCH), "sync")
    r0, r1 = (dict(np.load(tmp_path / "out" / f"rank{r}.npz")) for r in range(2))
    for k in ("param", "grad", "m", "v", "stats"):
        assert np.array_equal(r0[k], r1[k]), f"ranks differ in {k}"
    ubdiff.set_num_threads(1)
    m = InversionNet("small", seed=0, max_batch=BATCH)
    m.train_step(s[:BATCH], v[:BATCH], lr=LR)
    g = m.flat("grad")
    assert np.linalg.norm(r0["grad"] - g) <= 2e-2 * np.linalg.norm(g)
    # running statistics: 0.9 * initial + 0.1 * the global batch's (float32 sums in double)
    np.testing.assert_allclose(r0["stats"], m.flat("stats"), rtol=1e-5, atol=1e-6)
    local = _train(tmp_path, str(tmp_path / "one_batch.npz"), 2, 1, run="local", out="out_local")[0]
    assert np.linalg.norm(local["grad"] - g) > 0.3 * np.linalg.norm(g)   # the tolerance tells the two apart


def test_resume_across_two_ranks_equals_an_uninterrupted_run(tmp_path, data):
    path, _, _ = data
    straight = _train(tmp_path, path, 2, 2, run="a", out="oa")[0]
    _train(tmp_path, path, 2, 1, run="b", out="ob1")
    resumed = _train(tmp_path, path, 2, 1, run="b", out="ob2")[0]
    for k in ("param", "m", "v", "stats"):
        assert np.array_equal(straight[k], resumed[k]), k
    assert int(resumed["step"]) == 4 and list(straight["history"]) == list(resumed["history"])


def test_cli_under_mpirun(tmp_path):
    from ubdiff.data import make_dataset
    make_dataset("flatvel-a", 8, 8, str(tmp_path / "ds"), nt=250, preview=False, progress=False)
    cmd = ["-m", "ubdiff", "train-inversionnet", "--data", str(tmp_path / "ds"), "--run", str(tmp_path / "run"),
           "--epochs", "1", "--batch-size", "4", "--quiet"]
    res = _mpirun(2, *cmd)
    assert res.stdout.count("epoch 1: loss") == 1 and "2 rank(s)" in res.stdout   # said once, by rank 0
    import json
    st = json.load(open(tmp_path / "run" / "train.json"))
    assert st["epoch"] == 1 and st["step"] == 2 and st["history"][0]["ranks"] == 2
    # a setting that clashes with the run: the same clean error on both ranks, said once, exit 1
    env = dict(os.environ, OMP_NUM_THREADS="1")
    bad = subprocess.run([LAUNCHER, "-n", "2", sys.executable, *cmd[:-3], "--batch-size", "8", "--quiet"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert bad.returncode != 0 and bad.stderr.count("batch_size 4 (given 8)") == 1, bad.stderr
