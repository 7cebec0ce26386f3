"""The seismic encoder of the baselines (csrc/models/seis_encoder.h): its layer
table and parameter count, the NumPy reference of its forward pass, finite-
difference gradients, AdamW, threads, devices, checkpoints, bad input."""
import numpy as np
import pytest

import invnet_reference as ref
import ubdiff
from cuda_util import assert_gpu_matches_cpu, requires_gpu
from gradcheck import assert_close
from ubdiff import checkpoint
from ubdiff._native import lib
from ubdiff.models import inversionnet
from ubdiff.models.seis_encoder import (PAPER_NUM_PARAMETERS, SeismicEncoder, config_for_autoencoder,
                                        count_parameters, layout)

# InversionNet's tiny test input (tests/test_inversionnet.py): 32 samples x 8 receivers
# reach convblock8 as a 1 x 1 map; 4 channels of latent
TINY = {"base": "small", "dims": (2, 3, 4, 4), "latent": 4, "nt": 32, "nx": 8}
SHAPE = (5, 32, 8)
DEVICES = ["cpu", pytest.param("cuda", marks=requires_gpu)]


@pytest.fixture(autouse=True)
def one_thread():
    """One thread (the shared test machine is oversubscribed); test_threads_agree covers 2."""
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


def records(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, *SHAPE)).astype(np.float32)


def ref_blocks(config):
    """The encoder's blocks in invnet_reference's format (no transposed convs, no crops)."""
    return [(b[0], 0, *b[1:], 0) for b in layout(config)[2]]


# ---- the table -------------------------------------------------------------------------
# (name, C, OC, H, W, KH, KW, SH, SW, PH, PW, OH, OW, act) of the paper configuration: the table in
# csrc/models/seis_encoder.h, written out by hand from OpenFWI's network.py (InversionNet's encoder)
PAPER_TABLE = [
    ("convblock1", 5, 32, 1000, 70, 7, 1, 2, 1, 3, 0, 500, 70, "leaky_relu"),
    ("convblock2_1", 32, 64, 500, 70, 3, 1, 2, 1, 1, 0, 250, 70, "leaky_relu"),
    ("convblock2_2", 64, 64, 250, 70, 3, 1, 1, 1, 1, 0, 250, 70, "leaky_relu"),
    ("convblock3_1", 64, 64, 250, 70, 3, 1, 2, 1, 1, 0, 125, 70, "leaky_relu"),
    ("convblock3_2", 64, 64, 125, 70, 3, 1, 1, 1, 1, 0, 125, 70, "leaky_relu"),
    ("convblock4_1", 64, 128, 125, 70, 3, 1, 2, 1, 1, 0, 63, 70, "leaky_relu"),
    ("convblock4_2", 128, 128, 63, 70, 3, 1, 1, 1, 1, 0, 63, 70, "leaky_relu"),
    ("convblock5_1", 128, 128, 63, 70, 3, 3, 2, 2, 1, 1, 32, 35, "leaky_relu"),
    ("convblock5_2", 128, 128, 32, 35, 3, 3, 1, 1, 1, 1, 32, 35, "leaky_relu"),
    ("convblock6_1", 128, 256, 32, 35, 3, 3, 2, 2, 1, 1, 16, 18, "leaky_relu"),
    ("convblock6_2", 256, 256, 16, 18, 3, 3, 1, 1, 1, 1, 16, 18, "leaky_relu"),
    ("convblock7_1", 256, 256, 16, 18, 3, 3, 2, 2, 1, 1, 8, 9, "leaky_relu"),
    ("convblock7_2", 256, 256, 8, 9, 3, 3, 1, 1, 1, 1, 8, 9, "leaky_relu"),
    ("convblock8", 256, 128, 8, 9, 8, 9, 1, 1, 0, 0, 1, 1, "tanh"),
]


def test_paper_layer_table_and_parameter_count():
    params, stats, blocks = layout("paper")
    assert [tuple(b) for b in blocks] == PAPER_TABLE
    # conv weight + bias + BatchNorm gamma + beta of every row
    by_hand = sum(C * OC * KH * KW + 3 * OC for _, C, OC, _, _, KH, KW, *_ in PAPER_TABLE)
    assert by_hand == PAPER_NUM_PARAMETERS == 4_842_304 == count_parameters("paper")
    assert SeismicEncoder("small", max_batch=2, device="cpu").num_parameters() == count_parameters("small")
    assert params[0][0] == "convblock1.layers.0.weight" and params[0][1] == (32, 5, 7, 1)
    assert len(params) == 4 * 14 and len(stats) == 2 * 14


