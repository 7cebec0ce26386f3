"""FeatureNet (csrc/models/featnet.c) and softmax cross-entropy (csrc/cpu/xent.c);
the shipped reference networks and FID/KID with features=None."""
import numpy as np
import pytest

import ubdiff
from gradcheck import assert_close, numeric_grad
from ubdiff._native import lib
from ubdiff.metrics import featnet as fn

# ---- softmax cross-entropy ----------------------------------------------------------


def xent_ref(logits, labels):
    z = logits.astype(np.float64)
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -logp[np.arange(len(labels)), labels].mean(), np.exp(logp)


def xent(logits, labels):
    B, K = logits.shape
    loss, probs = np.zeros(1, np.float32), np.empty((B, K), np.float32)
    correct = lib.xent_forward(loss, probs, np.ascontiguousarray(logits, np.float32), labels)
    return loss[0], probs, correct


@pytest.mark.parametrize("B,K,scale", [(1, 1, 1.0), (5, 3, 1.0), (7, 10, 30.0), (64, 2, 100.0)])
def test_xent_forward_matches_numpy(rng, B, K, scale):
    # scale 100: logits up to ~300 would overflow a naive exp in float32
    logits = (rng.standard_normal((B, K)) * scale).astype(np.float32)
    labels = rng.integers(0, K, B)
    loss, probs, correct = xent(logits, labels)
    ref_loss, ref_probs = xent_ref(logits, labels)
    # float32 logits and exp: ~1e-6 relative per term; the mean is summed in double
    assert loss == pytest.approx(ref_loss, rel=1e-5, abs=1e-5 * scale)
    assert_close(probs, ref_probs, rtol=1e-5, atol=1e-6, what="probs")
    assert correct == int(np.sum(np.argmax(logits, 1) == labels))


@pytest.mark.parametrize("B,K", [(1, 2), (4, 3), (9, 10)])
def test_xent_gradient(rng, B, K):
    logits = rng.standard_normal((B, K)).astype(np.float32)
    labels = rng.integers(0, K, B)
    _, probs, _ = xent(logits, labels)
    d = np.full((B, K), 0.5, np.float32)  # accumulates onto what is there
    lib.xent_backward(d, probs, labels, 2.0)
    onehot = np.eye(K)[labels]
    assert_close(d - 0.5, 2.0 * (probs - onehot) / B, rtol=1e-5, atol=1e-7, what="analytic")
    # the loss is smooth: central differences, eps 1e-2, O(1) logits -> default tolerances
    num = numeric_grad(lambda z: np.array([xent(z, labels)[0]], np.float32), logits, np.ones(1))
    assert_close((d - 0.5) / 2.0, num, what="finite differences")


