"""The parts of ubdiff.distributed that need no engine: the resumable staging folder, the
split training step, the batch sampler, the single-process group and data-parallel loop,
resumable InversionNet runs, and the errors that name the missing extras."""
import fcntl
import os
import sys

import numpy as np
import pytest

import ubdiff
from ubdiff import UBDiff
from ubdiff.data import files
from ubdiff.distributed import comm as comm_mod
from ubdiff.distributed.data_parallel import DataParallel
from ubdiff.distributed.invnet_train import RunError, train_inversionnet
from ubdiff.distributed.sampler import ShardedBatches, epoch_batches, shard, shard_bounds
from ubdiff.models import InversionNet

from mpi_driver import ArrayPairs

AE = dict(dim1=4, dim2=4, dim3=8, dim4=8, latent=16, head_width=4, heads=2, mlp_hidden=16, nt=50, max_batch=8)
DIFF = dict(dim=8, dim_mults=(1, 2), groups=4, heads=2, dim_head=8, timesteps=32)


@pytest.fixture(autouse=True)
def one_thread():
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


def _pairs(n=12, seed=0):
    rng = np.random.default_rng(seed)
    s = np.tanh(rng.standard_normal((n, 5, 250, 70)) * 0.5).astype(np.float32)
    v = np.tanh(rng.standard_normal((n, 1, 70, 70))).astype(np.float32)
    return s, v


# ---- resumable_folder ------------------------------------------------------------------------
def test_resumable_folder_keeps_pieces_for_the_same_plan_only(tmp_path):
    out = str(tmp_path / "out")
    plan = {"job": "t", "n": 2}
    with pytest.raises(KeyError):
        with files.resumable_folder(out, lambda n: True, plan, keep=lambda d: True) as (tmp, resumed):
            assert not resumed and os.path.basename(tmp).startswith(".out.part-") and files.is_temp_name(
                os.path.basename(tmp))
            with open(os.path.join(tmp, "a"), "w") as f:
                f.write("piece 1")
            raise KeyError("interrupted")
    assert not os.path.exists(out)
    with pytest.raises(KeyError):    # the same plan again: the piece is there
        with files.resumable_folder(out, lambda n: True, plan, keep=lambda d: False) as (tmp, resumed):
            assert resumed and os.listdir(tmp) == ["a", files.PLAN_NAME] or sorted(os.listdir(tmp)) == sorted(
                ["a", files.PLAN_NAME])
            raise KeyError("interrupted, nothing worth keeping")
    assert os.listdir(tmp_path) == []     # keep() said no: removed
    with pytest.raises(KeyError):
        with files.resumable_folder(out, lambda n: True, plan, keep=lambda d: True) as (tmp, resumed):
            open(os.path.join(tmp, "a"), "w").close()
            raise KeyError("again")
    with files.resumable_folder(out, lambda n: True, {"job": "t", "n": 3}) as (tmp, resumed):
        assert not resumed and os.listdir(tmp) == [files.PLAN_NAME]   # another plan starts afresh
        open(os.path.join(tmp, "b"), "w").close()
    assert os.listdir(tmp_path) == ["out"] and os.listdir(out) == ["b"]   # the other plan's pieces are gone


def test_resumable_folder_damaged_plan_and_a_live_writer(tmp_path):
    out = str(tmp_path / "out")
    plan = {"job": "t"}
    with pytest.raises(KeyError):
        with files.resumable_folder(out, lambda n: True, plan, keep=lambda d: True) as (tmp, _):
            open(os.path.join(tmp, "a"), "w").close()
            stage = tmp
            raise KeyError
    with open(os.path.join(stage, files.PLAN_NAME), "w") as f:
        f.write("{damaged")
    fd = os.open(stage, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)     # another process writing this job right now
    try:
        with pytest.raises(RuntimeError, match="another process is writing"):
            with files.resumable_folder(out, lambda n: True, plan):
                pass
    finally:
        os.close(fd)
    with files.resumable_folder(out, lambda n: True, plan) as (tmp, resumed):
        assert not resumed and os.listdir(tmp) == [files.PLAN_NAME]    # damaged plan: emptied, not trusted