def test_blocks_are_inversionnets_encoder():
    """Not a copy: the same rows as InversionNet's layout for dim5 = latent, only convblock8's activation differs."""
    ours = layout("paper")[2]
    inv = inversionnet.layout({"dims": (32, 64, 128, 256, 128)})[2][:14]
    for a, b in zip(ours, inv):
        assert a[0] == b[0] and tuple(a[1:13]) == tuple(b[2:14]) and b[1] == 0 and b[15] == 0
        assert a[13] == (b[14] if a[0] != "convblock8" else "tanh")


def test_matches_the_autoencoder_configs():
    from ubdiff.models.ae_spec import PAPER, SMALL
    for ae, preset in ((PAPER, "paper"), (SMALL, "small")):
        cfg = config_for_autoencoder(ae)
        assert count_parameters(cfg) == count_parameters(preset)
        assert cfg["latent"] == ae["latent"] and cfg["nt"] == ae["nt"]


# ---- forward, backward -------------------------------------------------------------------
def test_forward_matches_numpy_reference():
    """Training and eval forward (running statistics included) against the float64 reference."""
    m = SeismicEncoder(TINY, seed=3, max_batch=4, device="cpu")
    x = records(4, seed=1)
    P = {n: v.astype(np.float64) for n, v in m.parameters().items()}
    S = {n: v.astype(np.float64) for n, v in m.buffers().items()}
    z_ref, new_stats, _ = ref.forward(P, S, ref_blocks(TINY), x, train=True)
    z = m.encode(x, training=True)
    assert z.shape == (4, 4) and np.all(np.abs(z) < 1)
    assert_close(z, z_ref.reshape(4, 4), rtol=1e-4, atol=1e-5, what="training forward")
    for n, v in new_stats.items():
        assert_close(m.buffers()[n], v, rtol=1e-4, atol=1e-6, what=n)
    S = {n: v.astype(np.float64) for n, v in m.buffers().items()}
    z_eval_ref, _, _ = ref.forward(P, S, ref_blocks(TINY), x, train=False)
    assert_close(m.encode(x), z_eval_ref.reshape(4, 4), rtol=1e-4, atol=1e-5, what="eval forward")


def test_gradients_finite_difference():
    """C gradients of sum(z * dz) (training mode, batch 4) against central differences of the
    float64 reference with its LeakyReLU masks frozen at the point (smooth there; see
    test_inversionnet.test_gradients_finite_difference for why), eps 1e-4. The C side carries
    float32 rounding through 14 blocks: rtol = atol = 2e-3; a wrong term is off by O(1)."""
    m = SeismicEncoder(TINY, seed=1, max_batch=4, device="cpu")
    x = records(4, seed=2)
    dz = np.random.default_rng(3).standard_normal((4, 4))
    m.zero_grad()
    m.encode(x, training=True)
    m.backward(dz.astype(np.float32), x)
    grads = m.gradients()
    blocks = ref_blocks(TINY)
    P = {n: v.astype(np.float64) for n, v in m.parameters().items()}
    S = {n: v.astype(np.float64) for n, v in m.buffers().items()}
    _, _, masks = ref.forward(P, S, blocks, x, train=True)

    def objective():
        return float(np.sum(ref.forward(P, S, blocks, x, train=True, masks=masks)[0].reshape(4, 4) * dz))

    rng = np.random.default_rng(4)
    eps, checked = 1e-4, 0
    for name in m.parameter_names():
        p, g = P[name].reshape(-1), grads[name].reshape(-1)
        for i in rng.choice(p.size, size=min(2, p.size), replace=False):
            old = p[i]
            p[i] = old + eps
            fp = objective()
            p[i] = old - eps
            fm = objective()
            p[i] = old
            assert_close(g[i], (fp - fm) / (2 * eps), rtol=2e-3, atol=2e-3, what=f"{name}[{i}]")
            checked += 1
    assert checked == 2 * 56
    assert max(float(np.abs(v).max()) for v in grads.values()) > 1e-2  # not trivially zero


