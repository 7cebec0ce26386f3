"""The co-latent autoencoder on every device through the backend table
(csrc/backend.h): choosing the device, reading and writing tensors on any
device, checkpoints across devices, the split training step (forward_backward
+ apply_update), the D_s token-assembly ops, and the CUDA model against the CPU
model in all three training modes. The cuda variants skip with the reason
printed where no GPU is usable (tests/cuda_util.py)."""
import numpy as np
import pytest

import ubdiff
from cuda_util import assert_gpu_matches_cpu, requires_gpu
from gradcheck import assert_close, numeric_grad
from test_autoencoder import MINI, TINY, data
from ubdiff._native import lib
from ubdiff.models import ae_spec
from ubdiff.models.autoencoder import CoLatentAutoencoder

DEVICES = ["cpu", pytest.param("cuda", marks=requires_gpu)]
MODES = [("step1", False), ("step2", False), ("step2", True), ("wo_opt", False)]


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: the shared test machine is oversubscribed (see test_autoencoder.py)."""
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


def gpu_usable():
    return ubdiff.cuda_compiled() and ubdiff.gpu_count() > 0


def seis_for(mode, seis):
    return None if mode == "step1" else seis


# ---- choosing the device ---------------------------------------------------------------------
def test_device_selection():
    assert CoLatentAutoencoder(TINY, device="cpu").device == "cpu"
    # "auto" (the default) takes the GPU when this build has CUDA and one is visible (shared/DESIGN.md)
    want = "cuda" if gpu_usable() else "cpu"
    assert CoLatentAutoencoder(TINY).device == want
    assert CoLatentAutoencoder(TINY, device="auto").device == want
    assert "device='cpu'" in repr(CoLatentAutoencoder(TINY, device="cpu"))
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto', got 'tpu'"):
        CoLatentAutoencoder(TINY, device="tpu")
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto', got 'gpu'"):
        lib.ae_create(ae_spec.make_config(TINY), 0, "gpu")  # the C core checks too


@pytest.mark.skipif(gpu_usable(), reason="a GPU is usable here: device='cuda' succeeds (test_cuda_* cover it)")
def test_cuda_without_gpu_raises_clearly():
    why = "no CUDA GPU is visible" if ubdiff.cuda_compiled() else "built without CUDA"
    with pytest.raises(RuntimeError, match=f"device='cuda': .*{why}"):
        CoLatentAutoencoder(TINY, device="cuda")


# ---- tensors on any device ------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_get_set_zero_on_any_device(device, rng):
    m = CoLatentAutoencoder(TINY, seed=1, device=device)
    flat = m.get_tensor()
    assert flat.shape == (m.num_parameters(),) and flat.dtype == np.float32
    name = "decoder_s.decoder.pos_embed"
    shape = m.parameter(name).shape
    want = np.arange(np.prod(shape), dtype=np.float32).reshape(shape) / 7
    m.set_tensor(name, want)
    assert np.array_equal(m.get_tensor(name), want)
    assert np.array_equal(m.parameter(name), want)
    assert np.array_equal(m.flat()[m.group_slice("decoder_s")][:0], np.zeros(0))
    rv = "batch_norm_v.running_var"
    m.set_tensor(rv, np.full(m.buffer(rv).shape, 3.0), kind="buf")  # float64 in: converted
    assert np.all(m.buffer(rv) == 3.0) and np.all(m.named_buffers()[rv] == 3.0)
    whole = np.linspace(-1, 1, flat.size, dtype=np.float32)
    m.set_tensor(None, whole, kind="m")
    assert np.array_equal(m.get_tensor(kind="m"), whole) and np.array_equal(m.flat("m"), whole)
    # gradients: a backward fills them, zero_grad clears them on the device
    vel, seis = data(rng, TINY, 2)
    m.forward_backward(vel, seis, mode="wo_opt")
    assert np.abs(m.get_tensor(kind="grad")).max() > 0
    m.zero_grad()
    assert not m.get_tensor(kind="grad").any()
    # clear errors
    with pytest.raises(ValueError, match=rf"'{name}' has shape \(1, 2, 4\), the value given has shape \(2, 7\)"):
        m.set_tensor(name, np.zeros((2, 7), np.float32))
    with pytest.raises(KeyError, match="no parameter tensor named 'nope'"):
        m.get_tensor("nope")
    with pytest.raises(KeyError, match="no buffer tensor named 'fc_v.weight'"):
        m.get_tensor("fc_v.weight", kind="buf")
    with pytest.raises(ValueError, match="kind must be"):
        m.get_tensor(name, kind="ema")
    with pytest.raises(TypeError, match="tensor name must be a str or None, got int"):
        lib.ae_get(m._h, "param", 5)
    if device == "cpu":  # zero-copy views: writes go to the model
        m.parameter(name)[...] = 0.5
        assert np.all(m.get_tensor(name) == 0.5)
        m.flat("buf")[:] = 2.0
        assert np.all(m.get_tensor(kind="buf") == 2.0)
    else:  # device memory: no views, copies only
        with pytest.raises(RuntimeError, match="lives on cuda.*no zero-copy views"):
            lib.ae_view(m._h, name, "param")
        with pytest.raises(RuntimeError, match="lives on cuda.*no zero-copy views"):
            lib.ae_flat(m._h, "param")


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoints_are_the_same_bytes_on_every_device(device, rng, tmp_path):
    """A CPU checkpoint loaded on `device` and saved again is the same file,
    and a model loaded on either device holds the same tensors."""
    vel, seis = data(rng, TINY, 3)
    cpu = CoLatentAutoencoder(TINY, seed=7, device="cpu")
    cpu.train_step(vel, mode="step1", lr=1e-3)
    cpu.train_step(vel, seis, mode="step2", freeze=True, lr=1e-3)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    cpu.save(str(a), meta={"epoch": 2})
    other = CoLatentAutoencoder.load(str(a), device=device)
    assert other.device == device and other.meta == {"epoch": 2}
    assert other.optimizer_steps() == cpu.optimizer_steps()
    other.save(str(b), meta={"epoch": 2})
    assert a.read_bytes() == b.read_bytes()
    back = CoLatentAutoencoder.load(str(b), device="cpu")
    for kind in ("param", "m", "v", "buf"):
        assert np.array_equal(back.get_tensor(kind=kind), cpu.get_tensor(kind=kind)), kind
    # and the authors' state_dict travels the same way
    sd = cpu.state_dict()
    third = CoLatentAutoencoder(TINY, seed=9, device=device)
    third.load_state_dict(sd)
    assert np.array_equal(third.get_tensor(), cpu.get_tensor())
    assert np.array_equal(third.get_tensor(kind="buf"), cpu.get_tensor(kind="buf"))


# ---- the split training step --------------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode,freeze", MODES)
def test_forward_backward_then_apply_update_is_train_step(device, mode, freeze, rng):
    """train_step = forward_backward + apply_update, bit for bit on one device
    (the same ops in the same order), so an all-reduce fits between the two."""
    vel, seis = data(rng, MINI, 3)
    a = CoLatentAutoencoder(MINI, seed=2, device=device)
    b = CoLatentAutoencoder(MINI, seed=2, device=device)
    hp = dict(lr=1e-3, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-3)
    for _ in range(2):
        ra = a.train_step(vel, seis_for(mode, seis), mode=mode, freeze=freeze, **hp)
        rb = b.forward_backward(vel, seis_for(mode, seis), mode=mode, freeze=freeze)
        b.apply_update(mode=mode, freeze=freeze, **hp)
        assert np.array_equal(np.array(list(ra.values())), np.array(list(rb.values())), equal_nan=True)
    for kind in ("param", "grad", "m", "v", "buf"):
        assert np.array_equal(a.get_tensor(kind=kind), b.get_tensor(kind=kind)), kind
    assert a.optimizer_steps() == b.optimizer_steps()


def test_trained_slice_is_the_range_each_mode_updates(rng):
    m = CoLatentAutoencoder(MINI, seed=3, device="cpu")
    g = {name: m.group_slice(name) for name in ae_spec.GROUPS}
    n = m.num_parameters()
    assert m.trained_slice("step1") == slice(0, g["decoder_v"].stop)
    assert m.trained_slice("step2", freeze=True) == slice(g["head_s"].start, n)
    assert m.trained_slice("step2") == m.trained_slice("wo_opt") == slice(0, n)
    assert m.trained_slice("step1", freeze=True) == m.trained_slice("step1")  # F only matters in step2
    vel, seis = data(rng, MINI, 2)
    for mode, freeze in MODES:
        before = m.get_tensor()
        m.train_step(vel, seis_for(mode, seis), mode=mode, freeze=freeze, lr=1e-3)
        moved = np.nonzero(m.get_tensor() != before)[0]
        sl = m.trained_slice(mode, freeze)
        assert moved.min() >= sl.start and moved.max() < sl.stop, (mode, freeze)
        # the gradients of a data-parallel step: the trained range, averaged across workers
        grads = m.get_tensor(kind="grad")
        m.set_tensor(None, grads, kind="grad")
    with pytest.raises(ValueError, match="mode"):
        m.trained_slice("step3")
    with pytest.raises(ValueError, match="mode"):
        m.apply_update("step3")


def test_apply_update_uses_the_gradient_buffer_as_it_stands(rng):
    """An all-reduce writes the averaged gradient back: apply_update must use it."""
    vel, seis = data(rng, MINI, 2)
    a = CoLatentAutoencoder(MINI, seed=4, device="cpu")
    b = CoLatentAutoencoder(MINI, seed=4, device="cpu")
    ra = a.forward_backward(vel, seis, mode="wo_opt")
    rb = b.forward_backward(vel, seis, mode="wo_opt")
    assert ra == rb
    g = a.get_tensor(kind="grad")
    a.set_tensor(None, 0.5 * g, kind="grad")  # "the mean over two workers" of g and 0
    b.set_tensor(None, g, kind="grad")
    a.apply_update("wo_opt", lr=1e-3)
    b.apply_update("wo_opt", lr=1e-3)
    # Adam's first step moves by lr * g/|g| elementwise: the same direction, except where 0.5 g is
    # small against eps; the states differ: m halves
    assert_close(a.get_tensor(kind="m"), 0.5 * b.get_tensor(kind="m"), rtol=1e-6, atol=1e-12, what="Adam m")


def test_apply_update_refuses_bad_adam_before_any_step_counts(rng):
    """Bad hyper-parameters: a clear error from Python and, passed to the binding directly, from C
    (ubd_adam_check) before any group's step counter or parameter moves."""
    vel, seis = data(rng, MINI, 2)
    m = CoLatentAutoencoder(MINI, seed=4, device="cpu")
    m.forward_backward(vel, seis, mode="wo_opt")
    steps, params = m.optimizer_steps(), m.get_tensor()
    with pytest.raises(ValueError, match="lr"):
        m.apply_update("wo_opt", lr=float("nan"))
    for bad, what in (((float("nan"), 0.9, 0.999, 1e-8, 0.0), "lr"), ((1e-3, 1.0, 0.999, 1e-8, 0.0), "betas"),
                      ((1e-3, 0.9, 0.999, 0.0, 0.0), "eps"), ((1e-3, 0.9, 0.999, 1e-8, -1.0), "weight_decay")):
        with pytest.raises(ValueError, match=what):
            lib.ae_apply_update(m._h, 3, False, bad)
    assert m.optimizer_steps() == steps
    assert np.array_equal(m.get_tensor(), params)