def test_generate_interrupted_resumes_with_only_the_missing_files(tmp_path, monkeypatch):
    m = UBDiff({"autoencoder": AE, "diffusion": DIFF}, seed=0)
    m.set_constants("flatvel-a")
    kw = dict(seed=1, sampler="ddim", steps=2, file_size=2, progress=False)
    m.generate(7, str(tmp_path / "ref"), **kw)
    written, real = [], UBDiff._write_generated

    def flaky(self, folder, i, *a, **k):
        if i == 3 and not written.count("failed"):
            written.append("failed")
            raise OSError("disk hiccup")
        written.append(i)
        return real(self, folder, i, *a, **k)
    monkeypatch.setattr(UBDiff, "_write_generated", flaky)
    out = str(tmp_path / "gen")
    with pytest.raises(OSError, match="hiccup"):
        m.generate(7, out, **kw)
    assert written == [1, 2, "failed"] and not os.path.exists(out)
    m.generate(7, out, **kw)
    assert written[3:] == [3, 4]
    for n in sorted(os.listdir(str(tmp_path / "ref"))):
        if n.endswith(".npy"):
            assert open(os.path.join(out, n), "rb").read() == open(os.path.join(tmp_path, "ref", n), "rb").read(), n
    m.generate(7, out, **dict(kw, seed=2))     # another generation into the same folder: starts afresh
    assert written[5:] == [1, 2, 3, 4] and sorted(os.listdir(tmp_path)) == ["gen", "ref"]


# ---- the split step, sampler, group of one ------------------------------------------------------
def test_split_step_is_train_step_bit_for_bit():
    s, v = _pairs(4)
    a, b = InversionNet("small", seed=3, max_batch=4), InversionNet("small", seed=3, max_batch=4)
    for _ in range(3):
        la = a.train_step(s, v, lr=1e-3, weight_decay=1e-2, l1_weight=0.5, mse_weight=2.0)
        b.zero_grad()
        lb = b.forward_backward(s, v, l1_weight=0.5, mse_weight=2.0)
        b.apply_update(lr=1e-3, weight_decay=1e-2)
        assert la == lb
    for k in ("param", "grad", "m", "v", "stats"):
        assert np.array_equal(a.flat(k), b.flat(k)), k
    assert a.step == b.step == 3
    # gradients accumulate (+=) and scale with loss_scale: 0.25 + 0.75 of the same batch is the whole
    # gradient, up to float32 rounding of sums over B x 70 x 70 = 19,600 terms per weight (cancelling
    # ones among them): tolerance 1e-5 of the largest gradient
    b.zero_grad()
    b.forward_backward(s, v, loss_scale=0.25)
    g = b.flat("grad").copy()
    b.forward_backward(s, v, loss_scale=0.75)
    b2 = b.flat("grad").copy()
    b.zero_grad()
    b.forward_backward(s, v)
    tol = 1e-5 * np.abs(b2).max()
    np.testing.assert_allclose(b2, b.flat("grad"), rtol=1e-4, atol=tol)
    np.testing.assert_allclose(g * 4, b.flat("grad"), rtol=1e-4, atol=tol)
    with pytest.raises(ValueError, match="loss_scale"):
        b.forward_backward(s, v, loss_scale=float("nan"))
    with pytest.raises(ValueError, match="apply_update"):
        b.apply_update(lr=-1.0)


def test_sync_bn_hook_one_process_and_two_replicas_in_threads():
    """set_bn_sync: with one process (a hook that returns its input) training is bit for bit
    the per-process BatchNorm; two replicas in two threads whose hook sums their buffers give
    the single-process statistics of the joint batch (tolerance as tests/test_distributed_mpi.py
    explains); a failing hook is a clean error; None detaches it."""
    s, v = _pairs(8)
    a, b = InversionNet("small", seed=0, max_batch=8), InversionNet("small", seed=0, max_batch=8)
    calls = []
    b.set_bn_sync(lambda buf: calls.append(len(buf)))
    a.train_step(s, v, lr=1e-3)
    b.train_step(s, v, lr=1e-3)
    assert len(calls) == 3 * 25    # forward: sums, squared deviations; backward: gradient sums; 25 blocks
    for k in ("param", "grad", "stats"):
        assert np.array_equal(a.flat(k), b.flat(k)), k
    b.set_bn_sync(lambda buf: 1 / 0)
    with pytest.raises(ValueError, match="all-reduce of the BatchNorm sums failed"):
        b.train_step(s, v)
    b.set_bn_sync(None)
    b.train_step(s, v)

    reps = [InversionNet("small", seed=0, max_batch=8) for _ in range(2)]

    def run(r, m):
        m.zero_grad()
        m.forward_backward(s[4 * r:4 * r + 4], v[4 * r:4 * r + 4], loss_scale=0.5)
    _two_replicas_in_threads(reps, run)
    one = InversionNet("small", seed=0, max_batch=8)
    one.zero_grad()
    one.forward_backward(s, v)
    g = reps[0].flat("grad") + reps[1].flat("grad")
    assert np.linalg.norm(g - one.flat("grad")) <= 2e-2 * np.linalg.norm(one.flat("grad"))
    np.testing.assert_allclose(reps[0].flat("stats"), one.flat("stats"), rtol=1e-5, atol=1e-6)
    assert np.array_equal(reps[0].flat("stats"), reps[1].flat("stats"))


