"""The reproducers of issue 9 (C core and binding half), one test each.

Whatever could crash the interpreter (mutating sequences, huge thread counts,
fake-memory arrays) runs only in tests/test_fuzz.py's subprocesses; here are
the silent wrong results, checked in process against NumPy / PyTorch
semantics.
"""
import math

import numpy as np
import pytest

import ubdiff
from ubdiff._native import lib
from ubdiff.models import CoLatentAutoencoder, InversionNet, LatentDiffusion

from cuda_util import requires_gpu  # noqa: E402

TINY_DM = dict(dim=8, dim_mults=(1, 2), seq_len=16, groups=2, heads=1, dim_head=4, timesteps=8)
TINY_AE = dict(nt=16, nr=8, shots=1, max_batch=2, dim1=4, dim2=4, dim3=8, dim4=8, latent=8, head_width=8, heads=2,
               mlp_hidden=16, depth=1)
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, -2.5], np.float32)


def f(*shape):
    return np.zeros(shape, np.float32)


# ---- byte order, sizes, aliasing -------------------------------------------------

@pytest.mark.parametrize("which", ["inp", "out"])
def test_byte_swapped_arrays_are_refused_naming_the_argument(which):
    x = np.arange(6, dtype=np.float32)
    out = f(6)
    if which == "inp":
        x = x.astype(">f4")
    else:
        out = out.astype(">f4")
    with pytest.raises(TypeError, match=rf"{which}: .*byte order"):
        lib.act_forward(out, x, 0)


def test_dimension_above_int_max_is_refused_not_truncated():
    # 2**32 + 2 rows truncate to 2 in a C int; strides make it cost no memory
    base = np.zeros(16, np.float32)
    big = np.lib.stride_tricks.as_strided(base, shape=(2**32 + 2, 4), strides=(16, 4))
    out = np.lib.stride_tricks.as_strided(base, shape=(2**32 + 2, 3), strides=(12, 4))
    with pytest.raises(ValueError, match="inp: dimension 0 has size 4294967298, more than the C core's limit"):
        lib.linear_forward(f(2, 3), big, f(3, 4), None)
    with pytest.raises(ValueError, match="limit"):
        lib.linear_forward(out, big, f(3, 4), None)


def test_outputs_overlapping_inputs_are_refused():
    logits = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="probs shares memory with logits"):
        lib.xent_forward(f(1), logits, logits, np.array([0, 1]))
    buf = f(2 * 3 * 4 + 3)
    inp, mean = buf[:24].reshape(2, 3, 4), buf[22:25]
    with pytest.raises(ValueError, match="mean shares memory with inp"):
        lib.batchnorm_forward_train(f(2, 3, 4), mean, f(3), None, None, inp, np.ones(3, np.float32), f(3), 0.1, 1e-5)


def test_documented_in_place_ops_give_the_out_of_place_result():
    x = np.random.default_rng(1).standard_normal(10).astype(np.float32)
    ref = f(10)
    lib.act_forward(ref, x, 1, 0.2)
    y = x.copy()
    lib.act_forward(y, y, 1, 0.2)
    np.testing.assert_array_equal(y, ref)
    with pytest.raises(ValueError, match="exactly the same array"):  # a shifted view is not in place
        buf = x.copy()
        lib.act_forward(buf[1:], buf[:-1], 1, 0.2)


def test_arrays_inside_the_models_own_buffers_are_refused():
    m = LatentDiffusion(TINY_DM, seed=0, max_batch=2, device="cpu")
    grads = m.flat("grad")[:32].reshape(2, 1, 16)
    with pytest.raises(ValueError, match="model's own parameter buffer 'grad'"):
        lib.unet_forward(m._h, f(2, 1, 16), grads, np.zeros(2, np.float32), False)


# ---- NaN as PyTorch / NumPy -----------------------------------------------------------

def test_relu_propagates_nan_like_torch():
    out = f(SPECIAL.size)
    lib.act_forward(out, SPECIAL, 0)
    np.testing.assert_array_equal(out, np.where(np.isnan(SPECIAL), np.nan, np.maximum(SPECIAL, 0)))
    d = f(SPECIAL.size)
    lib.act_backward(d, np.ones_like(SPECIAL), SPECIAL, 0)
    np.testing.assert_array_equal(d, np.where(SPECIAL <= 0, 0.0, 1.0))  # torch threshold_backward: x <= 0 ? 0 : g


def test_leaky_relu_propagates_nan_like_torch():
    out, d = f(SPECIAL.size), f(SPECIAL.size)
    lib.act_forward(out, SPECIAL, 1, 0.2)
    lib.act_backward(d, np.ones_like(SPECIAL), SPECIAL, 1, 0.2)
    np.testing.assert_array_equal(out, np.where(SPECIAL > 0, SPECIAL, np.float32(0.2) * SPECIAL))
    np.testing.assert_array_equal(d, np.where(SPECIAL > 0, 1.0, np.float32(0.2)))


def test_l1_backward_sign_of_nan_is_nan():
    d = f(SPECIAL.size)
    lib.l1_backward(d, SPECIAL, f(SPECIAL.size), float(SPECIAL.size))
    np.testing.assert_array_equal(d, np.sign(SPECIAL))
    d = f(3)
    lib.l1_backward(d, f(3), f(3), math.nan)  # a NaN scale reaches every element, sign 0 included
    assert np.isnan(d).all()