def test_backward_accumulates_and_needs_training_forward():
    m = SeismicEncoder(TINY, max_batch=4, device="cpu")
    x = records(4)
    dz = np.ones((4, 4), np.float32)
    m.zero_grad()
    m.encode(x, training=True)
    m.backward(dz, x)
    g1 = m.get_tensor(None, "grad")
    m.backward(dz, x)
    g2 = m.get_tensor(None, "grad")
    # += through sgemm with beta = 1 rounds in another order than 2 * g1: a few ulps of the largest
    # partial sum (as InversionNet's test)
    assert_close(g2, 2 * g1, rtol=1e-5, atol=1e-5 * float(np.abs(g1).max()), what="accumulated")
    m.encode(x, training=False)
    with pytest.raises(ValueError, match="training forward"):
        m.backward(dz, x)
    m.encode(x[:2], training=True)
    with pytest.raises(ValueError, match="training forward"):
        m.backward(dz, x)


def test_adamw_update_and_training_lowers_a_loss():
    """apply_update is AdamW (decoupled weight decay) on the whole buffer: the first step checked
    against NumPy; then 30 steps on a regression of z to fixed targets lower its loss."""
    m = SeismicEncoder(TINY, seed=2, max_batch=4, device="cpu")
    x = records(4, seed=5)
    target = np.random.default_rng(6).uniform(-0.8, 0.8, (4, 4)).astype(np.float32)
    p0 = m.get_tensor(None, "param").astype(np.float64)
    m.zero_grad()
    z = m.encode(x, training=True)
    m.backward(2 * (z - target) / z.size, x)
    g = m.get_tensor(None, "grad").astype(np.float64)
    lr, wd = 1e-2, 1e-4
    m.apply_update(lr=lr, weight_decay=wd)
    assert m.step == 1
    mh, vh = 0.1 * g / (1 - 0.9), 0.001 * g * g / (1 - 0.999)
    want = p0 * (1 - lr * wd) - lr * mh / (np.sqrt(vh) + 1e-8)
    assert_close(m.get_tensor(None, "param"), want, rtol=1e-4, atol=1e-6, what="AdamW step")
    losses = []
    for _ in range(30):
        m.zero_grad()
        z = m.encode(x, training=True)
        losses.append(float(np.mean((z - target) ** 2)))
        m.backward(2 * (z - target) / z.size, x)
        m.apply_update(lr=1e-2)
    assert losses[-1] < 0.5 * losses[0], losses