def _two_replicas_in_threads(reps, run):
    """run(r, model) on two threads whose set_bn_sync hooks sum their buffers (an all-reduce of 2)."""
    import threading
    barrier, slots = threading.Barrier(2), [None, None]

    def hook(r):
        def allreduce(buf):
            slots[r] = buf.copy()
            barrier.wait()
            total = slots[0] + slots[1]
            barrier.wait()
            buf[:] = total
        return allreduce
    for r, m in enumerate(reps):
        m.set_bn_sync(hook(r))
    ts = [threading.Thread(target=run, args=(r, m)) for r, m in enumerate(reps)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def test_autoencoder_sync_bn_hook_one_process_and_two_replicas_in_threads():
    """CoLatentAutoencoder.set_bn_sync reaches every BatchNorm (E's 15 and D_v's 11 conv blocks,
    both heads): with a hook that returns its input, training is bit for bit the per-process
    BatchNorm; two replicas in two threads, each half of the batch, give the single-process
    gradient of the whole batch (w/o opt: every group trained) and its running statistics
    (relative L2 within twice the gradient's float32 floor, per-rank statistics 1.28 away); a
    failing hook is a clean error."""
    from ubdiff.models import CoLatentAutoencoder
    rng = np.random.default_rng(0)
    vel = np.tanh(rng.standard_normal((8, 1, 70, 70))).astype(np.float32)
    seis = np.tanh(rng.standard_normal((8, 5, 50, 70))).astype(np.float32)
    a, b = CoLatentAutoencoder(AE, seed=0, device="cpu"), CoLatentAutoencoder(AE, seed=0, device="cpu")
    calls = []
    b.set_bn_sync(lambda buf: calls.append(len(buf)))
    a.train_step(vel, seis, mode="wo_opt", lr=1e-3)
    b.train_step(vel, seis, mode="wo_opt", lr=1e-3)
    # 28 BatchNorms: forward (sums, squared deviations) and backward (gradient sums) each
    assert len(calls) == 3 * 28
    for k in ("param", "grad", "buf"):
        assert np.array_equal(a.flat(k), b.flat(k)), k
    b.set_bn_sync(lambda buf: 1 / 0)
    with pytest.raises(ValueError, match="all-reduce of the BatchNorm sums failed"):
        b.train_step(vel, seis, mode="wo_opt")
    b.set_bn_sync(None)
    b.train_step(vel, seis, mode="wo_opt")

    reps = [CoLatentAutoencoder(AE, seed=0, device="cpu") for _ in range(2)]
    tr = reps[0].trained_slice("wo_opt")

    def run(r, m):
        m.zero_grad()
        m.forward_backward(vel[4 * r:4 * r + 4], seis[4 * r:4 * r + 4], mode="wo_opt")
        m.flat("grad")[tr] *= np.float32(0.5)
    _two_replicas_in_threads(reps, run)
    one = CoLatentAutoencoder(AE, seed=0, device="cpu")
    one.zero_grad()
    one.forward_backward(vel, seis, mode="wo_opt")
    g, want = reps[0].flat("grad") + reps[1].flat("grad"), one.flat("grad")
    # The float32 floor of this gradient: the same single-process gradient with the two halves of
    # the batch swapped (the same sum in another order). BatchNorm over 2 x 2 maps of a few samples
    # amplifies rounding, so the floor depends on the BLAS kernel: measured 3.5e-6 (OpenBLAS
    # SkylakeX), 8.3e-4 (Haswell), where the two replicas gave 2.8e-6 and 8.4e-4.
    swapped = CoLatentAutoencoder(AE, seed=0, device="cpu")
    swapped.zero_grad()
    swapped.forward_backward(np.r_[vel[4:], vel[:4]], np.r_[seis[4:], seis[:4]], mode="wo_opt")
    floor = np.linalg.norm(swapped.flat("grad") - want) / np.linalg.norm(want)
    assert np.linalg.norm(g - want) <= (2 * floor + 1e-5) * np.linalg.norm(want), floor
    np.testing.assert_allclose(reps[0].flat("buf"), one.flat("buf"), rtol=1e-5, atol=1e-6)
    assert np.array_equal(reps[0].flat("buf"), reps[1].flat("buf"))
    # per-rank statistics differ by much more than that tolerance
    loc = [CoLatentAutoencoder(AE, seed=0, device="cpu") for _ in range(2)]
    for r, m in enumerate(loc):
        m.zero_grad()
        m.forward_backward(vel[4 * r:4 * r + 4], seis[4 * r:4 * r + 4], mode="wo_opt")
    g_loc = 0.5 * (loc[0].flat("grad") + loc[1].flat("grad"))
    assert np.linalg.norm(g_loc - want) > 0.1 * np.linalg.norm(want)


def test_sampler_slices_cover_each_global_batch_once():
    for count in range(0, 11):
        for size in (1, 2, 3, 4):
            parts = [shard_bounds(count, r, size) for r in range(size)]
            assert parts[0][0] == 0 and parts[-1][1] == count
            assert all(parts[r][1] == parts[r + 1][0] for r in range(size - 1))
            assert max(b - a for a, b in parts) - min(b - a for a, b in parts) <= 1
    bl = epoch_batches(10, 4, seed=7, epoch=2)
    order = np.random.default_rng(9).permutation(10)   # InversionNet.fit's rule: seed + epoch
    assert [list(b) for b in bl] == [sorted(order[:4]), sorted(order[4:8])]
    assert np.array_equal(np.concatenate([shard(bl[0], r, 3) for r in range(3)]), bl[0])
    with pytest.raises(ValueError, match="cannot give each of 3 ranks 2 samples"):
        ShardedBatches(bl, 0, 3, min_local=2)


def test_group_of_one_and_agree():
    c = comm_mod.Comm()
    buf = np.arange(4, dtype=np.float32)
    assert c.allreduce_sum(buf) is buf and list(buf) == [0, 1, 2, 3]
    assert c.bcast({"a": 1}) == {"a": 1} and c.allgather(5) == [5] and c.local_size() == 1
    with pytest.raises(ValueError, match="C-contiguous"):
        c.allreduce_sum(np.zeros((4, 4), np.float32)[:, 0])
    with pytest.raises(ZeroDivisionError):
        c.agree(lambda: 1 / 0, "dividing")
    assert c.agree(lambda: 3, "x") == 3


def test_data_parallel_on_one_process_is_fit_bit_for_bit():
    s, v = _pairs(12)
    ref = InversionNet("small", seed=0, max_batch=4)
    ref.fit(s, v, epochs=2, batch_size=4, lr=1e-3, seed=5, progress=False)
    m = InversionNet("small", seed=0, max_batch=4)
    dp = DataParallel(m, comm_mod.Comm())
    for e in range(2):
        for idx, n in ShardedBatches(epoch_batches(12, 4, 5, e), 0, 1):
            dp.step((s[idx], v[idx]), n, dict(lr=1e-3))
    for k in ("param", "m", "v", "stats"):
        assert np.array_equal(ref.flat(k), m.flat(k)), k


def test_train_inversionnet_resumes_bit_for_bit(tmp_path):
    s, v = _pairs(12)
    pairs = ArrayPairs(s, v)
    kw = dict(progress=False, batch_size=4, lr=1e-3, seed=1)
    a, sa = train_inversionnet(pairs, str(tmp_path / "a"), 2, **kw)
    train_inversionnet(pairs, str(tmp_path / "b"), 1, **kw)
    b, sb = train_inversionnet(pairs, str(tmp_path / "b"), 1, progress=False)   # settings from the run folder
    for k in ("param", "m", "v", "stats"):
        assert np.array_equal(a.flat(k), b.flat(k)), k
    assert sa["epoch"] == sb["epoch"] == 2 and sb["step"] == 6 and len(sb["history"]) == 2
    assert [h["loss"] for h in sa["history"]] == [h["loss"] for h in sb["history"]]
    assert sorted(os.listdir(tmp_path / "b")) == ["inversionnet.safetensors", "train.json"]
    with pytest.raises(RunError, match="lr 0.001 \\(given 0.01\\)"):
        train_inversionnet(pairs, str(tmp_path / "b"), 1, progress=False, lr=1e-2)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_inversionnet(ArrayPairs(s[:3], v[:3]), str(tmp_path / "c"), 1, progress=False, batch_size=4)


def test_train_inversionnet_cli_one_process(tmp_path, capsys):
    from ubdiff.__main__ import main
    from ubdiff.data import make_dataset
    make_dataset("flatvel-a", 8, 8, str(tmp_path / "ds"), nt=250, preview=False, progress=False)
    args = ["train-inversionnet", "--data", str(tmp_path / "ds"), "--run", str(tmp_path / "run"), "--batch-size",
            "4", "--quiet", "--threads", "1"]
    assert main(args + ["--epochs", "1"]) == 0
    assert main(args + ["--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "epoch 1: loss" in out and "epoch 2: loss" in out and "1 rank(s) (single process)" in out
    with pytest.raises(SystemExit, match="batch_size 4 \\(given 8\\)"):
        main(args[:5] + ["--batch-size", "8", "--epochs", "1", "--quiet"])
    with pytest.raises(SystemExit, match="--dataset FAMILY"):
        main(["train-inversionnet", "--data", str(tmp_path), "--run", str(tmp_path / "r2"), "--epochs", "1"])


# ---- missing engines: errors that name the extra ------------------------------------------------------
def test_missing_dask_names_the_extra(monkeypatch, tmp_path):
    from ubdiff.__main__ import main
    from ubdiff.distributed import dask_client
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'ubdiff\[distributed\]'"):
        with dask_client(workers=2):
            pass
    with pytest.raises(SystemExit, match=r"--workers: .*ubdiff\[distributed\]"):
        main(["make-dataset", "--family", "flatvel-a", "--maps", "2", "--paired", "0", "--out", str(tmp_path / "d"),
              "--workers", "2", "--quiet"])


def test_launched_by_mpirun_without_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setattr(comm_mod, "_WORLD", None)
    assert comm_mod.launched_ranks() == 2
    with pytest.raises(ImportError, match=r"pip install 'ubdiff\[mpi\]'"):
        comm_mod.world()
    monkeypatch.delenv("PMI_SIZE")
    for var in comm_mod._SIZE_VARS:
        monkeypatch.delenv(var, raising=False)
    assert isinstance(comm_mod.world(), comm_mod.Comm) and comm_mod.world().size == 1


def test_diffusion_forward_backward_first_draws_the_batch_positions_noise():
    """forward_backward(first=): a rank's slice of a global batch draws the t and noise of its
    positions, so the two halves' mean gradients, averaged, are the whole batch's up to float
    rounding (1e-6 of the largest entry; measured 6e-8 relative); first=0 for the second half
    gives other noise and another gradient. first < 0 is refused before anything moves."""
    from ubdiff.models import LatentDiffusion
    tiny = dict(dim=8, dim_mults=(1, 2), seq_len=8, groups=2, heads=2, dim_head=4, timesteps=16)
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    try:
        m = LatentDiffusion(tiny, seed=3, max_batch=4, device="cpu")
        z = np.random.default_rng(0).standard_normal((8, 1, 8)).astype(np.float32)
        m.forward_backward(z, accum=2, step=5)
        whole = m.flat("grad").copy()
        m.forward_backward(z[:4], accum=2, step=5, first=0)
        g0 = m.flat("grad").copy()
        m.forward_backward(z[4:], accum=2, step=5, first=4)
        g1 = m.flat("grad").copy()
        np.testing.assert_allclose((g0 + g1) / 2, whole, rtol=0, atol=1e-6 * np.abs(whole).max())
        m.forward_backward(z[4:], accum=2, step=5, first=0)
        assert np.abs((g0 + m.flat("grad")) / 2 - whole).max() > 1e-3 * np.abs(whole).max()
        before = m.flat("grad").copy()
        with pytest.raises(ValueError, match="first must be >= 0"):
            m.forward_backward(z[4:], accum=2, step=5, first=-1)
        assert np.array_equal(m.flat("grad"), before)
    finally:
        ubdiff.set_num_threads(old)