@requires_gpu
def test_cuda_activations_propagate_nan_like_the_cpu():
    for kind, param in ((0, 0.0), (1, 0.2)):
        cpu, gpu = f(SPECIAL.size), f(SPECIAL.size)
        lib.act_forward(cpu, SPECIAL, kind, param)
        lib.cuda_act_forward(gpu, SPECIAL, kind, param)
        np.testing.assert_array_equal(gpu, cpu)


def test_encoder_of_nan_maps_is_nan():
    ae = CoLatentAutoencoder("small", seed=0, **TINY_AE)
    v = np.random.default_rng(0).uniform(-1, 1, (2, 1, 70, 70)).astype(np.float32)
    v[0, 0, 30, 30] = np.nan
    z = ae.encode(v)
    assert np.isnan(z[0]).any() and np.isfinite(z[1]).all()  # eval mode: samples are independent


# ---- seeds, threads, hyper-parameters --------------------------------------------------

@pytest.mark.parametrize("seed,exc", [(2**64, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_seeds_are_range_checked_not_wrapped(seed, exc):
    with pytest.raises(exc, match="seed"):
        lib.rand_uniform(f(4), seed)
    with pytest.raises(exc, match="seed"):
        LatentDiffusion(TINY_DM, seed=seed, max_batch=2, device="cpu")
    with pytest.raises(exc, match="seed"):
        InversionNet("small", seed=seed, max_batch=2)
    with pytest.raises(exc, match="seed"):
        CoLatentAutoencoder("small", seed=seed, **TINY_AE)


def test_top_seed_is_valid_and_distinct_from_zero():
    a, b = f(8), f(8)
    lib.rand_uniform(a, 2**64 - 1)
    lib.rand_uniform(b, 0)
    assert not np.array_equal(a, b)
    with pytest.raises(ValueError, match="offset"):  # element offset + i would wrap to the stream's start
        lib.rand_uniform(f(8), 0, 0, 2**64 - 4)


@pytest.mark.parametrize("n", [10**6, 50000, 2**40])
def test_thread_counts_beyond_the_cap_never_reach_libgomp(n):
    before = ubdiff.get_num_threads()
    with pytest.raises(ValueError, match="max_num_threads"):
        ubdiff.set_num_threads(n)
    assert ubdiff.get_num_threads() == before
    assert ubdiff.max_num_threads() == min(1024, 64 * ubdiff.available_cores())


def test_default_threads_are_capped(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1000000")
    with pytest.warns(RuntimeWarning, match="max_num_threads"):
        assert ubdiff._default_threads() == ubdiff.max_num_threads()


def test_diffusion_forward_needs_one_finite_time_per_sample():
    m = LatentDiffusion(TINY_DM, seed=0, max_batch=2, device="cpu")
    x = np.zeros((2, 1, 16), np.float32)
    with pytest.raises(TypeError, match="None"):
        m.forward(x, None)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        m.forward(x, [1.0])
    with pytest.raises(ValueError, match="finite"):
        m.forward(x, [1.0, np.nan])
    np.testing.assert_array_equal(m.forward(x, 3), m.forward(x, [3, 3]))  # a scalar is one time for all


@pytest.mark.parametrize("kw", [dict(weight_decay=math.nan), dict(weight_decay=-1.0), dict(gammas=(1, math.nan, 1, 1)),
                                dict(gammas=(1, 1, -1, 1)), dict(lr=math.inf), dict(betas=(0.9, 1.0)),
                                dict(eps=0.0)])
def test_bad_hyperparameters_leave_the_autoencoder_unchanged(kw):
    ae = CoLatentAutoencoder("small", seed=0, **TINY_AE)
    rng = np.random.default_rng(0)
    vel = rng.uniform(-1, 1, (2, 1, 70, 70)).astype(np.float32)
    seis = rng.uniform(-1, 1, (2, 1, 16, 8)).astype(np.float32)
    before = [ae.flat(k).copy() for k in ("param", "m", "v", "buf")]
    with pytest.raises(ValueError):
        ae.train_step(vel, seis, mode="step2", **kw)
    # the C step refuses the same values (defence in depth), before BatchNorm statistics move
    adam = dict(lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, gammas=(1.0, 1.0, 1.0, 1.0))
    adam.update(kw)
    with pytest.raises(ValueError):
        lib.ae_train_step(ae._h, f(7), vel, seis, 2, False,
                          (adam["lr"], *adam["betas"], adam["eps"], adam["weight_decay"]), tuple(adam["gammas"]))
    for b, k in zip(before, ("param", "m", "v", "buf")):
        np.testing.assert_array_equal(ae.flat(k), b)


@pytest.mark.parametrize("kw", [dict(weight_decay=math.nan), dict(max_grad_norm=-1.0), dict(ema_decay=1.5),
                                dict(lr=-1e-3)])
def test_bad_hyperparameters_leave_the_diffusion_model_unchanged(kw):
    m = LatentDiffusion(TINY_DM, seed=0, max_batch=2, device="cpu")
    before = m.flat("param").copy()
    with pytest.raises(ValueError):
        m.train_step(np.zeros((2, 1, 16), np.float32), **kw)
    np.testing.assert_array_equal(m.flat("param"), before)
    assert m.step == 0
