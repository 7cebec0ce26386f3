"""Co-latent autoencoder: parameter table and counts, forward against a NumPy
reference, full-model gradient check, training modes, freezing, errors."""
import numpy as np
import pytest
from ae_reference import decode_seismic, decode_velocity, encode, loss
from gradcheck import assert_close

from ubdiff import get_num_threads, set_num_threads
from ubdiff.models import ae_spec
from ubdiff.models.autoencoder import CoLatentAutoencoder

# Tiny but complete: every layer of every part, 70x70 velocity maps, a short record.
TINY = dict(dim1=2, dim2=3, dim3=4, dim4=4, latent=3, head_width=2, dd_v=1, shots=2, nt=6, nr=5, heads=2, depth=2,
            mlp_hidden=6, max_batch=4)
# Small enough to train 30 steps in well under a second per mode.
MINI = dict(dim1=4, dim2=4, dim3=8, dim4=8, latent=8, head_width=4, shots=2, nt=12, nr=10, heads=2, depth=1,
            mlp_hidden=16, max_batch=4)


@pytest.fixture(autouse=True)
def one_thread():
    """The test models are tiny: threads gain nothing, and on a shared machine
    every OpenMP barrier may wait a scheduler time slice for a descheduled
    thread (measured: 4.7 ms a step on 1 thread, up to 470 ms on 2). Threads
    are compared explicitly in test_threads_do_not_change_results."""
    n = get_num_threads()
    set_num_threads(1)
    yield
    set_num_threads(n)


def AE(config, **kw):
    """The model, pinned to the CPU: these tests use zero-copy views, which a
    GPU model has not (on a GPU machine "auto" would pick cuda). The devices
    are tested in test_autoencoder_device.py."""
    return CoLatentAutoencoder(config, device="cpu", **kw)


def data(rng, cfg, B):
    """Smooth-ish normalised velocity maps and records in [-1, 1]."""
    yy = np.linspace(0, 1, 70)[None, :, None]
    vel = np.tanh(rng.standard_normal((B, 1, 1, 1)) + 2 * yy * rng.uniform(0.5, 1.5, (B, 1, 1, 1))
                  + 0.1 * rng.standard_normal((B, 1, 70, 70))).astype(np.float32)
    seis = np.tanh(rng.standard_normal((B, cfg["shots"], cfg["nt"], cfg["nr"]))).astype(np.float32)
    return vel, seis


# ---- parameter table ----------------------------------------------------------


def test_paper_counts_exact():
    c = ae_spec.count_parameters("paper")
    for k, v in ae_spec.PAPER_COUNTS.items():
        assert c[k] == v, (k, c[k], v)
    # the unused classifier head (640 -> 1000) would add 641,000
    assert c["total"] + 641_000 == 241_716_187


def test_paper_names_follow_vsnet_state_dict():
    spec = ae_spec.spec("paper")
    shapes = {n: s for n, s, _, _ in spec["params"]}
    assert shapes["encoder.convBlock1_1.layers.0.weight"] == (32, 1, 1, 1)
    assert shapes["encoder.convBlock8.layers.0.weight"] == (128, 256, 3, 3)
    assert shapes["fc_v.weight"] == (128, 128) and shapes["fc_s.weight"] == (640, 128)
    assert shapes["batch_norm_s.weight"] == (640,)
    assert shapes["decoder_v.deconvBlock1_1.layers.0.weight"] == (128, 128, 5, 5)  # ConvTranspose (in, out, k, k)
    assert shapes["decoder_v.deconvBlock2_1.layers.0.weight"] == (128, 256, 4, 4)
    assert shapes["decoder_v.deconvBlock6.layers.0.weight"] == (1, 32, 3, 3)
    assert shapes["decoder_s.decoder.patch_embed.proj.weight"] == (640, 640, 1, 1)
    assert shapes["decoder_s.decoder.cls_token"] == (1, 1, 640)
    assert shapes["decoder_s.decoder.pos_embed"] == (1, 2, 640)
    assert shapes["decoder_s.decoder.blocks.1.attn.qkv.weight"] == (1920, 640)
    assert shapes["decoder_s.decoder.blocks.1.mlp.fc1.weight"] == (3200, 640)
    assert shapes["decoder_s.mlp.weight"] == (350000, 640)
    assert not any(n.startswith("decoder_s.decoder.head") for n in shapes)
    bufs = {n for n, _, _ in spec["buffers"]}
    assert "encoder.convBlock1_1.layers.1.running_mean" in bufs
    assert "batch_norm_v.num_batches_tracked" in bufs
    assert len(bufs) == 3 * (15 + 11 + 2)  # every BatchNorm: mean, var, count