def test_same_bits_at_1_and_2_threads():
    """ubdiff splits the CPU products into single-threaded sgemm blocks by shape
    (csrc/cpu/gemm.c) and every other op of the encoder computes each output on one
    thread, so a training step gives the same bits at 1 and 2 threads (README,
    Reproducibility). The "small" model, whose convolutions are large enough to be split."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5, 250, 70)).astype(np.float32)
    out = []
    for t in (1, 2):
        ubdiff.set_num_threads(t)
        m = SeismicEncoder("small", seed=0, max_batch=2, device="cpu")
        m.zero_grad()
        z = m.encode(x, training=True)
        m.backward(z, x)
        g = m.get_tensor(None, "grad")
        m.apply_update(lr=1e-3)
        out.append((z, g, m.encode(x), m.get_tensor(None, "stats")))
    for a, b, what in zip(out[0], out[1], ("z", "grads", "z after a step", "statistics")):
        np.testing.assert_array_equal(a, b, err_msg=what)


# ---- devices and checkpoints -----------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES)
def test_device_matches_cpu(device):
    x = records(4, seed=8)
    dz = np.random.default_rng(9).standard_normal((4, 4)).astype(np.float32)
    res = {}
    for dev in ("cpu", device):
        m = SeismicEncoder(TINY, seed=4, max_batch=4, device=dev)
        assert m.device == dev
        m.zero_grad()
        z = m.encode(x, training=True)
        m.backward(dz, x)
        m.apply_update(lr=1e-3)
        res[dev] = (z, m.get_tensor(None, "grad"), m.encode(x), m.get_tensor(None, "stats"))
    for a, b, what in zip(res[device], res["cpu"], ("z", "grads", "z after a step", "statistics")):
        assert_gpu_matches_cpu(a, b, atol=1e-4, rtol=1e-3, what=what)


@pytest.mark.parametrize("device", DEVICES)
def test_save_load_roundtrip(tmp_path, device):
    x = records(4)
    m = SeismicEncoder(TINY, seed=7, max_batch=4, device=device)
    for _ in range(2):
        m.zero_grad()
        z = m.encode(x, training=True)
        m.backward(z, x)
        m.apply_update(lr=1e-3)
    m.save(tmp_path / "enc.safetensors")
    back = SeismicEncoder.load(tmp_path / "enc.safetensors", max_batch=4, device="cpu")
    assert back.step == 2 and back.config == m.config
    np.testing.assert_array_equal(back.encode(x), SeismicEncoder.load(tmp_path / "enc.safetensors", max_batch=4,
                                                                       device=device).encode(x))
    for kind in ("param", "m", "v", "stats"):
        np.testing.assert_array_equal(back.get_tensor(None, kind), m.get_tensor(None, kind))
    if device == "cpu":  # the same bits on the same machine: training continues exactly
        for mm in (m, back):
            mm.zero_grad()
            z = mm.encode(x, training=True)
            mm.backward(z, x)
            mm.apply_update(lr=1e-3)
        np.testing.assert_array_equal(back.get_tensor(None, "param"), m.get_tensor(None, "param"))
    inversionnet.InversionNet(inversionnet.resolve_config({"base": "small", "dims": (2, 3, 4, 4, 4), "nt": 32,
                                                           "nx": 8}), max_batch=1, device="cpu").save(
        tmp_path / "inv.safetensors")
    with pytest.raises(checkpoint.CheckpointError, match="expected 'seismic_encoder'"):
        SeismicEncoder.load(tmp_path / "inv.safetensors")


def test_bad_inputs():
    with pytest.raises(ValueError, match="unknown config"):
        SeismicEncoder("huge")
    with pytest.raises(ValueError, match="unknown config keys"):
        SeismicEncoder({"dim": 3})
    with pytest.raises(ValueError, match="dims must be 4"):
        SeismicEncoder({"dims": (1, 2, 3, 4, 5)})
    with pytest.raises(ValueError, match="latent must be a positive int"):
        SeismicEncoder({**TINY, "latent": 0})
    with pytest.raises(ValueError, match="device must be"):
        SeismicEncoder(TINY, device="gpu")
    with pytest.raises(ValueError, match="max_batch"):
        SeismicEncoder(TINY, max_batch=0)
    m = SeismicEncoder(TINY, max_batch=2, device="cpu")
    x = records(2)
    with pytest.raises(ValueError, match=r"seis must have shape \(B, 5, 32, 8\), got \(2, 5, 16, 8\)"):
        m.encode(x[:, :, :16])
    with pytest.raises(ValueError, match="1..2 \\(max_batch\\)"):
        m.encode(records(3))
    with pytest.raises(ValueError, match="at least 2"):
        m.encode(x[:1], training=True)
    with pytest.raises(TypeError, match="numeric"):
        m.encode(np.full((2, *SHAPE), "a"))
    with pytest.raises(ValueError, match="lr"):
        m.apply_update(lr=-1.0)
    assert m.step == 0
    m.encode(x, training=True)
    with pytest.raises(ValueError, match="dz"):
        m.backward(np.zeros((2, 5), np.float32), x)
    # the raw binding checks too
    with pytest.raises(TypeError, match="config"):
        lib.seisenc_create([2, 3], 0)
    with pytest.raises(ValueError, match="nt and nx must be positive"):
        lib.seisenc_layout(((2, 3, 4, 4), 4, 5, 0, 8, 1, 0.2, 0.1, 1e-5))
    with pytest.raises(ValueError, match="latent must be positive, got 0"):
        lib.seisenc_layout(((2, 3, 4, 4), 0, 5, 32, 8, 1, 0.2, 0.1, 1e-5))
    with pytest.raises(TypeError, match="SeismicEncoder model handle"):
        lib.seisenc_forward(object(), np.zeros((1, 4), np.float32), x[:1], False)
    with pytest.raises(ValueError, match="z_out"):
        lib.seisenc_forward(m._h, np.zeros((2, 5), np.float32), x, False)