# ---- the D_s token-assembly ops (csrc/cpu/tokens.c, csrc/cuda/tokens.cu) ----------------------------
def tokens_reference(tok, cls, pos):
    B, T = tok.shape[0], pos.shape[0]
    x0 = np.empty((B, T, cls.size), np.float64)
    x0[:, 0] = cls + pos[0]
    x0[:, 1:] = tok + pos[1:]
    return x0


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("B,T,C", [(1, 2, 1), (3, 2, 5), (4, 4, 33)])
def test_tokens_forward_backward_numpy_reference(device, B, T, C, rng):
    tok = rng.standard_normal((B, T - 1, C)).astype(np.float32)
    cls, pos = rng.standard_normal(C).astype(np.float32), rng.standard_normal((T, C)).astype(np.float32)
    x0 = np.full((B, T, C), np.nan, np.float32)  # every element written
    lib.ae_tokens_forward(device, x0, tok, cls, pos)
    # one float addition per element, the reference's in double rounds to the same float
    assert np.array_equal(x0, tokens_reference(tok, cls, pos).astype(np.float32))
    dx0 = rng.standard_normal((B, T, C)).astype(np.float32)
    g0 = [rng.standard_normal(s).astype(np.float32) for s in ((B, T - 1, C), (C,), (T, C))]
    dtok, dcls, dpos = (g.copy() for g in g0)
    lib.ae_tokens_backward(device, dtok, dcls, dpos, dx0)  # += onto non-zero gradients
    assert np.array_equal(dtok, g0[0] + dx0[:, 1:])
    # sums over the batch in float32, b = 0, 1, ...: the same order as the loop below
    want_cls, want_pos = g0[1].copy(), g0[2].copy()
    for b in range(B):
        want_cls += dx0[b, 0]
        want_pos += dx0[b]
    assert np.array_equal(dcls, want_cls) and np.array_equal(dpos, want_pos)
    # any gradient may be skipped
    only = g0[2].copy()
    lib.ae_tokens_backward(device, None, None, only, dx0)
    assert np.array_equal(only, want_pos)


