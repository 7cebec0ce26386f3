"""The 2-D U-Net on every device through the backend table: choosing the
device, tensors on any device, checkpoints across devices, and the CUDA model
against the CPU model (skipped, with the reason printed, where no GPU is
usable: tests/cuda_util.py)."""
import numpy as np
import pytest
from cuda_util import assert_gpu_matches_cpu, requires_gpu
from test_unet2d import REF, TINY, inputs

import ubdiff
from ubdiff._native import lib
from ubdiff.models.unet2d import UNet2D, layout

DEVICES = ["cpu", pytest.param("cuda", marks=requires_gpu)]


@pytest.fixture(autouse=True)
def one_thread():
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


def gpu_usable():
    return ubdiff.cuda_compiled() and ubdiff.gpu_count() > 0


def test_device_selection():
    assert UNet2D(TINY, max_batch=1, device="cpu").device == "cpu"
    want = "cuda" if gpu_usable() else "cpu"  # "auto": the GPU when this build has CUDA and one is visible
    assert UNet2D(TINY, max_batch=1).device == want
    assert "device='cpu'" in repr(UNet2D(TINY, max_batch=1, device="cpu"))
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto', got 'gpu'"):
        UNet2D(TINY, device="gpu")
    cfg = (4, (1, 2), (0, 1), 1, 5, 6, 2, 2, 3)
    with pytest.raises(ValueError, match="'tpu'"):
        lib.unet2d_create(cfg, 1, 0, "tpu")  # the C core checks too


@pytest.mark.skipif(gpu_usable(), reason="a GPU is usable here: device='cuda' succeeds (the cuda tests cover it)")
def test_cuda_without_gpu_raises_clearly():
    why = "no CUDA GPU is visible" if ubdiff.cuda_compiled() else "built without CUDA"
    with pytest.raises(RuntimeError, match=why):
        UNet2D(TINY, max_batch=1, device="cuda")


@pytest.mark.parametrize("device", DEVICES)
def test_get_set_zero_on_any_device(device, rng):
    m = UNet2D(TINY, seed=1, max_batch=2, device=device)
    params, _ = layout(TINY)
    name, shape = params[1]  # init_conv.bias
    want = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 7
    m.set_tensor(name, want)
    assert np.array_equal(m.get_tensor(name), want) and np.array_equal(m.parameters()[name], want)
    m.set_tensor(name, want + 1, kind="ema")
    assert np.array_equal(m.parameters("ema")[name], want + 1)
    x, t = inputs(rng, TINY, 2)
    m.forward(x, t)
    m.backward(np.ones_like(x))
    assert np.abs(m.get_tensor(kind="grad")).max() > 0
    m.zero_grad()
    assert not m.get_tensor(kind="grad").any()
    with pytest.raises(ValueError, match=rf"'{name}' has shape \({shape[0]},\), the value given has shape \(2, 7\)"):
        m.set_tensor(name, np.zeros((2, 7), np.float32))
    if device == "cpu":
        m.parameters()[name][...] = 0.5
        assert np.all(m.get_tensor(name) == 0.5)
    else:
        with pytest.raises(RuntimeError, match="lives on cuda.*no zero-copy views"):
            lib.unet2d_view(m._h, "param", name)


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoints_are_the_same_bytes_on_every_device(device, tmp_path, rng):
    x, t = inputs(rng, TINY, 2)
    target = rng.standard_normal(x.shape).astype(np.float32)
    cpu = UNet2D(TINY, seed=7, max_batch=2, device="cpu")
    for _ in range(2):
        cpu.train_step(x, t, target, lr=1e-3)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    cpu.save(str(a))
    other = UNet2D.load(str(a), max_batch=2, device=device)
    assert other.device == device and other.step == 2
    other.save(str(b))
    assert a.read_bytes() == b.read_bytes()


# ---- the CUDA model against the CPU model -----------------------------------------------------
# Tolerances: float32 on both; they differ in summation order (cuBLAS vs OpenBLAS, GPU reductions
# in GroupNorm/RMSNorm/softmax), about 1e-7 relative per sum and deeper than InversionNet's 25
# layers; a wrong kernel is off by O(0.1). Outputs and gradients: rtol 1e-3, atol 1e-4 of the
# largest magnitude, as for InversionNet (tests/test_inversionnet_device.py).
def pair(cfg, seed=1, max_batch=3):
    return (UNet2D(cfg, seed=seed, max_batch=max_batch, device="cpu"),
            UNet2D(cfg, seed=seed, max_batch=max_batch, device="cuda"))


@requires_gpu
def test_cuda_init_is_the_cpu_init():
    """Philox streams are keyed and init_uniform is the same expression on both devices."""
    cpu, gpu = pair(REF)
    for kind in ("param", "ema", "grad", "m", "v"):
        assert np.array_equal(gpu.get_tensor(kind=kind), cpu.get_tensor(kind=kind)), kind


@requires_gpu
@pytest.mark.parametrize("cfg", [TINY, REF, "small"])
def test_cuda_forward_backward_match_cpu(cfg, rng):
    cpu, gpu = pair(cfg)
    x, t = inputs(rng, cpu.config, 3)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    outs = [m.forward(x, t) for m in (cpu, gpu)]
    assert_gpu_matches_cpu(outs[1], outs[0], rtol=1e-3, atol=1e-4 * np.abs(outs[0]).max(), what="forward")
    dxs = [m.backward(dout, need_dx=True) for m in (cpu, gpu)]
    assert_gpu_matches_cpu(dxs[1], dxs[0], rtol=1e-3, atol=1e-4 * np.abs(dxs[0]).max(), what="dx")
    g_cpu, g_gpu = cpu.get_tensor(kind="grad"), gpu.get_tensor(kind="grad")
    assert_gpu_matches_cpu(g_gpu, g_cpu, rtol=1e-3, atol=1e-4 * np.abs(g_cpu).max(), what="gradients")
    e = [m.forward(x, t, weights="ema") for m in (cpu, gpu)]
    assert_gpu_matches_cpu(e[1], e[0], rtol=1e-3, atol=1e-4 * np.abs(e[0]).max(), what="ema forward")


@requires_gpu
def test_cuda_training_steps_match_cpu(rng):
    """Three Adam steps on each device from the same initialisation: the losses agree, and the
    parameters within 2 lr per step (Adam moves each by about lr whatever its gradient's size)."""
    cpu, gpu = pair(REF, seed=5)
    x, t = inputs(rng, REF, 3)
    target = np.tanh(x).astype(np.float32)
    lr = 1e-4
    for step in range(3):
        lc, lg = cpu.train_step(x, t, target, lr=lr), gpu.train_step(x, t, target, lr=lr)
        assert lg[0] == pytest.approx(lc[0], rel=1e-3), f"loss of step {step + 1}"
        assert lg[1] == pytest.approx(lc[1], rel=1e-3), f"gradient norm of step {step + 1}"
    assert np.abs(gpu.get_tensor() - cpu.get_tensor()).max() <= 2 * 3 * lr * 1.01
