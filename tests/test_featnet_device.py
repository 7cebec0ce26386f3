"""The feature net on every device through the backend table (csrc/backend.h):
its new ops (mean_pool, init_normal) against NumPy and across devices,
choosing the device, tensors on any device, checkpoints across devices, the
split training API, and the CUDA model against the CPU model. The cuda
variants skip with the reason printed where no GPU is usable (tests/cuda_util.py)."""
import numpy as np
import pytest

import ubdiff
from cuda_util import assert_gpu_matches_cpu, requires_gpu
from gradcheck import assert_close, numeric_grad
from test_featnet import TINY, _toy_data
from ubdiff._native import lib
from ubdiff.metrics import featnet as fn

DEVICES = ["cpu", pytest.param("cuda", marks=requires_gpu)]


def gpu_usable():
    return ubdiff.cuda_compiled() and ubdiff.gpu_count() > 0


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: the shared test machine is oversubscribed (results do not depend on it)."""
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


# ---- the ops -----------------------------------------------------------------------------------
def pool(x, device="cpu"):
    out = np.empty(x.shape[0], np.float32)
    lib.mean_pool_forward(out, np.ascontiguousarray(x, np.float32), device)
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("N,S", [(1, 1), (7, 3), (300, 250)])  # 300 x 250: above the CPU's OpenMP threshold
def test_mean_pool_forward_matches_numpy(rng, device, N, S):
    x = rng.standard_normal((N, S)).astype(np.float32) * 10 + 3
    # each mean is summed in double and rounded once: within one float32 rounding of the float64 mean
    assert_close(pool(x, device), x.astype(np.float64).mean(1), rtol=1e-7, atol=1e-7, what="mean_pool")


@pytest.mark.parametrize("device", DEVICES)
def test_mean_pool_backward_accumulates_and_matches_finite_differences(rng, device):
    N, S = 5, 6
    x = rng.standard_normal((N, S)).astype(np.float32)
    dout = rng.standard_normal(N).astype(np.float32)
    d = np.full((N, S), 0.25, np.float32)  # += onto what is there
    lib.mean_pool_backward(d, dout, device)
    assert_close(d - 0.25, np.repeat(dout[:, None] / S, S, 1), rtol=1e-6, atol=1e-7, what="analytic")
    # linear in x: central differences are exact up to float32 rounding of the means (eps 1e-2, O(1) values)
    num = numeric_grad(lambda z: pool(z, device), x, dout)
    assert_close(d - 0.25, num, what="finite differences")


def test_mean_pool_checks_shapes():
    with pytest.raises(ValueError, match="out"):
        lib.mean_pool_forward(np.empty(3, np.float32), np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="inp"):
        lib.mean_pool_forward(np.empty(3, np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="dout"):
        lib.mean_pool_backward(np.zeros((4, 2), np.float32), np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="device must be"):
        lib.mean_pool_forward(np.empty(3, np.float32), np.zeros((3, 2), np.float32), "tpu")


@pytest.mark.parametrize("device", DEVICES)
def test_init_normal_is_scaled_rand_normal(device):
    n, std = 100_003, 0.37  # n above the CPU's OpenMP threshold, odd so the last Philox block is partial
    ref = np.empty(n, np.float32)
    lib.rand_normal(ref, 11, 4, 5)
    got = np.empty(n, np.float32)
    lib.init_normal(got, std, 11, 4, 5, device)
    if device == "cpu":  # the same float product as rand_normal followed by `*= std`
        assert np.array_equal(got, ref * np.float32(std))
    else:  # the GPU's logf / cosf / sinf differ from glibc's by an ulp or two
        assert_gpu_matches_cpu(got, ref * np.float32(std), rtol=1e-6, atol=1e-7, what="init_normal")
    assert abs(got.std() - std) < 0.01 and abs(got.mean()) < 0.01
    with pytest.raises(ValueError, match="std"):
        lib.init_normal(got, -1.0, 0, 0, 0, device)


# ---- choosing the device ---------------------------------------------------------------------
def test_device_selection():
    assert fn.FeatureNet(TINY, device="cpu").device == "cpu"
    want = "cuda" if gpu_usable() else "cpu"
    assert fn.FeatureNet(TINY).device == want  # "auto", the default: the GPU when one is usable
    assert "device='cpu'" in repr(fn.FeatureNet(TINY, device="cpu"))
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto', got 'gpu'"):
        fn.FeatureNet(TINY, device="gpu")
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto', got 'tpu'"):
        lib.featnet_create(fn._native_config(fn.normalize_config(TINY)), 0, "tpu")  # the C core checks too


@pytest.mark.skipif(gpu_usable(), reason="a GPU is usable here: device='cuda' succeeds")
def test_cuda_without_gpu_raises_clearly():
    why = "no CUDA GPU is visible" if ubdiff.cuda_compiled() else "built without CUDA"
    with pytest.raises(RuntimeError, match=f"device='cuda': .*{why}"):
        fn.FeatureNet(TINY, device="cuda")


# ---- tensors on any device ------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_get_set_zero_on_any_device(device, rng):
    net = fn.FeatureNet(TINY, seed=1, device=device)
    flat = net.get_tensor()
    assert flat.shape == (net.n_params,) and flat.dtype == np.float32
    want = np.arange(12, dtype=np.float32).reshape(4, 3) / 7  # head.cls.weight is (n_classes, F) = (3, 5)
    name = "blocks.2.bn.bias"
    net.set_tensor(name, want[0, :3].tolist() + [1.0, 2.0])  # a list: converted to float32
    assert np.array_equal(net.get_tensor(name), np.array([0, 1 / 7, 2 / 7, 1, 2], np.float32))
    assert np.array_equal(net.params[name], net.get_tensor(name))
    net.set_tensor("blocks.0.bn.running_var", np.full(3, 2.0), kind="stats")
    assert np.all(net.stats["blocks.0.bn.running_var"] == 2.0)
    whole = np.linspace(-1, 1, flat.size, dtype=np.float32)
    net.set_tensor(None, whole, kind="v")
    assert np.array_equal(net.get_tensor(kind="v"), whole) and np.array_equal(net.adam_v[name],
                                                                              net.get_tensor(name, "v"))
    x = rng.standard_normal((4, 2, 9, 8)).astype(np.float32)
    net.forward(x, train=True)
    net.backward(x, dlogits=np.ones((4, 3), np.float32))
    assert np.abs(net.get_tensor(kind="grad")).max() > 0 and np.abs(net.grads["blocks.0.conv.weight"]).max() > 0
    net.zero_grad()
    assert not net.get_tensor(kind="grad").any()
    with pytest.raises(ValueError, match=rf"'{name}' has shape \(5,\), the value given has shape \(2, 7\)"):
        net.set_tensor(name, np.zeros((2, 7), np.float32))
    with pytest.raises(KeyError, match="no parameter tensor named 'nope'"):
        net.get_tensor("nope")
    with pytest.raises(ValueError, match="kind must be"):
        net.get_tensor(name, kind="ema")
    if device == "cpu":  # zero-copy views: writes go to the model
        net.params[name][...] = 0.5
        assert np.all(net.get_tensor(name) == 0.5)
    else:  # device memory: copies only
        with pytest.raises(RuntimeError, match="lives on cuda.*no zero-copy views"):
            lib.featnet_view(net._h, "param", name)


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoints_are_the_same_bytes_on_every_device(device, tmp_path, rng):
    x, y = _toy_data(rng, 6)
    r = np.zeros((6, 2), np.float32)
    cpu = fn.FeatureNet(TINY, seed=7, device="cpu")
    for _ in range(2):
        cpu.train_step(x, y, r)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    cpu.save(str(a), optimizer=True)
    other = fn.FeatureNet.load(str(a), device=device)
    assert other.device == device and other.step == 2
    other.save(str(b), optimizer=True)
    assert a.read_bytes() == b.read_bytes()
    back = fn.FeatureNet.load(str(b), device="cpu")
    for kind in ("param", "m", "v", "stats"):
        assert np.array_equal(back.get_tensor(kind=kind), cpu.get_tensor(kind=kind)), kind


# ---- the split training API (data-parallel training) ----------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_accumulate_then_apply_is_train_step(device, rng):
    """zero_grad + accumulate + apply_gradients is train_step, bit for bit on one
    device; gradients of two accumulates add up (what an all-reduce sums)."""
    x, y = _toy_data(rng, 6)
    r = rng.standard_normal((6, 2)).astype(np.float32)
    one, two = (fn.FeatureNet(TINY, seed=3, device=device) for _ in range(2))
    for _ in range(2):
        a = one.train_step(x, y, r, lr=1e-2, w_reg=0.5)
        two.zero_grad()
        b = two.accumulate(x, y, r, w_reg=0.5)
        two.apply_gradients(lr=1e-2)
        assert a == b
    for kind in ("param", "grad", "m", "v", "stats"):
        assert np.array_equal(one.get_tensor(kind=kind), two.get_tensor(kind=kind)), kind
    assert one.step == two.step == 2
    # accumulation: the second call adds the same gradient again (batch statistics move the
    # running statistics but not the batch-mode gradient)
    two.zero_grad()
    two.accumulate(x, y, r)
    g1 = two.get_tensor(kind="grad")
    two.accumulate(x, y, r)
    assert_close(two.get_tensor(kind="grad"), 2 * g1, rtol=1e-6, atol=1e-7, what="grads +=")
    with pytest.raises(ValueError, match="lr"):
        two.apply_gradients(lr=float("nan"))
    assert two.step == 2  # a refused update changes nothing
    with pytest.raises(ValueError, match="outside"):
        two.accumulate(x, np.full(6, 3), r)


# ---- the CUDA model against the CPU model -----------------------------------------------------
# Tolerances. Both devices compute in float32 and differ in summation order
# (cuBLAS vs OpenBLAS blocking, GPU reductions in BatchNorm): ~1e-7 relative
# per sum. Across CPU thread counts the network agrees to 1e-5 / 1e-6
# (test_featnet.py::test_threads_agree); the GPU gets 100x that margin, as for
# InversionNet (test_inversionnet_device.py): BatchNorm over few channels
# amplifies rounding, and the conv weights' normals come from the GPU's own
# logf / cosf (an ulp apart). A wrong kernel is off by O(0.1) or more.
FWD = dict(rtol=1e-3, atol=1e-4)


def pair(seed=1, config=TINY):
    return fn.FeatureNet(config, seed=seed, device="cpu"), fn.FeatureNet(config, seed=seed, device="cuda")


@requires_gpu
def test_cuda_init_matches_cpu():
    cpu, gpu = pair()
    for kind in ("param", "stats", "grad", "m", "v"):
        assert_gpu_matches_cpu(gpu.get_tensor(kind=kind), cpu.get_tensor(kind=kind), rtol=1e-6, atol=1e-7,
                               what=kind)


@requires_gpu
def test_cuda_forward_backward_match_cpu(rng):
    cpu, gpu = pair()
    gpu.set_tensor(None, cpu.get_tensor())  # the same parameters exactly
    x = rng.standard_normal((5, 2, 9, 8)).astype(np.float32)
    df, dl, dr = (rng.standard_normal(s).astype(np.float32) for s in ((5, 5), (5, 3), (5, 2)))
    outs = [m.forward(x, train=True) for m in (cpu, gpu)]
    for c, g, what in zip(outs[0], outs[1], ("feat", "logits", "reg")):
        assert_gpu_matches_cpu(g, c, **FWD, what=f"training forward: {what}")
    assert_gpu_matches_cpu(gpu.get_tensor(kind="stats"), cpu.get_tensor(kind="stats"), **FWD, what="statistics")
    for m in (cpu, gpu):
        m.backward(x, df, dl, dr)
    g_cpu = cpu.get_tensor(kind="grad")
    assert_gpu_matches_cpu(gpu.get_tensor(kind="grad"), g_cpu, rtol=1e-3, atol=1e-4 * np.abs(g_cpu).max(),
                           what="gradients")
    assert_gpu_matches_cpu(gpu.features(x), cpu.features(x), **FWD, what="eval features")


@requires_gpu
def test_cuda_training_steps_match_cpu(rng):
    cpu, gpu = pair(seed=5)
    gpu.set_tensor(None, cpu.get_tensor())
    x, y = _toy_data(rng, 6)
    r = rng.standard_normal((6, 2)).astype(np.float32)
    lr = 1e-3
    for step in range(3):
        lc, lg = (m.train_step(x, y, r, lr=lr) for m in (cpu, gpu))
        assert lc["accuracy"] == lg["accuracy"], step
        assert_close([lg[k] for k in ("loss", "xent", "mse")], [lc[k] for k in ("loss", "xent", "mse")],
                     rtol=1e-3, atol=1e-5, what=f"losses of step {step + 1}")
    # AdamW moves each parameter by at most ~lr per step, either way where the gradient is rounding noise
    assert np.abs(gpu.get_tensor() - cpu.get_tensor()).max() <= 2 * 3 * lr * 1.01


@requires_gpu
def test_cuda_reference_features_match_cpu(rng):
    """FID/KID features of the shipped networks agree across devices."""
    for modality in fn.MODALITIES:
        cpu, gpu = (fn.load_reference(modality, device=d) for d in ("cpu", "cuda"))
        x = rng.uniform(-1, 1, (40, *cpu.in_shape)).astype(np.float32)
        f = cpu.features(x)
        assert_gpu_matches_cpu(gpu.features(x), f, rtol=1e-3, atol=1e-4 * np.abs(f).max(), what=modality)