def test_groups_contiguous_in_order():
    spec = ae_spec.spec("small")
    groups = spec["groups"]
    assert [g for g, _, _ in groups] == list(ae_spec.GROUPS)
    end = 0
    for g, off, n in groups:
        assert off == end and n > 0
        end = off + n
    for name, shape, off, g in spec["params"]:
        goff, gn = next((o, n) for gg, o, n in groups if gg == g)
        assert goff <= off < goff + gn, name


def test_small_config_and_overrides():
    c = ae_spec.make_config("small", max_batch=3)
    assert c["nt"] == 250 and ae_spec.time_stride(c) == 4 and c["max_batch"] == 3
    assert ae_spec.make_config({"nt": 200})["dim1"] == 32
    n = ae_spec.count_parameters("small")["total"]
    assert 5e6 < n < 1e7, n
    with pytest.raises(ValueError, match="unknown"):
        ae_spec.make_config("small", width=3)
    with pytest.raises(ValueError, match="unknown autoencoder config"):
        ae_spec.make_config("huge")


def test_torch_aliases():
    a = ae_spec.torch_aliases(TINY)
    assert a["encoder.module_list1.0.layers.0.weight"] == "encoder.convBlock1_1.layers.0.weight"
    assert a["encoder.module_list2.4.layers.1.running_var"] == "encoder.convBlock8.layers.1.running_var"
    assert a["decoder_v.blocks.9.layers.0.bias"] == "decoder_v.deconvBlock5_2.layers.0.bias"


# ---- model: init, views, forward ------------------------------------------------


def test_init_pytorch_defaults_and_seeded():
    m = AE(TINY, seed=3)
    assert m.num_parameters() == ae_spec.count_parameters(TINY)["total"]
    w = m.parameter("encoder.convBlock1_2.layers.0.weight")  # fan_in 2*3*3
    assert np.abs(w).max() <= 1 / np.sqrt(18) and np.abs(w).max() > 0.5 / np.sqrt(18)
    wt = m.parameter("decoder_v.deconvBlock2_1.layers.0.weight")  # ConvTranspose: fan_in = out*k*k
    assert np.abs(wt).max() <= 1 / np.sqrt(4 * 16)
    assert (m.parameter("batch_norm_s.weight") == 1).all() and (m.parameter("batch_norm_s.bias") == 0).all()
    assert (m.parameter("decoder_s.decoder.cls_token") == 0).all()
    assert (m.buffer("batch_norm_v.running_var") == 1).all()
    again = AE(TINY, seed=3)
    other = AE(TINY, seed=4)
    assert np.array_equal(m.flat(), again.flat())
    assert not np.array_equal(m.flat(), other.flat())


def test_views_zero_copy_and_outlive_model():
    m = AE(TINY)
    w = m.parameter("fc_s.bias")
    w[:] = 0.5
    flat = m.flat()
    sl = m.group_slice("head_s")
    assert np.shares_memory(w, flat) and (flat[sl] == 0.5).sum() == w.size
    m.free()
    with pytest.raises(RuntimeError, match="freed"):
        m.encode(np.zeros((2, 1, 70, 70)))
    assert (w == 0.5).all()  # the view keeps the memory alive


def randomise_for_eval(m, rng):
    """Non-trivial norms and running statistics, so the reference checks their use."""
    for n, v in m.named_parameters().items():
        if v.ndim == 1 and ("layers.1" in n or "batch_norm" in n or "norm" in n):
            v[:] = rng.uniform(0.5, 1.5, v.shape) if n.endswith("weight") else rng.uniform(-0.3, 0.3, v.shape)
        if n.endswith("cls_token") or n.endswith("pos_embed"):
            v[:] = rng.standard_normal(v.shape)
    for n, v in m.named_buffers().items():
        if n.endswith("running_mean"):
            v[:] = rng.uniform(-0.2, 0.2, v.shape)
        elif n.endswith("running_var"):
            v[:] = rng.uniform(0.5, 2.0, v.shape)