def test_tokens_gradcheck(rng):
    B, T, C = 3, 3, 4
    tok = rng.standard_normal((B, T - 1, C)).astype(np.float32)
    cls, pos = rng.standard_normal(C).astype(np.float32), rng.standard_normal((T, C)).astype(np.float32)
    dout = rng.standard_normal((B, T, C)).astype(np.float32)

    def fwd(tk, c, p):
        out = np.empty((B, T, C), np.float32)
        lib.ae_tokens_forward("cpu", out, tk, c, p)
        return out

    dtok, dcls, dpos = np.zeros_like(tok), np.zeros_like(cls), np.zeros_like(pos)
    lib.ae_tokens_backward("cpu", dtok, dcls, dpos, dout)
    assert_close(dtok, numeric_grad(lambda x: fwd(x, cls, pos), tok, dout), what="dtok")
    assert_close(dcls, numeric_grad(lambda x: fwd(tok, x, pos), cls, dout), what="dcls")
    assert_close(dpos, numeric_grad(lambda x: fwd(tok, cls, x), pos, dout), what="dpos")


def test_tokens_bad_input():
    x0, tok = np.zeros((2, 2, 3), np.float32), np.zeros((2, 1, 3), np.float32)
    cls, pos = np.zeros(3, np.float32), np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"pos.*\(2, 3\)"):
        lib.ae_tokens_forward("cpu", x0, tok, cls, np.zeros((3, 3), np.float32))
    with pytest.raises(ValueError, match="tok"):
        lib.ae_tokens_forward("cpu", x0, np.zeros((2, 2, 3), np.float32), cls, pos)
    with pytest.raises(ValueError, match="device must be"):
        lib.ae_tokens_forward("gpu", x0, tok, cls, pos)