def test_xent_threads_agree(rng):
    logits = rng.standard_normal((4096, 20)).astype(np.float32)  # above the OpenMP threshold
    labels = rng.integers(0, 20, 4096)
    old = ubdiff.get_num_threads()
    try:
        ubdiff.set_num_threads(1)
        a = xent(logits, labels)
        ubdiff.set_num_threads(2)
        b = xent(logits, labels)
    finally:
        ubdiff.set_num_threads(old)
    assert a[0] == pytest.approx(b[0], rel=1e-6) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_xent_errors(rng):
    logits = rng.standard_normal((3, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="outside"):
        xent(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="outside"):
        xent(logits, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match="int32"):
        xent(logits, np.array([0, 2**40, 1]))
    with pytest.raises(TypeError, match="integer"):
        xent(logits, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        xent(logits, np.array([0, 1]))
    with pytest.raises(ValueError):
        lib.xent_backward(np.zeros((3, 5), np.float32), np.zeros((3, 4), np.float32), np.array([0, 1, 2]))


# ---- the network: NumPy float64 reference ---------------------------------------------
TINY = dict(in_shape=(2, 9, 8), blocks=[(3, 3, 3, 1, 1, 1, 1), (4, 3, 3, 2, 2, 1, 1), (5, 3, 1, 2, 1, 1, 0)],
            n_classes=3, n_reg=2, max_batch=6)


def conv_ref(x, w, SH, SW, PH, PW):
    x = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    KH, KW = w.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(x, (KH, KW), axis=(2, 3))[:, :, ::SH, ::SW]
    return np.einsum("bchwij,ocij->bohw", win, w)


def forward_ref(net, x, train):
    """Float64 reference of the forward: (feat, logits, reg, batch statistics per block)."""
    P = {k: v.astype(np.float64) for k, v in net.params.items()}
    S = {k: v.astype(np.float64) for k, v in net.stats.items()}
    eps = net.config["bn_eps"]
    a, batch_stats = x.astype(np.float64), []
    for i, (_, _, _, SH, SW, PH, PW) in enumerate(net.config["blocks"]):
        z = conv_ref(a, P[f"blocks.{i}.conv.weight"], SH, SW, PH, PW)
        if train:
            m, v = z.mean((0, 2, 3)), z.var((0, 2, 3))
            batch_stats.append((m, v * (z.size / z.shape[1]) / (z.size / z.shape[1] - 1)))
        else:
            m, v = S[f"blocks.{i}.bn.running_mean"], S[f"blocks.{i}.bn.running_var"]
        y = (z - m[:, None, None]) / np.sqrt(v[:, None, None] + eps)
        y = y * P[f"blocks.{i}.bn.weight"][:, None, None] + P[f"blocks.{i}.bn.bias"][:, None, None]
        a = np.maximum(y, 0.0)
    feat = a.mean((2, 3))
    logits = feat @ P["head.cls.weight"].T + P["head.cls.bias"]
    reg = feat @ P["head.reg.weight"].T + P["head.reg.bias"] if net.config["n_reg"] else None
    return feat, logits, reg, batch_stats


@pytest.fixture
def tiny(rng):
    net = fn.FeatureNet(TINY, seed=3, device="cpu")
    # non-trivial BN statistics and affine parameters for the eval-mode comparison
    for k, v in net.stats.items():
        v[...] = rng.uniform(0.5, 1.5, v.shape) if k.endswith("var") else rng.normal(0, 0.3, v.shape)
    for k, v in net.params.items():
        if ".bn." in k:
            v[...] += rng.normal(0, 0.2, v.shape)
    return net


def test_layout_names_and_shapes():
    net = fn.FeatureNet(TINY, seed=0, device="cpu")
    assert list(net.params) == ["blocks.0.conv.weight", "blocks.0.bn.weight", "blocks.0.bn.bias",
                                "blocks.1.conv.weight", "blocks.1.bn.weight", "blocks.1.bn.bias",
                                "blocks.2.conv.weight", "blocks.2.bn.weight", "blocks.2.bn.bias",
                                "head.cls.weight", "head.cls.bias", "head.reg.weight", "head.reg.bias"]
    assert net.params["blocks.1.conv.weight"].shape == (4, 3, 3, 3)
    assert net.params["blocks.2.conv.weight"].shape == (5, 4, 3, 1)
    assert net.params["head.reg.weight"].shape == (2, 5)
    assert list(net.stats) == [f"blocks.{i}.bn.running_{s}" for i in range(3) for s in ("mean", "var")]
    assert net.feature_dim == 5 and net.block_sizes == [(9, 8), (5, 4), (3, 4)]
    assert net.n_params == sum(v.size for v in net.params.values())
    spec, stats = lib.featnet_layout(fn._native_config(net.config))
    assert [s[0] for s in spec] == list(net.params) and [s[0] for s in stats] == list(net.stats)
    # initialisation: He-normal conv weights (std sqrt(2 / fan_in)), BN identity, zero head biases
    w = fn.FeatureNet({**TINY, "blocks": [(64, 3, 3, 1, 1, 1, 1)]}, seed=0, device="cpu").params["blocks.0.conv.weight"]
    assert w.std() == pytest.approx(np.sqrt(2 / 18), rel=0.1)
    assert np.all(net.params["blocks.0.bn.weight"] == 1) and np.all(net.params["head.cls.bias"] == 0)
    assert np.all(net.stats["blocks.0.bn.running_var"] == 1) and np.all(net.stats["blocks.0.bn.running_mean"] == 0)
    no_reg = fn.FeatureNet({**TINY, "n_reg": 0}, seed=0, device="cpu")
    assert "head.reg.weight" not in no_reg.params and no_reg.forward(np.zeros((2, 2, 9, 8)))[2] is None


@pytest.mark.parametrize("train", [False, True])
def test_forward_matches_numpy(tiny, rng, train):
    x = rng.standard_normal((5, 2, 9, 8)).astype(np.float32)
    rm_before = {k: v.copy() for k, v in tiny.stats.items()}
    ref = forward_ref(tiny, x, train)
    feat, logits, reg = tiny.forward(x, train=train)
    # float32 conv sums of <= 36 terms and BN: ~1e-6 relative; a float64 reference
    for got, want, what in zip((feat, logits, reg), ref[:3], ("feat", "logits", "reg")):
        assert_close(got, want, rtol=1e-4, atol=1e-5, what=what)
    for i, (m, v) in enumerate(ref[3]):  # running statistics: (1 - 0.1) r + 0.1 batch (unbiased variance)
        rm, rv = f"blocks.{i}.bn.running_mean", f"blocks.{i}.bn.running_var"
        assert_close(tiny.stats[rm], 0.9 * rm_before[rm] + 0.1 * m, rtol=1e-4, atol=1e-6, what=rm)
        assert_close(tiny.stats[rv], 0.9 * rm_before[rv] + 0.1 * v, rtol=1e-4, atol=1e-6, what=rv)
    if not train:
        assert all(np.array_equal(tiny.stats[k], rm_before[k]) for k in rm_before)
        assert_close(tiny.features(x), feat, rtol=0, atol=0, what="features()")


def _upstream(rng, B, net):
    return (rng.standard_normal((B, net.feature_dim)), rng.standard_normal((B, 3)), rng.standard_normal((B, 2)))


def test_gradients_vs_float64_finite_differences(tiny, rng):
    """C gradients against central differences of the float64 reference.

    The objective sum(feat*df) + sum(logits*dl) + sum(reg*dr) of the training-mode
    forward is piecewise smooth (ReLU kinks); with a float64 step of 1e-6 a kink is
    crossed with probability ~1e-6 per unit, so the differences are exact to
    ~1e-9, and what remains is float32 rounding of the C backward (~1e-5 relative
    after BatchNorm's mean subtractions): rtol 1e-3, atol 1e-4.
    """
    x = rng.standard_normal((5, 2, 9, 8)).astype(np.float32)
    df, dl, dr = _upstream(rng, 5, tiny)

    def objective():
        f, lg, r, _ = forward_ref(tiny, x, True)
        return float((f * df).sum() + (lg * dl).sum() + (r * dr).sum())

    state = {k: v.copy() for k, v in tiny.stats.items()}
    tiny.forward(x, train=True)
    for g in tiny.grads.values():
        g[...] = 0
    tiny.backward(x, df.astype(np.float32), dl.astype(np.float32), dr.astype(np.float32))
    for k, v in state.items():
        tiny.stats[k][...] = v
    sub = np.random.default_rng(11)
    for name, p in tiny.params.items():
        flat = p.reshape(-1)
        idx = sub.choice(flat.size, min(6, flat.size), replace=False)
        num = np.empty(len(idx))
        for j, i in enumerate(idx):
            # perturb in float64: the reference reads the parameters through float64 copies
            old = flat[i]
            saved = tiny.params[name]
            tiny.params[name] = saved.astype(np.float64)
            tiny.params[name].reshape(-1)[i] = float(old) + 1e-6
            fp = objective()
            tiny.params[name].reshape(-1)[i] = float(old) - 1e-6
            fm = objective()
            tiny.params[name] = saved
            num[j] = (fp - fm) / 2e-6
        assert_close(tiny.grads[name].reshape(-1)[idx], num, rtol=1e-3, atol=1e-4, what=name)


def test_gradients_vs_c_finite_differences(rng):
    """Central differences of the C forward itself, in the regime where every ReLU is
    active (BN biases +10, so no kink can be crossed): float32 forward, eps 1e-2,
    O(1) inputs -> the gradcheck default tolerances 2e-3 (tests/gradcheck.py)."""
    net = fn.FeatureNet(TINY, seed=5, device="cpu")
    for i in range(3):
        net.params[f"blocks.{i}.bn.bias"][...] = 10.0
    x = rng.standard_normal((4, 2, 9, 8)).astype(np.float32)
    df, dl, dr = (u.astype(np.float32) for u in _upstream(rng, 4, net))
    net.forward(x, train=True)
    net.backward(x, df, dl, dr)
    sub = np.random.default_rng(12)

    def obj(_):
        f, lg, r = net.forward(x, train=True)
        return np.array([np.sum(f.astype(np.float64) * df) + np.sum(lg * dl) + np.sum(r * dr)], np.float32)
    for name, p in net.params.items():
        flat = p.reshape(-1)
        for i in sub.choice(flat.size, min(4, flat.size), replace=False):
            view = flat[i:i + 1]
            num = numeric_grad(obj, view, np.ones(1))
            assert_close(net.grads[name].reshape(-1)[i:i + 1], num, rtol=2e-3, atol=2e-3, what=f"{name}[{i}]")


def test_backward_accumulates_and_needs_a_training_forward(tiny, rng):
    x = rng.standard_normal((3, 2, 9, 8)).astype(np.float32)
    d = np.ones((3, 3), np.float32)
    tiny.forward(x, train=True)
    tiny.backward(x, dlogits=d)
    g1 = tiny.grads["blocks.0.conv.weight"].copy()
    tiny.backward(x, dlogits=d)
    assert_close(tiny.grads["blocks.0.conv.weight"], 2 * g1, rtol=1e-6, atol=1e-7, what="+=")
    tiny.forward(x, train=False)
    with pytest.raises(RuntimeError, match="training forward"):
        tiny.backward(x, dlogits=d)
    tiny.forward(x[:2], train=True)
    with pytest.raises(RuntimeError, match="same batch"):
        tiny.backward(x, dlogits=d)


def _toy_data(rng, n=48):
    """Three classes of 2 x 9 x 8 inputs: a bright blob at different places."""
    y = np.arange(n) % 3
    x = rng.normal(0, 0.3, (n, 2, 9, 8)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, :, 3 * c:3 * c + 3, 2:6] += 1.5
    return x, y


def test_training_lowers_the_loss(rng):
    net = fn.FeatureNet(TINY, seed=1, device="cpu")
    x, y = _toy_data(rng)
    r = np.stack([x.mean((1, 2, 3)), x.std((1, 2, 3))], 1)
    losses = []
    for step in range(40):
        i = np.arange(step * 6, step * 6 + 6) % len(x)
        losses.append(net.train_step(x[i], y[i], r[i], lr=1e-2)["loss"])
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
    assert net.step == 40
    assert net.accuracy(x, y) > 0.9


def test_threads_agree(rng):
    x, y = _toy_data(rng, 6)
    out = []
    old = ubdiff.get_num_threads()
    try:
        for t in (1, 2):
            ubdiff.set_num_threads(t)
            net = fn.FeatureNet({**TINY, "n_reg": 0}, seed=2, device="cpu")
            net.train_step(x, y)
            out.append(net.features(x))
    finally:
        ubdiff.set_num_threads(old)
    assert_close(out[0], out[1], rtol=1e-5, atol=1e-6, what="1 vs 2 threads")


def test_save_load_identical(tmp_path, rng):
    net = fn.FeatureNet(TINY, seed=4, device="cpu")
    x, y = _toy_data(rng, 12)
    r = np.zeros((6, 2), np.float32)
    for s in range(3):
        net.train_step(x[s * 3:s * 3 + 6], y[s * 3:s * 3 + 6], r)
    net.save(str(tmp_path / "a.safetensors"), meta={"note": "x"}, optimizer=True)
    net.save(str(tmp_path / "b.safetensors"))
    a = fn.FeatureNet.load(str(tmp_path / "a.safetensors"), device="cpu")
    b = fn.FeatureNet.load(str(tmp_path / "b.safetensors"), device="cpu")
    assert np.array_equal(a.features(x), net.features(x)) and np.array_equal(b.features(x), net.features(x))
    assert a.meta["note"] == "x" and a.step == 3 and b.step == 0
    # with the optimiser state, the next step is the same step
    assert a.train_step(x[:6], y[:6], r) == net.train_step(x[:6], y[:6], r)
    assert np.array_equal(a.features(x), net.features(x))
    from ubdiff.checkpoint import CheckpointError, save
    save(str(tmp_path / "other.safetensors"), {"w": np.zeros(2, np.float32)}, {"kind": "unet"})
    with pytest.raises(CheckpointError, match="featnet"):
        fn.FeatureNet.load(str(tmp_path / "other.safetensors"))


def test_errors(rng):
    with pytest.raises(ValueError, match="larger than the padded input"):
        fn.FeatureNet({**TINY, "blocks": [(4, 11, 3, 1, 1, 0, 0)]})
    with pytest.raises(ValueError, match="block 1"):
        fn.FeatureNet({**TINY, "blocks": [(4, 3, 3, 4, 4, 0, 0), (4, 3, 3, 1, 1, 0, 0)]})
    with pytest.raises(ValueError, match="blocks"):
        fn.FeatureNet({**TINY, "blocks": []})
    with pytest.raises(ValueError, match="OC, KH, KW"):
        fn.FeatureNet({**TINY, "blocks": [(4, 3, 3)]})
    with pytest.raises(ValueError, match="n_reg"):
        fn.FeatureNet({**TINY, "n_reg": -1})
    with pytest.raises(ValueError, match="n_classes"):
        fn.FeatureNet({**TINY, "n_classes": 0})
    with pytest.raises(ValueError, match="unknown keys"):
        fn.FeatureNet({**TINY, "depth": 3})
    net = fn.FeatureNet(TINY, device="cpu")
    x = rng.standard_normal((7, 2, 9, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="max_batch"):
        net.forward(x)
    with pytest.raises(ValueError, match=r"\(B, 2, 9, 8\)"):
        net.forward(x[:, :1])
    with pytest.raises(ValueError, match="reg_target"):
        net.train_step(x[:4], np.zeros(4, int))
    with pytest.raises(ValueError, match="outside"):
        net.train_step(x[:4], np.array([0, 1, 3, 0]), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="B >= 2"):  # one value per channel: no batch statistics
        fn.FeatureNet({**TINY, "in_shape": (2, 3, 3), "blocks": [(3, 3, 3, 1, 1, 0, 0)]}, device="cpu").forward(
            x[:1, :, :3, :3], train=True)
    with pytest.raises(TypeError, match="handle"):
        lib.featnet_forward(object(), x, None, None, None, False)
    assert len(net.features(rng.standard_normal((15, 2, 9, 8)))) == 15  # any N, max_batch at a time


# ---- the shipped reference networks --------------------------------------------------
@pytest.mark.parametrize("modality", ["velocity", "seismic"])
def test_reference_networks_load_with_version_and_accuracy(modality):
    net = fn.load_reference(modality)
    assert fn.load_reference(modality) is net  # cached
    info = fn.reference_info(modality)
    assert info["version"] == fn.REFERENCE_VERSION and info["name"] == f"ubdiff-featnet-{modality}-v1"
    assert net.meta["version"] == fn.REFERENCE_VERSION and net.meta["modality"] == modality
    assert net.feature_dim == 128 and net.n_params < 1_000_000
    # the recipe's held-out accuracy (10 families, chance 0.1), recorded when the weights were built
    assert info["heldout_accuracy"] > (0.8 if modality == "velocity" else 0.4)
    assert net.meta["recipe"]["seed"] == 20250101


def test_reference_velocity_fid_separates_families():
    from ubdiff.data import generate_velocity
    from ubdiff.metrics import extract_features, fid, fid_from_features, kid_from_features
    a1 = generate_velocity("flatvel-a", 150, seed=101)
    a2 = generate_velocity("flatvel-a", 150, seed=102)
    c = generate_velocity("curvefault-b", 150, seed=103)
    f1, f2, fc = (extract_features(v) for v in (a1, a2, c))  # features=None: the reference network
    same, cross = fid_from_features(f1, f2), fid_from_features(f1, fc)
    assert same < 0.2 * cross, (same, cross)
    k_same = kid_from_features(f1, f2, subsets=20, subset_size=100)
    k_cross = kid_from_features(f1, fc, subsets=20, subset_size=100)
    assert k_same.mean < 0.2 * k_cross.mean
    # fid() with features=None and with the network passed as a callable: the same numbers
    net = fn.load_reference("velocity")
    assert fid(a1[:40], c[:40]) == pytest.approx(fid(a1[:40], c[:40], features=net.features), rel=1e-9)
    from ubdiff.data import normalize_velocity
    # (batches of other sizes may round differently: GEMM blocking depends on the batch)
    assert_close(f1, net.features(normalize_velocity(a1)), rtol=1e-5, atol=1e-6, what="features")


def test_reference_seismic_adapter_subsamples_time(rng):
    from ubdiff.metrics import default_features
    f = default_features("seismic")
    x = rng.uniform(-1, 1, (3, 5, 1000, 70)).astype(np.float32)
    net = fn.load_reference("seismic")
    assert np.array_equal(f(x), net.features(np.ascontiguousarray(x[:, :, ::4])))
    assert np.array_equal(f(x[:, :, ::4]), net.features(x[:, :, ::4]))
    with pytest.raises(ValueError, match="integer multiple of 250"):
        f(x[:, :, :999])
    with pytest.raises(ValueError, match=r"expected \(B, 5, nt, 70\) records"):
        f(x[:, :, :, :60])


@pytest.mark.slow
def test_reference_seismic_fid_separates_families():
    """Simulated records at reduced count (30 maps per set; ~20 s of forward modelling)."""
    from ubdiff.data import generate_velocity
    from ubdiff.metrics import fid
    from ubdiff.physics import forward_model
    sets = [generate_velocity(f, 30, seed=s) for f, s in (("flatvel-a", 201), ("flatvel-a", 202),
                                                          ("curvefault-b", 203))]
    s1, s2, s3 = (forward_model(v) for v in sets)
    kw = dict(modality="seismic", dataset="flatvel-a")
    same, cross = fid(s1, s2, **kw), fid(s1, s3, **kw)
    assert same < 0.5 * cross, (same, cross)


def test_feature_network_info_names_the_version():
    from ubdiff.metrics import feature_network_info
    info = feature_network_info("velocity")
    assert info["name"] == "ubdiff-featnet-velocity-v1" and info["version"] == 1
    assert "not the paper" in info["note"]
    assert feature_network_info("velocity", np.mean)["version"] is None


def test_cli_report_names_the_feature_network(tmp_path):
    import argparse
    import json

    from ubdiff import cli_evaluate
    from ubdiff.data import generate_velocity
    for name, seed in (("gen", 1), ("real", 2)):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "model1.npy", generate_velocity("flatvel-a", 12, seed=seed))
    parser = argparse.ArgumentParser()
    cli_evaluate.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evaluate", "--generated", str(tmp_path / "gen"), "--real", str(tmp_path / "real"),
                              "--out", str(tmp_path / "rep"), "--skip-physics"])
    assert args.func(args) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    v = rep["fid_kid"]["velocity"]
    assert v["features"] == "ubdiff-featnet-velocity-v1" and v["feature_network"]["version"] == 1
    assert v["fid"] >= 0 and v["feature_dim"] == 128
    assert "ubdiff-featnet-velocity-v1" in (tmp_path / "rep" / "report.md").read_text()