def test_forward_matches_numpy_reference(rng):
    m = AE(TINY, seed=1)
    randomise_for_eval(m, rng)
    P = {**{n: v.astype(np.float64) for n, v in m.named_parameters().items()},
         **{n: v.astype(np.float64) for n, v in m.named_buffers().items()}}
    vel, _ = data(rng, TINY, 3)
    z = m.encode(vel)
    # float32 core vs float64 reference through ~15 layers: rtol/atol 1e-4 covers the rounding
    assert_close(z, encode(P, vel), rtol=1e-4, atol=1e-4, what="z")
    zin = rng.uniform(-1, 1, (3, TINY["latent"])).astype(np.float32)
    v, s = m.decode(zin)
    assert v.shape == (3, 1, 70, 70) and s.shape == (3, 2, 6, 5)
    assert_close(v, decode_velocity(P, zin.astype(np.float64)), rtol=1e-4, atol=1e-4, what="velocity")
    assert_close(s, decode_seismic(P, zin.astype(np.float64), TINY), rtol=1e-4, atol=1e-4, what="seismic")
    v2, s2 = m.decode(zin, seismic=False)
    assert s2 is None and np.array_equal(v, v2)


def test_training_losses_match_numpy_reference(rng):
    """Training mode: BatchNorm on batch statistics everywhere (incl. the heads'
    BatchNorm over the batch only), loss = (L1 + MSE)_v + (2 L1 + 0.5 MSE)_s."""
    m = AE(TINY, seed=4)
    randomise_for_eval(m, rng)
    P = {**{n: v.astype(np.float64) for n, v in m.named_parameters().items()},
         **{n: v.astype(np.float64) for n, v in m.named_buffers().items()}}
    vel, seis = data(rng, TINY, 4)
    r = m.forward_backward(vel, seis, mode="wo_opt", gammas=(1, 1, 2, 0.5))
    z = encode(P, vel, train=True)
    lv = loss(decode_velocity(P, z, train=True), vel)
    ls = loss(decode_seismic(P, z, TINY, train=True), seis, 2, 0.5)
    assert r["velocity"] == pytest.approx(lv, rel=1e-4)
    assert r["seismic"] == pytest.approx(ls, rel=1e-4)
    assert r["total"] == pytest.approx(lv + ls, rel=1e-4)


def test_small_forward_shapes(rng):
    m = AE("small", max_batch=2)
    vel, seis = data(rng, m.config, 2)
    z = m.encode(vel)
    assert z.shape == (2, 32) and np.all(np.abs(z) < 1)
    v, s = m.decode(z)
    assert v.shape == (2, 1, 70, 70) and s.shape == (2, 5, 250, 70)
    assert np.all(np.abs(v) < 1) and np.isfinite(s).all()


# ---- gradients -------------------------------------------------------------------


def smooth_regime(m, rng):
    """Moves the tiny model away from kinks and singular points, so that
    central differences measure the derivative (not a kink crossed by the step):
    - BatchNorm betas of the ReLU/LeakyReLU blocks = 4, so practically every
      pre-activation is positive (a ReLU kink crossed at eps = 1e-3 changes the
      difference quotient by O(1) in a 2-channel network);
    - class token and position embedding random (at their zero init the class
      token's LayerNorm sees a constant row: rstd = 1/sqrt(1e-6));
    - the first 1x1 conv's weights away from 0 (its BN divides by |w|).
    The Tanh blocks keep beta ~ 0 (saturation would hide their gradients)."""
    for n, v in m.named_parameters().items():
        if (n.endswith("layers.1.bias") or n.startswith("batch_norm")) and n.endswith("bias") \
                and "convBlock8" not in n and "deconvBlock6" not in n:
            v[:] = 4.0
        if n.endswith(("cls_token", "pos_embed")):
            v[:] = rng.standard_normal(v.shape)
    w = m.parameter("encoder.convBlock1_1.layers.0.weight")
    w[:] = np.sign(w) * np.maximum(np.abs(w), 0.5)