@requires_gpu
def test_cuda_tokens_are_the_cpu_bits(rng):
    """Each output element is one addition (forward) or one in-order sum over
    the batch (backward) on both devices: the results agree exactly."""
    B, T, C = 64, 2, 640
    tok = rng.standard_normal((B, T - 1, C)).astype(np.float32)
    cls, pos = rng.standard_normal(C).astype(np.float32), rng.standard_normal((T, C)).astype(np.float32)
    dx0 = rng.standard_normal((B, T, C)).astype(np.float32)
    out = {}
    for dev in ("cpu", "cuda"):
        x0 = np.zeros((B, T, C), np.float32)
        lib.ae_tokens_forward(dev, x0, tok, cls, pos)
        g = [np.ones((B, T - 1, C), np.float32), np.ones(C, np.float32), np.ones((T, C), np.float32)]
        lib.ae_tokens_backward(dev, *g, dx0)
        out[dev] = [x0] + g
    for a, b in zip(out["cuda"], out["cpu"]):
        assert np.array_equal(a, b)


# ---- the CUDA model against the CPU model -----------------------------------------------------
# Tolerances. Both devices compute in float32 (cuBLAS sgemm without TF32);
# they differ in summation order (cuBLAS vs OpenBLAS blocking, GPU reductions
# in BatchNorm, LayerNorm and the losses), about 1e-7 relative per sum. Across
# CPU thread counts the same network agrees to 1e-3 relative / 1e-5 absolute
# in its gradients (test_threads_do_not_change_results); the GPU gets the same
# relative margin with an absolute floor of 1e-4 of the largest value, since
# BatchNorm over 2-4 channels amplifies rounding, and conv biases before
# BatchNorm have a true gradient of 0 (rounding noise on both devices). A
# wrong kernel is off by O(0.1) or more.
FWD = dict(rtol=1e-3, atol=1e-4)  # outputs in [-1, 1] (seismic O(1)), statistics O(1)


def pair(cfg=TINY, seed=1):
    return (CoLatentAutoencoder(cfg, seed=seed, device="cpu"), CoLatentAutoencoder(cfg, seed=seed, device="cuda"))


