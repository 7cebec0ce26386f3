"""The latent diffusion on every device through the backend table (csrc/backend.h):
its own ops (csrc/diffusion_ops.h) against NumPy references on each device,
`replay` (CUDA graphs), choosing the device, tensors and checkpoints across
devices, the split training API, the graph switch, and the CUDA model against
the CPU model. The cuda variants skip with the reason printed where no GPU is
usable (tests/cuda_util.py)."""
import numpy as np
import pytest

import ubdiff
from cuda_util import assert_gpu_matches_cpu, requires_gpu
from ubdiff._native import lib
from ubdiff.models import LatentDiffusion
from ubdiff.models.diffusion import STEP_DTYPE, STEP_KINDS
from ubdiff.ops import rand_normal, rand_uniform

DEVICES = ["cpu", pytest.param("cuda", marks=requires_gpu)]
TINY = dict(dim=8, dim_mults=(1, 2), seq_len=8, groups=2, heads=2, dim_head=4, timesteps=16)
SAMPLE_STREAM = 1 << 62  # csrc/models/diffusion.c


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: the shared test machine is oversubscribed."""
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


def gpu_usable():
    return ubdiff.cuda_compiled() and ubdiff.gpu_count() > 0


def model(device, seed=0, max_batch=4, **kw):
    return LatentDiffusion(dict(TINY, **kw), seed=seed, max_batch=max_batch, device=device)


def schedule_rows(T=16):
    """sa, s1, w of the cosine schedule as the float32 rows the model uploads."""
    s = LatentDiffusion(dict(TINY, timesteps=T), max_batch=1, device="cpu").schedule
    return [s[k].astype(np.float32) for k in ("sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod", "loss_weight")]


# ---- the ops against NumPy --------------------------------------------------------------------
# Tolerances: each element is a few float32 products and sums; a compiler may
# contract a*b + c into one FMA (nvcc does by default) and NumPy rounds every
# step, so results may differ by an ulp or two: rtol 1e-6. The v-loss sums in
# double on the CPU and in per-thread partial sums on a GPU: rtol 1e-6 too.
def test_step_record_layout():
    assert lib.diffusion_step_record_size() == STEP_DTYPE.itemsize == 64


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("T", [1, 16, 1000])
def test_timesteps_op(device, T):
    u = rand_uniform((257,), 3)
    u[:3] = [0.0, np.nextafter(np.float32(1), np.float32(0)), 0.5]  # edges: 0 and the largest u < 1
    ti, tf = np.zeros(u.size, np.int32), u.copy()
    lib.diffusion_op_timesteps(device, ti, tf, T)
    want = np.minimum(np.floor(u * np.float32(T)), T - 1).astype(np.int32)
    assert np.array_equal(ti, want)
    assert np.array_equal(tf, want.astype(np.float32))
    assert ti.min() >= 0 and ti.max() <= T - 1


@pytest.mark.parametrize("device", DEVICES)
def test_q_sample_op(device):
    rng = np.random.default_rng(0)
    sa, s1, _ = schedule_rows()
    B, per = 5, 24
    z0, noise = rng.normal(size=(2, B, per)).astype(np.float32)
    t = np.array([0, 15, 7, 7, 3], np.int32)
    xt, v = np.full((B, per), np.nan, np.float32), np.full((B, per), np.nan, np.float32)
    lib.diffusion_op_q_sample(device, xt, v, z0, noise, t, sa, s1)
    a, c = sa[t][:, None], s1[t][:, None]
    np.testing.assert_allclose(xt, a * z0 + c * noise, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(v, a * noise - c * z0, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="outside the schedule"):
        lib.diffusion_op_q_sample(device, xt, v, z0, noise, np.array([0, 1, 2, 3, 16], np.int32), sa, s1)


@pytest.mark.parametrize("device", DEVICES)
def test_vloss_ops(device):
    rng = np.random.default_rng(1)
    _, _, w = schedule_rows()
    B, per = 4, 1000  # per > one block's threads on a GPU: partial sums are combined
    pred, v = rng.normal(size=(2, B, per)).astype(np.float32)
    t = np.array([2, 0, 15, 9], np.int32)
    per_sample = np.zeros(B, np.float32)
    loss = lib.diffusion_op_vloss_forward(device, per_sample, pred, v, t, w)
    d = (pred.astype(np.float64) - v) ** 2
    want = w[t].astype(np.float64) * d.mean(axis=1)
    np.testing.assert_allclose(per_sample, want, rtol=1e-6)
    np.testing.assert_allclose(loss, want.mean(), rtol=1e-6)
    assert lib.diffusion_op_vloss_forward(device, None, pred, v, t, w) == loss  # per_sample is optional
    dpred0 = rng.normal(size=(B, per)).astype(np.float32)
    dpred, scale = dpred0.copy(), np.float32(0.25)
    lib.diffusion_op_vloss_backward(device, dpred, pred, v, t, w, scale)
    coef = (scale * w[t].astype(np.float64) * 2.0 / (per * B)).astype(np.float32)[:, None]
    np.testing.assert_allclose(dpred, dpred0 + coef * (pred - v), rtol=1e-6, atol=1e-7)  # accumulates


@pytest.mark.parametrize("device", DEVICES)
def test_vloss_backward_matches_finite_differences(device):
    """dpred of diffusion_op_vloss_backward against central differences of
    diffusion_op_vloss_forward (gradcheck.py: eps 1e-2, float64 sums). The loss
    is quadratic in pred, so the difference quotient is exact up to the float32
    rounding of the loss (~1e-7 * loss / eps ~ 1e-6): rtol = atol = 2e-3. scale
    0.5 and a non-zero start also check the `scale *` and the `+=`."""
    from gradcheck import assert_close, numeric_grad
    rng = np.random.default_rng(4)
    _, _, w = schedule_rows()
    B, per = 3, 5
    pred, v = rng.normal(size=(2, B, per)).astype(np.float32)
    t = np.array([1, 15, 8], np.int32)

    def loss(p):
        return np.array(lib.diffusion_op_vloss_forward(device, None, p, v, t, w), np.float32)

    num = numeric_grad(loss, pred, np.float32(1.0))
    start = rng.normal(size=(B, per)).astype(np.float32)
    dpred = start.copy()
    lib.diffusion_op_vloss_backward(device, dpred, pred, v, t, w, np.float32(0.5))
    assert_close(dpred - start, 0.5 * num, what="vloss dpred")
    assert float(np.abs(num).max()) > 1e-3


def plan_of(n):
    rng = np.random.default_rng(n)
    plan = np.zeros(n, STEP_DTYPE)
    plan["time"] = np.arange(n)[::-1] * 3
    plan["seed"], plan["offset"] = 7, 40
    plan["stream"] = np.uint64(SAMPLE_STREAM + 1) + plan["time"].astype(np.uint64)
    for f in ("sa", "s1", "c_x0", "c_x", "r1", "rm1", "sd"):
        plan[f] = rng.uniform(0.1, 1.0, n)
    return plan


@pytest.mark.parametrize("device", DEVICES)
def test_step_begin_op(device):
    plan = plan_of(5)
    cur, tf, k = np.zeros(1, STEP_DTYPE), np.full(3, np.nan, np.float32), np.array([2], np.int32)
    lib.diffusion_op_step_begin(device, cur, tf, k, plan)
    assert cur.tobytes() == plan[2:3].tobytes() and k[0] == 3
    assert np.array_equal(tf, np.full(3, plan["time"][2], np.float32))
    with pytest.raises(ValueError, match="outside the plan"):
        lib.diffusion_op_step_begin(device, cur, tf, np.array([5], np.int32), plan)


def step_reference(x, pred, s, n):
    x0 = np.clip(s["sa"] * x - s["s1"] * pred, -1, 1)
    if s["kind"] == STEP_KINDS["x0"]:
        return x0
    z = rand_normal((n,), int(s["seed"]), int(s["stream"]), int(s["offset"])) if s["noisy"] else np.zeros(n)
    if s["kind"] == STEP_KINDS["ddpm"]:
        return s["c_x0"] * x0 + s["c_x"] * x + s["sd"] * z
    eps = (s["r1"] * x - x0) / s["rm1"]
    return x0 * s["c_x0"] + s["c_x"] * eps + s["sd"] * z


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind,noisy", [("ddpm", 1), ("ddpm", 0), ("ddim", 1), ("ddim", 0), ("x0", 0)])
def test_step_update_op(device, kind, noisy):
    rng = np.random.default_rng(2)
    n = 3 * 40
    x0 = rng.normal(size=n).astype(np.float32)
    pred = rng.normal(size=n).astype(np.float32)
    cur = plan_of(1)
    cur["kind"], cur["noisy"] = STEP_KINDS[kind], noisy
    x = x0.copy()
    lib.diffusion_op_step_update(device, x, pred, cur)
    # the CPU draws the C library's normals, the reference too: float32 rounding only; a GPU's
    # logf / sinf / cosf may move a normal by an ulp or two (~1e-6 of a value up to ~4)
    atol = 1e-6 if device == "cpu" else 1e-5
    np.testing.assert_allclose(x, step_reference(x0, pred, cur[0], n), rtol=1e-5, atol=atol)


@requires_gpu
def test_ops_cuda_noise_follows_the_cpu_stream():
    """The noise of a step is element offset + i of the shared Philox stream on both
    devices: the same bits in, so the normals agree up to CUDA's logf / sinf / cosf
    (an ulp or two from the C library's; tolerance as tests/test_cuda_basic.py)."""
    n = 200
    pred = np.zeros(n, np.float32)
    cur = plan_of(1)
    cur["kind"], cur["noisy"], cur["sa"], cur["s1"], cur["c_x0"], cur["c_x"], cur["sd"] = 0, 1, 0, 0, 0, 0, 1
    got = {}
    for dev in ("cpu", "cuda"):
        got[dev] = np.zeros(n, np.float32)  # x0 = 0, mean = 0: x = 1 * z exactly
        lib.diffusion_op_step_update(dev, got[dev], pred, cur)
    want = rand_normal((n,), 7, int(cur["stream"][0]), 40)
    assert np.array_equal(got["cpu"], want)
    assert_gpu_matches_cpu(got["cuda"], want, atol=1e-5, rtol=1e-5, what="step noise")
    assert np.corrcoef(got["cuda"], rand_normal((n,), 7, int(cur["stream"][0]), 41))[0, 1] < 0.5  # not shifted


# ---- replay -----------------------------------------------------------------------------------
def test_replay_on_cpu_just_runs_the_step():
    x, y = np.zeros(5, np.float32), np.arange(5, dtype=np.float32)
    assert lib.replay_exercise("cpu", x, y, 3, False) is False  # no graph on the CPU
    assert np.array_equal(x, 3 * y)
    assert lib.replay_exercise("cpu", x, y, 1, True) is False  # host reads are fine without capture
    assert np.array_equal(x, 4 * y)


@requires_gpu
def test_replay_captures_once_and_refuses_a_synchronising_step():
    x, y = np.zeros(1000, np.float32), np.arange(1000, dtype=np.float32)
    assert lib.replay_exercise("cuda", x, y, 4, False) is True
    assert np.array_equal(x, 4 * y)  # the captured axpy ran on every replay
    with pytest.raises(Exception, match="replay"):  # a copy to the host may not be captured
        lib.replay_exercise("cuda", x, y, 2, True)
    x[:] = 0
    assert lib.replay_exercise("cuda", x, y, 2, False) is True  # a failed capture leaves CUDA usable
    assert np.array_equal(x, 2 * y)


# ---- choosing the device, tensors, checkpoints -------------------------------------------------
def test_device_selection():
    assert model("cpu").device == "cpu"
    want = "cuda" if gpu_usable() else "cpu"
    assert LatentDiffusion(TINY, max_batch=1).device == want  # "auto" takes a usable GPU
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto', got 'gpu'"):
        LatentDiffusion(TINY, device="gpu")
    assert lib.diffusion_info(model("cpu")._h)["device"] == "cpu"


@pytest.mark.skipif(gpu_usable(), reason="a GPU is usable here: device='cuda' succeeds")
def test_cuda_without_gpu_raises_clearly():
    why = "no CUDA GPU is visible" if ubdiff.cuda_compiled() else "built without CUDA"
    with pytest.raises(RuntimeError, match=why):
        model("cuda")


@pytest.mark.parametrize("device", DEVICES)
def test_get_set_zero_on_any_device(device):
    m = model(device, seed=1)
    ref = model("cpu", seed=1)
    assert np.array_equal(m.get_tensor(), ref.flat("param"))  # the same init on every device
    name, shape, _ = m.spec()[3]
    val = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    m.set_tensor(name, val, kind="ema")
    assert np.array_equal(m.get_tensor(name, kind="ema"), val)
    assert np.array_equal(m.ema[name], val)
    lib.diffusion_zero(m._h, "ema", name)
    assert not m.get_tensor(name, kind="ema").any()
    with pytest.raises(ValueError, match="kind"):
        m.get_tensor(kind="adam")
    if device == "cpu":
        assert np.shares_memory(m.flat("param"), m.flat("param"))  # a view
    else:
        with pytest.raises(RuntimeError, match="no zero-copy views"):
            lib.diffusion_view(m._h, "param")


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoint_is_device_independent(device, tmp_path):
    z0 = np.sin(np.linspace(0, 6, 32, dtype=np.float32)).reshape(4, 1, 8)
    a = model(device, seed=3)
    a.train_step(z0, lr=1e-3, ema_every=1)
    path = str(tmp_path / "diff.safetensors")
    a.save(path)
    for to in ["cpu"] + (["cuda"] if gpu_usable() else []):
        b = LatentDiffusion.load(path, device=to)
        assert b.device == to and b.step == 1
        for k in ("param", "m", "v", "ema"):
            assert np.array_equal(b.get_tensor(kind=k), a.get_tensor(kind=k)), (to, k)


# ---- split training API -----------------------------------------------------------------------
def batch(n=8, L=8, seed=0):
    rng = np.random.default_rng(seed)
    return np.sin(np.linspace(0, 3, L)[None, None, :] * rng.uniform(1, 3, (n, 1, 1))).astype(np.float32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("ema", [dict(ema_every=1, ema_decay=0.9), dict(), dict(ema_every=0)])
def test_train_step_is_forward_backward_then_apply_update(device, ema):
    """Bit-identical on one device: the same ops in the same order (no atomics in the twins)."""
    z0 = batch()
    a, b = model(device, seed=4), model(device, seed=4)
    for _ in range(3):
        ra = a.train_step(z0, accum=2, lr=1e-3, max_grad_norm=0.5, **ema)
        loss = b.forward_backward(z0, accum=2)
        assert b.step == ra["step"]  # forward_backward does not advance the step
        rb = b.apply_update(lr=1e-3, max_grad_norm=0.5, **ema)
        assert loss == ra["loss"] and rb["grad_norm"] == ra["grad_norm"] and rb["ema_decay"] == ra["ema_decay"]
        assert a.step == b.step and a.ema_initted == b.ema_initted
    for k in ("param", "m", "v", "ema", "grad"):
        assert np.array_equal(a.get_tensor(kind=k), b.get_tensor(kind=k)), k


def test_apply_update_uses_the_grad_buffer_as_it_stands():
    """What an all-reduce writes between the halves is what the update uses."""
    z0 = batch()
    a, b = model("cpu", seed=5), model("cpu", seed=5)
    a.forward_backward(z0, accum=2)
    b.forward_backward(z0, accum=2)
    g = a.get_tensor(kind="grad")
    b.set_tensor(None, 2 * g, kind="grad")  # as if summed over two identical ranks
    a.set_tensor(None, 2 * g, kind="grad")
    a.apply_update(lr=1e-3, max_grad_norm=0.0, ema_every=0)
    c = model("cpu", seed=5)
    c.set_tensor(None, 2 * g, kind="grad")
    c.apply_update(lr=1e-3, max_grad_norm=0.0, ema_every=0)
    assert np.array_equal(a.flat("param"), c.flat("param"))
    assert not np.array_equal(c.flat("param"), model("cpu", seed=5).flat("param"))


def test_forward_backward_leaves_params_and_state_alone():
    m = model("cpu", seed=6)
    before = {k: m.flat(k).copy() for k in ("param", "m", "v", "ema")}
    m.forward_backward(batch(4))
    assert m.flat("grad").any()
    for k, v in before.items():
        assert np.array_equal(m.flat(k), v), k


# ---- sampling ---------------------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_graph_switch_gives_the_same_samples(device):
    m = model(device, seed=7)
    assert m.graphs is True  # the default (no effect on the CPU)
    with_graphs = m.sample(3, seed=2, sampler="ddim", steps=5, eta=0.5)
    m.graphs = False
    assert m.graphs is False
    without = m.sample(3, seed=2, sampler="ddim", steps=5, eta=0.5)
    assert np.array_equal(with_graphs, without)


@pytest.mark.parametrize("device", DEVICES)
def test_progress_reports_every_step_and_changes_nothing(device):
    m = model(device, seed=8, max_batch=2)
    seen = []
    z = m.sample(3, seed=1, progress=lambda done, total: seen.append((done, total)))
    T = TINY["timesteps"]
    assert seen == [(i, 2 * T) for i in range(1, 2 * T + 1)]  # two chunks of max_batch
    assert np.array_equal(z, m.sample(3, seed=1))


@pytest.mark.parametrize("device", DEVICES)
def test_run_in_pieces_equals_one_run(device):
    m = model(device, seed=9)
    h, T = m._h, TINY["timesteps"]
    lib.diffusion_sample_begin(h, 2, 0, 5, 0, T, 0.0, True)
    x0 = np.zeros((2, 1, 8), np.float32)
    lib.diffusion_sample_read(h, x0)  # before any step: the starting noise (a GPU's libm: an ulp or two)
    want = rand_normal((2, 1, 8), 5, SAMPLE_STREAM, 0)
    assert np.array_equal(x0, want) if device == "cpu" else np.allclose(x0, want, rtol=1e-5, atol=1e-5)
    assert lib.diffusion_sample_run(h, 5, False) == (5, T)
    assert lib.diffusion_sample_run(h, T - 5, True) == (T, T)
    with pytest.raises(ValueError, match="0 of 16 left"):
        lib.diffusion_sample_run(h, 1, True)  # nothing left
    x = np.zeros((2, 1, 8), np.float32)
    lib.diffusion_sample_read(h, x)
    assert np.array_equal(x, m.sample(2, seed=5))


# ---- CUDA against the CPU ---------------------------------------------------------------------
@requires_gpu
def test_cuda_training_matches_cpu():
    """A few Adam steps. Per-op float32 differences (~1e-6 relative: other summation
    orders in the GPU's reductions and cuBLAS) pass through Adam, whose step is
    lr * m / sqrt(v): bounded by ~lr per step whatever the gradient's size, so the
    parameters agree to within lr per step where a gradient component is ~0 and
    its sign may differ; losses and gradient norms agree to 1e-4 relative."""
    z0, lr, n = batch(), 1e-4, 3
    cpu, gpu = model("cpu", seed=10), model("cuda", seed=10)
    for _ in range(n):
        rc = cpu.train_step(z0, accum=2, lr=lr, ema_every=1, ema_decay=0.5)
        rg = gpu.train_step(z0, accum=2, lr=lr, ema_every=1, ema_decay=0.5)
        np.testing.assert_allclose(rg["loss"], rc["loss"], rtol=1e-4)
        np.testing.assert_allclose(rg["grad_norm"], rc["grad_norm"], rtol=1e-4)
    for k in ("param", "ema"):
        assert_gpu_matches_cpu(gpu.get_tensor(kind=k), cpu.flat(k), atol=2 * lr * n, rtol=0, what=k)
    assert_gpu_matches_cpu(gpu.get_tensor(kind="grad"), cpu.flat("grad"), atol=1e-5, rtol=1e-3, what="grad")


@requires_gpu
@pytest.mark.parametrize("sampler,steps,eta", [("ddpm", None, 0.0), ("ddim", 4, 0.0), ("ddim", 4, 1.0)])
def test_cuda_sampling_matches_cpu(sampler, steps, eta):
    """The same seed draws the same Philox streams on both devices: the starting noise agrees
    up to CUDA's logf / sinf / cosf (an ulp or two); the samples agree within float32
    rounding carried through the steps (the U-Net's ~1e-6 per pass; clamping x0 to [-1, 1]
    keeps it bounded)."""
    cpu, gpu = model("cpu", seed=11), model("cuda", seed=11)
    gpu.set_tensor(None, cpu.flat("ema"), kind="ema")  # same weights, whatever the init path
    for m in (cpu, gpu):
        lib.diffusion_sample_begin(m._h, 3, 2, 4, 0, TINY["timesteps"], 0.0, True)
    xc, xg = np.zeros((3, 1, 8), np.float32), np.zeros((3, 1, 8), np.float32)
    lib.diffusion_sample_read(cpu._h, xc)
    lib.diffusion_sample_read(gpu._h, xg)
    assert_gpu_matches_cpu(xg, xc, atol=1e-5, rtol=1e-5, what="starting noise")
    zc = cpu.sample(3, seed=4, sampler=sampler, steps=steps, eta=eta)
    zg = gpu.sample(3, seed=4, sampler=sampler, steps=steps, eta=eta)
    assert_gpu_matches_cpu(zg, zc, atol=1e-4, rtol=1e-3, what=f"{sampler} samples")