def test_full_model_gradcheck(rng):
    """d total loss / d parameter by central differences, for 2 entries of EVERY
    tensor (E, heads, D_v, D_s, all BN and LN gammas/betas, class token, ...),
    in mode wo_opt (both losses, every group).

    float32: the loss (~3) is summed in double, its rounding noise is ~1e-7
    relative, so with eps = 1e-3 the difference quotient carries ~1e-3 noise
    plus O(eps^2) truncation; hence atol 1e-3 + rtol 2e-2 (gradients here are
    1e-3 .. 10). See smooth_regime for why the model is moved off its kinks.
    """
    m = AE(TINY, seed=2)
    smooth_regime(m, rng)
    vel, seis = data(rng, TINY, 4)
    m.forward_backward(vel, seis, mode="wo_opt")
    grads = {n: g.copy() for n, g in m.named_parameters("grad").items()}
    eps = 1e-3
    checked = 0
    for name, p in m.named_parameters().items():
        flat = p.reshape(-1)
        for i in rng.choice(flat.size, size=min(2, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + eps
            lp = m.forward_backward(vel, seis, mode="wo_opt")["total"]
            flat[i] = old - eps
            lm = m.forward_backward(vel, seis, mode="wo_opt")["total"]
            flat[i] = old
            num = (lp - lm) / (2 * eps)
            ana = grads[name].reshape(-1)[i]
            assert abs(num - ana) <= 1e-3 + 2e-2 * abs(num), f"{name}[{i}]: numeric {num:.6g} vs analytic {ana:.6g}"
            checked += 1
    assert checked > 100
    # every group received gradient
    for g in ae_spec.GROUPS:
        assert np.abs(m.flat("grad")[m.group_slice(g)]).max() > 0, g


def test_threads_do_not_change_results(rng):
    m = AE(MINI, seed=5)
    vel, seis = data(rng, MINI, 3)
    out = []
    for t in (1, 2):
        set_num_threads(t)
        loss = m.forward_backward(vel, seis, mode="wo_opt")["total"]
        out.append((loss, m.flat("grad").copy()))
    assert abs(out[0][0] - out[1][0]) < 1e-5
    assert_close(out[0][1], out[1][1], rtol=1e-3, atol=1e-5, what="grad 1 vs 2 threads")


# ---- training modes ------------------------------------------------------------


@pytest.mark.parametrize("mode,freeze,key", [("step1", False, "velocity"), ("step2", False, "total"),
                                             ("step2", True, "seismic"), ("wo_opt", False, "total")])
def test_loss_decreases(rng, mode, freeze, key):
    m = AE(MINI, seed=0)
    vel, seis = data(rng, MINI, 4)
    losses = [m.train_step(vel, seis if mode != "step1" else None, mode=mode, freeze=freeze, lr=3e-3)[key]
              for _ in range(30)]
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0], losses


def test_modes_report_their_losses(rng):
    m = AE(MINI)
    vel, seis = data(rng, MINI, 2)
    r = m.train_step(vel, mode="step1")
    assert np.isnan(r["seismic"]) and r["total"] == pytest.approx(r["velocity"])
    assert r["velocity"] == pytest.approx(r["l1_v"] + r["mse_v"], rel=1e-5)
    r = m.train_step(vel, seis, mode="step2", freeze=True)
    assert np.isnan(r["velocity"]) and r["total"] == pytest.approx(r["seismic"])
    r = m.train_step(vel, seis, mode="step2", gammas=(1, 0, 2, 0))
    assert r["velocity"] == pytest.approx(r["l1_v"]) and r["seismic"] == pytest.approx(2 * r["l1_s"], rel=1e-6)
    assert r["total"] == pytest.approx(r["velocity"] + r["seismic"], rel=1e-6)
    assert m.optimizer_steps() == {"encoder": 2, "head_v": 2, "decoder_v": 2, "head_s": 2, "decoder_s": 2}


def test_freeze_keeps_velocity_path_bit_identical(rng):
    m = AE(MINI, seed=1)
    vel, seis = data(rng, MINI, 4)
    for _ in range(2):
        m.train_step(vel, mode="step1", lr=1e-3)  # non-trivial running statistics and Adam state
    frozen = [g for g in ("encoder", "head_v", "decoder_v")]
    before_p = {g: m.flat()[m.group_slice(g)].copy() for g in ae_spec.GROUPS}
    before_b = {n: v.copy() for n, v in m.named_buffers().items()}
    for _ in range(3):
        m.train_step(vel, seis, mode="step2", freeze=True, lr=1e-3)
    for g in frozen:
        assert np.array_equal(m.flat()[m.group_slice(g)].view(np.uint32), before_p[g].view(np.uint32)), g
    for n, v in m.named_buffers().items():
        if n.startswith(("encoder.", "batch_norm_v", "decoder_v.")):
            assert np.array_equal(v.view(np.uint32), before_b[n].view(np.uint32)), n
    for g in ("head_s", "decoder_s"):
        assert not np.array_equal(m.flat()[m.group_slice(g)], before_p[g]), g
    assert not np.array_equal(m.buffer("batch_norm_s.running_mean"), before_b["batch_norm_s.running_mean"])
    assert m.optimizer_steps()["encoder"] == 2 and m.optimizer_steps()["decoder_s"] == 3


def test_training_is_reproducible(rng):
    vel, seis = data(rng, MINI, 3)
    a, b = AE(MINI, seed=7), AE(MINI, seed=7)
    for m in (a, b):
        for _ in range(2):
            m.train_step(vel, seis, mode="wo_opt", lr=1e-3)
    assert np.array_equal(a.flat(), b.flat()) and np.array_equal(a.flat("buf"), b.flat("buf"))
    assert np.array_equal(a.flat("m"), b.flat("m")) and np.array_equal(a.flat("v"), b.flat("v"))


def test_encode_training_mode_updates_statistics(rng):
    m = AE(TINY)
    vel, _ = data(rng, TINY, 3)
    before = m.buffer("encoder.convBlock8.layers.1.running_mean").copy()
    z_eval = m.encode(vel)
    assert np.array_equal(m.buffer("encoder.convBlock8.layers.1.running_mean"), before)
    z_train = m.encode(vel, training=True)
    assert not np.array_equal(m.buffer("encoder.convBlock8.layers.1.running_mean"), before)
    assert m.buffer("encoder.convBlock8.layers.1.num_batches_tracked")[0] == 1
    assert not np.allclose(z_eval, z_train)
    with pytest.raises(ValueError, match="at least 2"):
        m.encode(vel[:1], training=True)


def test_step1_leaves_seismic_parameters_untouched(rng):
    m = AE(MINI, seed=1)
    vel, _ = data(rng, MINI, 2)
    s0 = m.flat()[m.group_slice("decoder_s")].copy()
    h0 = m.flat()[m.group_slice("head_s")].copy()
    bn = m.buffer("batch_norm_s.running_var").copy()
    m.train_step(vel, mode="step1")
    assert np.array_equal(m.flat()[m.group_slice("decoder_s")], s0)
    assert np.array_equal(m.flat()[m.group_slice("head_s")], h0)
    # batch_norm_s's running statistics do move, as in the authors' full forward
    # (values checked against NumPy in test_training_rules.py)
    assert not np.array_equal(m.buffer("batch_norm_s.running_var"), bn)


def test_state_dict_roundtrip(rng):
    a = AE(TINY, seed=1)
    vel, seis = data(rng, TINY, 2)
    a.train_step(vel, seis, mode="wo_opt")
    sd = a.state_dict()
    assert sd["batch_norm_v.num_batches_tracked"] == 1
    # the authors' duplicate keys are accepted
    sd["encoder.module_list1.0.layers.0.weight"] = sd["encoder.convBlock1_1.layers.0.weight"]
    b = AE(TINY, seed=9)
    b.load_state_dict(sd)
    z = rng.uniform(-1, 1, (2, TINY["latent"])).astype(np.float32)
    for x, y in zip(a.decode(z), b.decode(z)):
        assert np.array_equal(x, y)
    with pytest.raises(KeyError):
        b.load_state_dict({"nonsense": np.zeros(1)})


def test_checkpoint_save_load_identical(rng, tmp_path):
    a = AE(MINI, seed=1)
    vel, seis = data(rng, MINI, 3)
    a.train_step(vel, seis, mode="wo_opt", lr=1e-3)
    path = str(tmp_path / "ae.safetensors")
    a.save(path, meta={"epoch": 3})
    b = CoLatentAutoencoder.load(path, device="cpu")
    assert b.meta == {"epoch": 3} and b.config == a.config
    assert b.optimizer_steps() == a.optimizer_steps()
    z = rng.uniform(-1, 1, (3, MINI["latent"])).astype(np.float32)
    for x, y in zip(a.decode(z), b.decode(z)):
        assert np.array_equal(x, y)
    # training continues identically: parameters, statistics and Adam state restored
    ra = a.train_step(vel, seis, mode="wo_opt", lr=1e-3)
    rb = b.train_step(vel, seis, mode="wo_opt", lr=1e-3)
    assert ra == rb and np.array_equal(a.flat(), b.flat())
    c = CoLatentAutoencoder.load(path, device="cpu", max_batch=2)  # sizes without parameters may change
    assert c.config["max_batch"] == 2
    with pytest.raises(ValueError):
        CoLatentAutoencoder.load(path, device="cpu", dim1=5)  # the saved tensors do not fit


# ---- errors --------------------------------------------------------------------


def test_bad_inputs_raise(rng):
    m = AE(TINY)
    vel, seis = data(rng, TINY, 2)
    with pytest.raises(ValueError, match="70"):
        m.encode(np.zeros((2, 1, 64, 64)))
    with pytest.raises(ValueError, match="max_batch"):
        m.encode(np.zeros((5, 1, 70, 70)))
    with pytest.raises(ValueError, match="max_batch"):
        m.train_step(np.zeros((5, 1, 70, 70)), mode="step1")
    with pytest.raises(ValueError, match="at least 2"):
        m.train_step(vel[:1], mode="step1")
    with pytest.raises(ValueError, match="seis"):
        m.train_step(vel, seis[:, :, :3], mode="step2")
    with pytest.raises(ValueError, match="needs seismic"):
        m.train_step(vel, mode="wo_opt")
    with pytest.raises(ValueError, match="mode"):
        m.train_step(vel, seis, mode="step3")
    with pytest.raises(ValueError, match="z must be"):
        m.decode(np.zeros((2, 7)))
    with pytest.raises(KeyError):
        m.parameter("encoder.nope")
    with pytest.raises(ValueError, match="kind"):
        m.parameter("fc_v.weight", "adam")
    # raw binding: shapes are checked there too
    from ubdiff._native import lib
    with pytest.raises(ValueError):
        lib.ae_encode(m._h, np.zeros((2, 4), np.float32), np.zeros((2, 1, 70, 70), np.float32))
    with pytest.raises(TypeError):
        lib.ae_encode(object(), np.zeros((2, 3), np.float32), np.zeros((2, 1, 70, 70), np.float32))


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="divisible"):
        AE(TINY, heads=3)
    with pytest.raises(ValueError, match="positive"):
        AE(TINY, nt=0)
    with pytest.raises(TypeError, match="int"):
        AE(TINY, nt=2.5)


# ---- the paper model, once ------------------------------------------------------


@pytest.mark.slow
def test_paper_model_allocates_and_runs(rng):
    """~4 GB (params, grads, Adam m and v); one forward and one step at batch 2."""
    m = AE("paper", max_batch=2)
    assert m.num_parameters() == ae_spec.PAPER_COUNTS["total"]
    for g in ae_spec.GROUPS:
        assert m.num_parameters(g) == ae_spec.PAPER_COUNTS[g]
    vel, seis = data(rng, m.config, 2)
    z = m.encode(vel)
    v, s = m.decode(z)
    assert v.shape == (2, 1, 70, 70) and s.shape == (2, 5, 1000, 70)
    assert np.isfinite(v).all() and np.isfinite(s).all()
    r = m.train_step(vel, seis, mode="step2", freeze=False)
    assert np.isfinite(r["total"])