def grad_tol(g_cpu):
    return dict(rtol=1e-3, atol=1e-4 * max(np.abs(g_cpu).max(), 1e-30))


@requires_gpu
def test_cuda_init_is_the_cpu_init():
    """Philox streams are keyed, and init_uniform computes the same expression
    on both devices: the initial parameters agree exactly."""
    cpu, gpu = pair()
    for kind in ("param", "buf", "grad", "m", "v"):
        assert np.array_equal(gpu.get_tensor(kind=kind), cpu.get_tensor(kind=kind)), kind


@requires_gpu
def test_cuda_encode_decode_match_cpu(rng):
    cpu, gpu = pair()
    vel, _ = data(rng, TINY, 4)
    assert_gpu_matches_cpu(gpu.encode(vel), cpu.encode(vel), **FWD, what="encode (eval)")
    assert_gpu_matches_cpu(gpu.encode(vel, training=True), cpu.encode(vel, training=True), **FWD,
                           what="encode (training)")
    assert_gpu_matches_cpu(gpu.get_tensor(kind="buf"), cpu.get_tensor(kind="buf"), **FWD, what="running statistics")
    z = rng.uniform(-1, 1, (3, TINY["latent"])).astype(np.float32)
    for got, want, what in zip(gpu.decode(z), cpu.decode(z), ("velocity", "seismic")):
        assert_gpu_matches_cpu(got, want, **FWD, what=f"decode {what}")
    v, s = gpu.decode(z, velocity=False)
    assert v is None and s.shape == (3,) + gpu.seismic_shape


@requires_gpu
@pytest.mark.parametrize("mode,freeze", MODES)
def test_cuda_forward_backward_match_cpu(mode, freeze, rng):
    cpu, gpu = pair(seed=2)
    vel, seis = data(rng, TINY, 4)
    rc = cpu.forward_backward(vel, seis_for(mode, seis), mode=mode, freeze=freeze)
    rg = gpu.forward_backward(vel, seis_for(mode, seis), mode=mode, freeze=freeze)
    assert rc.keys() == rg.keys()
    for k in rc:
        assert np.isnan(rc[k]) == np.isnan(rg[k]), k
        if not np.isnan(rc[k]):
            assert rg[k] == pytest.approx(rc[k], rel=1e-4, abs=1e-6), k
    g_cpu = cpu.get_tensor(kind="grad")
    assert_gpu_matches_cpu(gpu.get_tensor(kind="grad"), g_cpu, **grad_tol(g_cpu), what=f"gradients {mode} F={freeze}")
    assert_gpu_matches_cpu(gpu.get_tensor(kind="buf"), cpu.get_tensor(kind="buf"), **FWD, what="running statistics")


@requires_gpu
def test_cuda_training_steps_match_cpu(rng):
    """Three AdamW steps in each mode on each device, in the order of a UB-Diff
    run (step 1, step 2 frozen, step 2 unfrozen, w/o opt), from the same
    initialisation."""
    cpu, gpu = pair(cfg=MINI, seed=5)
    vel, seis = data(rng, MINI, 4)
    lr, steps = 1e-4, 0
    for mode, freeze in MODES:
        for _ in range(3):
            rc, rg = (m.train_step(vel, seis_for(mode, seis), mode=mode, freeze=freeze, lr=lr) for m in (cpu, gpu))
            steps += 1
            for k in rc:
                if not np.isnan(rc[k]):
                    assert rg[k] == pytest.approx(rc[k], rel=1e-3, abs=1e-5), (mode, freeze, k)
        assert gpu.optimizer_steps() == cpu.optimizer_steps()
    # Adam moves every parameter by at most about lr per step, and an element
    # whose gradient is rounding noise (conv biases before BatchNorm) may move
    # either way on either device: parameters agree within 2 lr per step.
    dp = np.abs(gpu.get_tensor() - cpu.get_tensor())
    assert dp.max() <= 2 * steps * lr * 1.01, dp.max()
    # the trained models decode alike: outputs move by < 1e-3 for the parameter noise above
    z = rng.uniform(-1, 1, (3, MINI["latent"])).astype(np.float32)
    for got, want, what in zip(gpu.decode(z), cpu.decode(z), ("velocity", "seismic")):
        assert_gpu_matches_cpu(got, want, rtol=1e-3, atol=1e-3, what=f"decode {what} after training")
