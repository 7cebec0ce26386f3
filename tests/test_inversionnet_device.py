"""InversionNet on every device through the backend table (csrc/backend.h):
choosing the device, reading and writing tensors on any device, checkpoints
across devices, and the CUDA model against the CPU model. The cuda variants
skip with the reason printed where no GPU is usable (tests/cuda_util.py)."""
import numpy as np
import pytest

import ubdiff
from cuda_util import assert_gpu_matches_cpu, requires_gpu
from gradcheck import assert_close
from test_inversionnet import TINY, data
from ubdiff._native import lib
from ubdiff.models import InversionNet
from ubdiff.models.inversionnet import layout

DEVICES = ["cpu", pytest.param("cuda", marks=requires_gpu)]


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: the shared test machine is oversubscribed (see test_inversionnet.py)."""
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


def gpu_usable():
    return ubdiff.cuda_compiled() and ubdiff.gpu_count() > 0


# ---- choosing the device ---------------------------------------------------------------------
def test_device_selection():
    assert InversionNet(TINY, max_batch=1, device="cpu").device == "cpu"
    # "auto" (the default) takes the GPU when this build has CUDA and one is visible (shared/DESIGN.md)
    want = "cuda" if gpu_usable() else "cpu"
    assert InversionNet(TINY, max_batch=1).device == want
    assert InversionNet(TINY, max_batch=1, device="auto").device == want
    assert "device='cpu'" in repr(InversionNet(TINY, max_batch=1, device="cpu"))
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto', got 'gpu'"):
        InversionNet(TINY, device="gpu")
    cfg = ((2, 3, 4, 4, 4), 5, 32, 8, 1, 0.2, 0.1, 1e-5)
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto', got 'tpu'"):
        lib.invnet_create(cfg, 0, "tpu")  # the C core checks too


@pytest.mark.skipif(gpu_usable(), reason="a GPU is usable here: device='cuda' succeeds (test_cuda_* cover it)")
def test_cuda_without_gpu_raises_clearly():
    why = "no CUDA GPU is visible" if ubdiff.cuda_compiled() else "built without CUDA"
    with pytest.raises(RuntimeError, match=f"device='cuda': .*{why}"):
        InversionNet(TINY, max_batch=1, device="cuda")
    with pytest.raises(RuntimeError, match=why):
        InversionNet.from_state_dict({}, config=TINY, device="cuda")


# ---- tensors on any device ------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_get_set_zero_on_any_device(device):
    m = InversionNet(TINY, seed=1, max_batch=2, device=device)
    params, stats, _ = layout(TINY)
    flat = m.get_tensor()
    assert flat.shape == (m.num_parameters(),) and flat.dtype == np.float32
    name, shape = params[5]  # convblock2_1.layers.0.bias, (dim2,) = (3,)
    want = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 7
    m.set_tensor(name, want)
    assert np.array_equal(m.get_tensor(name), want)
    assert np.array_equal(m.parameters()[name], want)
    m.set_tensor(stats[0][0], np.full(stats[0][1], 3.0), kind="stats")  # float64 in: converted
    assert np.all(m.buffers()[stats[0][0]] == 3.0)
    whole = np.linspace(-1, 1, flat.size, dtype=np.float32)
    m.set_tensor(None, whole, kind="m")
    assert np.array_equal(m.get_tensor(kind="m"), whole)
    # gradients: a backward fills them, zero_grad clears them on the device
    x, _ = data(2)
    m.forward(x, train=True)
    m.backward(np.ones((2, 1, 70, 70), np.float32), x)
    assert np.abs(m.get_tensor(kind="grad")).max() > 0
    m.zero_grad()
    assert not m.get_tensor(kind="grad").any()
    # clear errors
    with pytest.raises(ValueError, match=rf"'{name}' has shape \({shape[0]},\), the value given has shape \(2, 7\)"):
        m.set_tensor(name, np.zeros((2, 7), np.float32))
    with pytest.raises(KeyError, match="no parameter tensor named 'nope'"):
        m.get_tensor("nope")
    with pytest.raises(ValueError, match="kind must be"):
        m.get_tensor(name, kind="ema")
    if device == "cpu":  # zero-copy views: writes go to the model
        m.parameters()[name][...] = 0.5
        assert np.all(m.get_tensor(name) == 0.5)
    else:  # device memory: no views, copies only
        with pytest.raises(RuntimeError, match="lives on cuda.*no zero-copy views"):
            lib.invnet_view(m._h, "param", name)


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoints_are_the_same_bytes_on_every_device(device, tmp_path):
    """A CPU checkpoint loaded on `device` and saved again is the same file,
    and a model loaded on either device holds the same tensors."""
    x, v = data(4)
    cpu = InversionNet(TINY, seed=7, max_batch=4, device="cpu")
    for _ in range(2):
        cpu.train_step(x, v, lr=1e-3)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    cpu.save(str(a))
    other = InversionNet.load(str(a), max_batch=4, device=device)
    assert other.device == device and other.step == 2
    other.save(str(b))
    assert a.read_bytes() == b.read_bytes()
    back = InversionNet.load(str(b), max_batch=4, device="cpu")
    for kind in ("param", "m", "v", "stats"):
        assert np.array_equal(back.get_tensor(kind=kind), cpu.get_tensor(kind=kind)), kind


# ---- the CUDA model against the CPU model -----------------------------------------------------
# Tolerances. Both devices compute in float32; they differ in summation order
# (cuBLAS vs OpenBLAS blocking, GPU reductions in BatchNorm), about 1e-7
# relative per sum. Across CPU thread counts and OpenBLAS kernels the same
# network agrees to 1e-4 relative / 1e-5 absolute (test_threads_agree,
# test_train_step_loss_gradient_and_adamw); the GPU gets 10x that margin, since
# BatchNorm on small channel counts amplifies rounding and GPU reductions
# change the order more than a thread count does. A wrong kernel is off by
# O(0.1) or more.
FWD = dict(rtol=1e-3, atol=1e-4)  # outputs in [-1, 1], statistics O(1)


def pair(seed=1, max_batch=4):
    cpu = InversionNet(TINY, seed=seed, max_batch=max_batch, device="cpu")
    gpu = InversionNet(TINY, seed=seed, max_batch=max_batch, device="cuda")
    return cpu, gpu


@requires_gpu
def test_cuda_init_is_the_cpu_init():
    """Philox streams are keyed, and init_uniform computes the same expression
    on both devices: the initial parameters agree exactly."""
    cpu, gpu = pair()
    for kind in ("param", "stats", "grad", "m", "v"):
        assert np.array_equal(gpu.get_tensor(kind=kind), cpu.get_tensor(kind=kind)), kind


@requires_gpu
def test_cuda_forward_backward_match_cpu():
    cpu, gpu = pair()
    x, _ = data(4, seed=2)
    dout = np.random.default_rng(3).standard_normal((4, 1, 70, 70)).astype(np.float32)
    for m in (cpu, gpu):
        m.zero_grad()
    outs = [m.forward(x, train=True) for m in (cpu, gpu)]
    assert_gpu_matches_cpu(outs[1], outs[0], **FWD, what="training forward")
    assert_gpu_matches_cpu(gpu.get_tensor(kind="stats"), cpu.get_tensor(kind="stats"), **FWD,
                           what="running statistics")
    for m in (cpu, gpu):
        m.backward(dout, x)
    g_cpu, g_gpu = cpu.get_tensor(kind="grad"), gpu.get_tensor(kind="grad")
    # gradients reach O(100) with 2-4 channels per layer; conv biases before
    # BatchNorm have true gradient 0 (rounding noise on both devices), hence an
    # absolute floor relative to the largest gradient
    assert_gpu_matches_cpu(g_gpu, g_cpu, rtol=1e-3, atol=1e-4 * np.abs(g_cpu).max(), what="gradients")
    assert_gpu_matches_cpu(gpu.forward(x), cpu.forward(x), **FWD, what="eval forward")
    assert_gpu_matches_cpu(gpu.predict(x, batch_size=3, progress=False), cpu.predict(x, batch_size=3, progress=False),
                           **FWD, what="predict in batches")


@requires_gpu
def test_cuda_training_steps_match_cpu():
    """Three AdamW steps on each device from the same initialisation."""
    cpu, gpu = pair(seed=5)
    x, v = data(4)
    lr = 1e-4
    losses = [[m.train_step(x, v, lr=lr) for m in (cpu, gpu)]]
    # step 1 starts from identical parameters: its gradient is comparable elementwise
    g_cpu = cpu.get_tensor(kind="grad")
    assert_gpu_matches_cpu(gpu.get_tensor(kind="grad"), g_cpu, rtol=1e-3, atol=1e-4 * np.abs(g_cpu).max(),
                           what="step-1 gradient")
    losses += [[m.train_step(x, v, lr=lr) for m in (cpu, gpu)] for _ in range(2)]
    for step, (lc, lg) in enumerate(losses, 1):
        assert_close(lg, lc, rtol=1e-3, atol=1e-5, what=f"losses of step {step}")
    assert gpu.step == cpu.step == 3
    # Adam moves every parameter by at most about lr per step, and an element
    # whose gradient is rounding noise (conv biases before BatchNorm) may move
    # either way on either device: parameters agree within 2 lr per step.
    dp = np.abs(gpu.get_tensor() - cpu.get_tensor())
    assert dp.max() <= 2 * 3 * lr * 1.01, dp.max()
    # the trained models predict alike: outputs in [-1, 1], the parameter noise above moves them by < 1e-3
    assert_gpu_matches_cpu(gpu.predict(x, progress=False), cpu.predict(x, progress=False), rtol=1e-3, atol=1e-3,
                           what="predictions after 3 steps")
