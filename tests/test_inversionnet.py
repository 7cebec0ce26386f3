"""InversionNet: parameter table, shapes, gradients of the whole model,
training, checkpoints, OpenFWI state_dict import, error paths."""
import numpy as np
import pytest

import invnet_reference as ref
import ubdiff
from gradcheck import assert_close
from ubdiff import checkpoint
from ubdiff._native import lib
from ubdiff.models import InversionNet
from ubdiff.models.inversionnet import count_parameters, layout, resolve_config

# A tiny config exercising every block kind: an 8-receiver, 32-sample input
# reaches convblock8 as a 1 x 1 map; the decoder is the full 1 -> 80 -> 70 one.
TINY = {"base": "small", "dims": (2, 3, 4, 4, 4), "nt": 32, "nx": 8}
TINY_SHAPE = (5, 32, 8)


@pytest.fixture(autouse=True)
def one_thread():
    """The shared test machine is oversubscribed; one thread is fastest and
    keeps the default tests to seconds. test_threads_agree covers 2 threads."""
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


def data(n, shape=TINY_SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    # layered velocity maps (increasing with depth), learnable unlike noise
    depth = np.linspace(-1, 1, 70)[None, None, :, None]
    a, c = rng.uniform(0.3, 0.9, (n, 1, 1, 1)), rng.uniform(-0.3, 0.3, (n, 1, 1, 1))
    v = np.clip(a * depth + c, -1, 1) * np.ones((1, 1, 1, 70))
    return x, v.astype(np.float32)


# ---- the table ------------------------------------------------------------------
def test_paper_parameter_count_and_names():
    assert count_parameters("paper") == 24_409_123
    params, stats, blocks = layout("paper")
    names = [n for n, _ in params]
    # network.py's module names, in its order, four parameters each
    modules = ["convblock1", "convblock2_1", "convblock2_2", "convblock3_1", "convblock3_2", "convblock4_1",
               "convblock4_2", "convblock5_1", "convblock5_2", "convblock6_1", "convblock6_2", "convblock7_1",
               "convblock7_2", "convblock8"] + [f"deconv{i}_{j}" for i in range(1, 6) for j in (1, 2)] + ["deconv6"]
    assert names == [f"{m}.layers.{i}.{p}" for m in modules for i, p in
                     ((0, "weight"), (0, "bias"), (1, "weight"), (1, "bias"))]
    assert [n for n, _ in stats] == [f"{m}.layers.1.{s}" for m in modules for s in ("running_mean", "running_var")]
    shapes = dict(params)
    assert shapes["convblock1.layers.0.weight"] == (32, 5, 7, 1)
    assert shapes["convblock8.layers.0.weight"] == (512, 256, 8, 9)
    assert shapes["deconv1_1.layers.0.weight"] == (512, 512, 5, 5)  # ConvTranspose: (C_in, C_out, k, k)
    assert shapes["deconv2_1.layers.0.weight"] == (512, 256, 4, 4)
    assert shapes["deconv6.layers.0.weight"] == (1, 32, 3, 3)
    # network.py's shape comments
    out = {b[0]: (b[3], b[12], b[13]) for b in blocks}
    assert out["convblock4_1"] == (128, 63, 70) and out["convblock6_1"] == (256, 16, 18)
    assert out["convblock8"] == (512, 1, 1) and out["deconv5_2"] == (32, 80, 80) and out["deconv6"] == (1, 70, 70)


def test_small_config_shapes():
    cfg = resolve_config("small")
    assert cfg["nt"] == 250 and cfg["dims"] == (8, 16, 32, 64, 128)
    _, _, blocks = layout("small")
    b8 = [b for b in blocks if b[0] == "convblock8"][0]
    assert (b8[6], b8[7]) == (2, 9) and (b8[12], b8[13]) == (1, 1)  # kernel computed from nt = 250
    m = InversionNet("small", max_batch=2)
    assert m.num_parameters() == count_parameters("small") == 1_085_899
    x, _ = data(3, (5, 250, 70))
    y = m.predict(x, progress=False)
    assert y.shape == (3, 1, 70, 70) and np.all(np.abs(y) <= 1)
    # overrides: another nt gives another convblock8 kernel, same parameter names
    _, _, blocks = layout({"base": "small", "nt": 500})
    assert [b[6:8] for b in blocks if b[0] == "convblock8"] == [(4, 9)]


def test_tables_match_model_views():
    m = InversionNet(TINY, max_batch=2)
    params, stats, _ = layout(TINY)
    assert {n: v.shape for n, v in m.parameters().items()} == dict(params)
    assert {n: v.shape for n, v in m.buffers().items()} == dict(stats)
    assert m.num_parameters() == sum(int(np.prod(s)) for _, s in params)


def test_default_initialisation():
    """torch's defaults: conv U(+-1/sqrt(fan_in)), fan_in = weight.shape[1] * k*k
    (also for ConvTranspose); BN gamma 1, beta 0, running mean 0, var 1."""
    m = InversionNet("small", seed=3, max_batch=1)
    p = m.parameters()
    for name in ("convblock5_1.layers.0.weight", "deconv2_1.layers.0.weight"):
        w = p[name]
        bound = 1 / np.sqrt(np.prod(w.shape[1:]))
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
        assert abs(w.mean()) < 0.05 * bound
    assert np.all(p["deconv3_2.layers.1.weight"] == 1) and np.all(p["deconv3_2.layers.1.bias"] == 0)
    b = m.buffers()
    assert np.all(b["convblock1.layers.1.running_mean"] == 0) and np.all(b["convblock1.layers.1.running_var"] == 1)
    same = InversionNet("small", seed=3, max_batch=1).parameters()
    other = InversionNet("small", seed=4, max_batch=1).parameters()
    assert all(np.array_equal(p[n], same[n]) for n in p)
    assert not np.array_equal(p["convblock1.layers.0.weight"], other["convblock1.layers.0.weight"])


# ---- forward and gradients of the whole model ------------------------------------------
def test_forward_matches_numpy_reference():
    """The C forward against a float64 NumPy implementation of network.py
    (tests/invnet_reference.py), in training mode (batch statistics, running
    statistics updated with the unbiased variance) and in eval mode.
    Tolerance: float32 through 25 blocks, outputs in [-1, 1]; observed
    errors ~1e-5, a wrong layer is off by O(0.1)."""
    m = InversionNet(TINY, seed=1, max_batch=4)
    x, _ = data(4, seed=2)
    _, _, blocks = layout(TINY)
    P = {n: v.astype(np.float64) for n, v in m.parameters().items()}
    S = {n: v.astype(np.float64) for n, v in m.buffers().items()}
    want, new_stats, _ = ref.forward(P, S, blocks, x, train=True)
    assert_close(m.forward(x, train=True), want, rtol=1e-4, atol=1e-4, what="training forward")
    for n, v in m.buffers().items():
        assert_close(v, new_stats[n], rtol=1e-5, atol=1e-6, what=n)
    want, _, _ = ref.forward(P, new_stats, blocks, x, train=False)
    assert_close(m.forward(x), want, rtol=1e-4, atol=1e-4, what="eval forward")
    assert np.abs(want).max() > 0.1  # not a trivially tiny output


# (tensor) sampled from every kind of layer: Conv2d weights with (k,1) and
# (k,k) kernels and the computed convblock8 kernel, ConvTranspose2d weights,
# conv biases (whose true gradient is 0: BatchNorm removes any per-channel
# shift), BatchNorm gamma and beta, the Tanh block.
SAMPLED = ["convblock1.layers.0.weight", "convblock2_1.layers.0.weight", "convblock5_1.layers.0.weight",
           "convblock8.layers.0.weight", "deconv1_1.layers.0.weight", "deconv3_1.layers.0.weight",
           "deconv5_1.layers.0.weight", "deconv5_2.layers.0.weight", "deconv6.layers.0.weight",
           "convblock3_2.layers.0.bias", "deconv2_1.layers.0.bias",
           "convblock1.layers.1.weight", "convblock8.layers.1.weight", "deconv1_1.layers.1.bias",
           "deconv4_2.layers.1.weight", "deconv6.layers.1.weight", "deconv6.layers.1.bias",
           "convblock7_2.layers.1.bias"]


def test_gradients_finite_difference():
    """C gradients of sum(out * dout) in training mode (batch 4: convblock8's
    BatchNorm normalises 1 x 1 maps over the batch alone, and at batch 2 its
    output is +-1 whatever the input, which would hide the encoder's
    gradient) against central differences of the float64 NumPy reference.

    Finite differences of a float32 network with LeakyReLU fail: with 2-4
    channels per layer gradients reach O(100), and any step large enough to
    beat float32 rounding crosses LeakyReLU kinks somewhere downstream. The
    reference runs in float64 (eps = 1e-4, rounding ~1e-10) with the
    LeakyReLU masks frozen at the unperturbed point, so the function is
    smooth there and the difference quotient is exact to ~1e-8 relative.
    The C gradients carry float32 error through 25 blocks (observed <= 5e-4
    relative): rtol = atol = 2e-3; a wrong term is off by O(1)."""
    m = InversionNet(TINY, seed=1, max_batch=4)
    x, _ = data(4, seed=2)
    dout = np.random.default_rng(3).standard_normal((4, 1, 70, 70))
    m.zero_grad()
    m.forward(x, train=True)
    m.backward(dout.astype(np.float32), x)
    grads = m.gradients()
    _, _, blocks = layout(TINY)
    P = {n: v.astype(np.float64) for n, v in m.parameters().items()}
    S = {n: v.astype(np.float64) for n, v in m.buffers().items()}
    _, _, masks = ref.forward(P, S, blocks, x, train=True)

    def objective():
        return float(np.sum(ref.forward(P, S, blocks, x, train=True, masks=masks)[0] * dout))

    rng = np.random.default_rng(4)
    eps = 1e-4
    checked = 0
    for name in SAMPLED:
        p = P[name].reshape(-1)
        g = grads[name].reshape(-1)
        for i in rng.choice(p.size, size=min(3, p.size), replace=False):
            old = p[i]
            p[i] = old + eps
            fp = objective()
            p[i] = old - eps
            fm = objective()
            p[i] = old
            assert_close(g[i], (fp - fm) / (2 * eps), rtol=2e-3, atol=2e-3, what=f"{name}[{i}]")
            checked += 1
    assert checked == 49
    # a check that can fail: the gradients are not trivially zero
    assert np.abs(grads["convblock1.layers.0.weight"]).max() > 1
    assert np.abs(grads["deconv6.layers.1.bias"]).max() > 1


def test_backward_accumulates_and_needs_training_forward():
    m = InversionNet(TINY, max_batch=4)
    x, _ = data(4)
    dout = np.ones((4, 1, 70, 70), np.float32)
    m.zero_grad()
    m.forward(x, train=True)
    m.backward(dout, x)
    g1 = np.array(lib.invnet_view(m._h, "grad"))
    m.backward(dout, x)  # accumulates: += into the same buffer
    # sgemm with beta = 1 adds its K-blocks into the existing gradient one by one, so
    # g1 + g1 is rounded in another order than 2 * g1 (and the blocking depends on
    # the OpenBLAS kernel); each element may differ by a few ulps of the largest
    # partial sum, hence 1e-5 of the largest gradient (measured: 1.1e-4 of 33 on Haswell).
    g2 = np.array(lib.invnet_view(m._h, "grad"))
    assert_close(g2, 2 * g1, rtol=1e-5, atol=1e-5 * float(np.abs(g1).max()), what="accumulated")
    assert not np.array_equal(g2, g1), "the second backward must add to the gradient"
    m.forward(x, train=False)
    with pytest.raises(ValueError, match="training forward"):
        m.backward(dout, x)
    m.forward(x[:2], train=True)
    with pytest.raises(ValueError, match="training forward"):
        m.backward(dout, x)


def test_train_step_loss_gradient_and_adamw():
    """train_step = forward + (w1 L1 + w2 MSE) + backward + AdamW, checked
    piece by piece against NumPy on the tiny model."""
    x, v = data(4)
    w1, w2 = 0.7, 1.3
    m = InversionNet(TINY, seed=5, max_batch=4)
    pred = m.forward(x, train=True).astype(np.float64)
    n = pred.size
    l1, mse = np.mean(np.abs(pred - v)), np.mean((pred - v) ** 2)
    dpred = (w1 * np.sign(pred - v) + w2 * 2 * (pred - v)) / n
    m.zero_grad()
    m.backward(dpred.astype(np.float32), x)
    want_grad = np.array(lib.invnet_view(m._h, "grad"))
    p0 = np.array(lib.invnet_view(m._h, "param"))

    lr, wd, eps = 1e-3, 1e-2, 1e-8
    loss = m.train_step(x, v, lr=lr, weight_decay=wd, eps=eps, l1_weight=w1, mse_weight=w2)
    assert_close(loss, [w1 * l1 + w2 * mse, l1, mse], rtol=1e-5, atol=1e-6, what="losses")
    g = np.array(lib.invnet_view(m._h, "grad"))
    # the same float32 computation up to summation order (dpred rounded to
    # float32 here); conv biases have gradients that are 0 up to rounding
    scale = np.abs(want_grad).max()
    assert_close(g, want_grad, rtol=1e-4, atol=1e-5 * scale, what="train_step gradient")
    # AdamW, first step: m_hat = g, v_hat = g^2
    want = p0 - lr * wd * p0 - lr * g / (np.abs(g) + eps)
    assert_close(lib.invnet_view(m._h, "param"), want, rtol=1e-5, atol=1e-6, what="AdamW step")
    assert m.step == 1


def test_loss_decreases():
    x, v = data(4)
    m = InversionNet(TINY, seed=0, max_batch=4)
    losses = [m.train_step(x, v, lr=1e-2)[0] for _ in range(30)]
    assert m.step == 30
    assert losses[-1] < 0.5 * losses[0], losses  # observed 1.15 -> 0.34
    # fit: shuffled batches, history per epoch, running statistics moved
    x8, v8 = data(8, seed=1)
    m2 = InversionNet(TINY, seed=0, max_batch=2)
    w = m2.parameters()["deconv6.layers.0.weight"]
    w0 = w.copy()
    hist = m2.fit(x8, v8, epochs=4, batch_size=4, lr=3e-3, progress=False)
    assert len(hist) == 4 and hist[-1] < hist[0]
    assert m2.max_batch == 4 and m2.step == 8
    # growing the batch moved only activations: views taken before still see the model
    assert np.array_equal(w, m2.parameters()["deconv6.layers.0.weight"]) and not np.array_equal(w, w0)
    assert np.any(m2.buffers()["deconv6.layers.1.running_mean"] != 0)


def test_predict_batching_is_consistent():
    m = InversionNet(TINY, seed=2, max_batch=4)
    x, v = data(7)
    m.fit(x, v, epochs=1, batch_size=4, lr=1e-3, progress=False)  # non-trivial running statistics
    whole = m.predict(x, batch_size=7, progress=False)
    parts = m.predict(x, batch_size=3, progress=False)
    one = m.predict(x[5:6], progress=False)
    assert_close(parts, whole, rtol=1e-5, atol=1e-6, what="batch 3 vs 7")
    assert_close(one, whole[5:6], rtol=1e-5, atol=1e-6, what="single sample")
    assert np.all(np.abs(whole) <= 1)


def test_threads_agree():
    x, v = data(4)
    res = []
    for t in (1, 2):
        ubdiff.set_num_threads(t)
        m = InversionNet(TINY, seed=0, max_batch=4)
        loss = m.train_step(x, v, lr=1e-3)
        res.append((loss, m.predict(x, progress=False)))
    assert_close(res[0][0], res[1][0], rtol=1e-5, atol=1e-6, what="loss 1 vs 2 threads")
    assert_close(res[0][1], res[1][1], rtol=1e-4, atol=1e-5, what="prediction 1 vs 2 threads")


# ---- checkpoints and OpenFWI weights ------------------------------------------------------
def test_save_load_roundtrip(tmp_path):
    x, v = data(4)
    m = InversionNet(TINY, seed=7, max_batch=4)
    for _ in range(3):
        m.train_step(x, v, lr=1e-3)
    path = str(tmp_path / "inv.safetensors")
    m.save(path)
    r = InversionNet.load(path)
    assert r.config == m.config and r.step == 3
    assert np.array_equal(r.predict(x, progress=False), m.predict(x, progress=False))
    # the training state came along: the next step is identical too
    assert m.train_step(x, v, lr=1e-3) == r.train_step(x, v, lr=1e-3)
    assert np.array_equal(lib.invnet_view(m._h, "param"), lib.invnet_view(r._h, "param"))


def test_load_rejects_other_checkpoints(tmp_path):
    path = str(tmp_path / "other.safetensors")
    checkpoint.save(path, {"a": np.zeros(3, np.float32)}, {"kind": "autoencoder"})
    with pytest.raises(checkpoint.CheckpointError, match="expected 'inversionnet'"):
        InversionNet.load(path)
    m = InversionNet(TINY, max_batch=1)
    t = m.state_dict()
    del t["deconv6.layers.1.bias"]
    checkpoint.save(path, t, {"kind": "inversionnet", "config": {**m.config, "dims": list(m.config["dims"])}})
    with pytest.raises(checkpoint.CheckpointError, match="deconv6.layers.1.bias"):
        InversionNet.load(path)


def openfwi_state_dict(config, seed=0):
    """A dict as torch's InversionNet().state_dict() would give it, as NumPy:
    OpenFWI's names and shapes (from the table), random values, and the
    num_batches_tracked counters BatchNorm keeps."""
    params, stats, _ = layout(config)
    rng = np.random.default_rng(seed)
    d = {n: (0.3 * rng.standard_normal(s)).astype(np.float32) for n, s in params}
    for n, s in stats:
        d[n] = (rng.uniform(0.5, 2.0, s) if n.endswith("var") else 0.1 * rng.standard_normal(s)).astype(np.float32)
        if n.endswith("running_mean"):
            d[n.replace("running_mean", "num_batches_tracked")] = np.array(1234, np.int64)
    return d


def test_from_state_dict_equals_setting_by_name():
    d = openfwi_state_dict(TINY)
    a = InversionNet.from_state_dict(d, config=TINY)
    b = InversionNet(TINY, seed=9)
    for n, v in {**b.parameters(), **b.buffers()}.items():
        v[...] = d[n]
    x, _ = data(3)
    pa, pb = a.predict(x, progress=False), b.predict(x, progress=False)
    assert np.array_equal(pa, pb)
    assert not np.array_equal(pa, InversionNet(TINY, seed=9).predict(x, progress=False))
    assert all(np.array_equal(a.state_dict()[n], d[n]) for n in a.state_dict())


def test_from_state_dict_errors():
    d = openfwi_state_dict(TINY)
    missing = dict(d)
    del missing["deconv3_1.layers.0.weight"]
    with pytest.raises(ValueError, match="missing 1 keys.*deconv3_1.layers.0.weight"):
        InversionNet.from_state_dict(missing, config=TINY)
    extra = {**d, "fc.weight": np.zeros(3, np.float32)}
    with pytest.raises(ValueError, match="unexpected 1 keys.*fc.weight"):
        InversionNet.from_state_dict(extra, config=TINY)
    bad = {**d, "convblock8.layers.0.weight": np.zeros((4, 4, 8, 9), np.float32)}
    with pytest.raises(ValueError, match=r"convblock8.layers.0.weight.*\(4, 4, 8, 9\)"):
        InversionNet.from_state_dict(bad, config=TINY)
    with pytest.raises(ValueError, match="has shape"):  # same names, other widths
        InversionNet.from_state_dict(d, config="small")
    with pytest.raises(TypeError):
        InversionNet.from_state_dict([1, 2, 3], config=TINY)


# ---- bad inputs -----------------------------------------------------------------------------
def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown config"):
        InversionNet("huge")
    with pytest.raises(ValueError, match="unknown config keys"):
        InversionNet({"dim": 3})
    with pytest.raises(ValueError, match="dims"):
        InversionNet({"dims": (1, 2, 3)})
    with pytest.raises(ValueError, match="nt"):
        InversionNet({**TINY, "nt": 0})
    with pytest.raises(ValueError, match="slope"):
        InversionNet({**TINY, "slope": 0.0})
    m = InversionNet(TINY, max_batch=2)
    x, v = data(2)
    with pytest.raises(ValueError, match=r"seismic must have shape \(N, 5, 32, 8\)"):
        m.predict(x[:, :, :16])
    with pytest.raises(ValueError, match="4-D"):
        m.predict(x[0])
    with pytest.raises(ValueError, match="velocity must have shape"):
        m.train_step(x, v[:, :, :69])
    with pytest.raises(ValueError, match="lr"):
        m.train_step(x, v, lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        m.train_step(x, v, betas=(1.0, 0.999))
    assert m.step == 0  # rejected steps change nothing
    with pytest.raises(ValueError, match="at least 2 samples"):
        m.fit(x[:1], v[:1])
    with pytest.raises(ValueError, match="velocity maps"):
        m.fit(x, v[:1])
    with pytest.raises(TypeError, match="numeric"):
        m.predict(np.full((2, 5, 32, 8), "a"))
    # the raw binding checks its arguments too
    with pytest.raises(ValueError, match="nt and nx must be positive"):
        lib.invnet_layout(((2, 3, 4, 4, 4), 5, 0, 8, 1, 0.2, 0.1, 1e-5))
    with pytest.raises(TypeError, match="config"):
        lib.invnet_create([2, 3], 0)
    with pytest.raises(ValueError, match="max_batch"):
        lib.invnet_reserve(m._h, 0)
    with pytest.raises(ValueError, match="max_batch"):
        lib.invnet_forward(m._h, np.zeros((3, 1, 70, 70), np.float32), np.zeros((3, 5, 32, 8), np.float32), False)
    with pytest.raises(TypeError, match="InversionNet model handle"):
        lib.invnet_forward(object(), np.zeros((1, 1, 70, 70), np.float32), x[:1], False)
    with pytest.raises(ValueError, match="out"):
        lib.invnet_forward(m._h, np.zeros((2, 1, 70, 71), np.float32), x, False)


@pytest.mark.slow
def test_paper_model_predicts():
    m = InversionNet("paper", max_batch=1)
    assert m.num_parameters() == 24_409_123
    x, _ = data(1, (5, 1000, 70))
    y = m.predict(x, progress=False)
    assert y.shape == (1, 1, 70, 70) and np.all(np.isfinite(y)) and np.all(np.abs(y) <= 1)
