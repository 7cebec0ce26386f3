"""The 2-D U-Net (csrc/models/unet2d.h, ubdiff.models.UNet2D) on the CPU:
parameter table and counts against the module definition, forward against a
float64 NumPy reference (tests/unet2d_ref.py), a finite-difference gradient
check of the whole network, initialisation, training, checkpoints and errors.
Pinned to device="cpu" (views); tests/test_unet2d_device.py covers devices.

Tolerances: the C forward is float32 against a float64 reference; errors
grow with depth to about 1e-5 of the output scale, so outputs are compared
with atol 2e-4 + rtol 2e-4 (the 1-D U-Net's test uses the same). Gradients:
gradcheck.py's central differences (its docstring), eps 1e-2, in float64 sums.
"""
import math

import numpy as np
import pytest
from gradcheck import assert_close, central_difference
from unet2d_ref import padding, torch_keys, unet_forward

import ubdiff
from ubdiff._native import lib
from ubdiff.models.unet2d import PRESETS, UNet2D, count_parameters, layout, resolve_config

#: two levels, full attention at the lower one; 5 x 6 maps: padded to 6 x 6 (one row at the bottom)
TINY = {"dim": 4, "dim_mults": (1, 2), "full_attn": (False, True), "channels": 1, "height": 5, "width": 6,
        "groups": 2, "heads": 2, "dim_head": 3}
#: three levels (factor 4): 10 x 9 maps padded to 12 x 12 (rows 1 + 1, columns 1 + 2), two channels
REF = {"dim": 8, "dim_mults": (1, 2, 2), "full_attn": (False, False, True), "channels": 2, "height": 10,
       "width": 9, "groups": 4, "heads": 2, "dim_head": 8}


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: the shared test machine is oversubscribed; results are the same bits at any count."""
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(old)


def ref_keys(cfg):
    return torch_keys(cfg["dim"], cfg["dim_mults"], cfg["full_attn"], cfg["channels"], cfg["heads"],
                      cfg["dim_head"])


def ref_forward(m, x, t, weights="param"):
    c = m.config
    return unet_forward(m.state_dict(weights), x, t, c["dim"], c["dim_mults"], c["full_attn"], c["groups"],
                        c["heads"], c["dim_head"])


def inputs(rng, cfg, B, t=(3.0, 117.0, 250.0, 0.0)):
    x = rng.standard_normal((B, cfg["channels"], cfg["height"], cfg["width"])).astype(np.float32)
    return x, np.asarray(t[:B], np.float32)


def perturb(m, rng, scale=0.2):
    """Moves every parameter off its initial value (GroupNorm/RMSNorm gains 1, biases 0 would hide
    mistakes that multiply by them)."""
    for name, v in m.parameters().items():
        v += (scale * rng.standard_normal(v.shape)).astype(np.float32)


# ---- the table ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", ["paper", "small", TINY, REF])
def test_parameter_table_is_the_module_state_dict(cfg):
    params, _ = layout(cfg)
    assert [(n, tuple(s)) for n, s in params] == ref_keys(resolve_config(cfg))


def test_parameter_counts():
    # Unet(dim=64, dim_mults=(1, 2, 4, 8), channels=1) of denoising-diffusion-pytorch 1.8.0 has
    # 35,703,937 parameters (its state_dict, counted); the reference table gives the same
    assert count_parameters("paper") == 35_703_937
    assert sum(math.prod(s) for _, s in ref_keys(resolve_config("paper"))) == 35_703_937
    assert count_parameters("small") == 2_430_241  # Unet(dim=16, ...), counted likewise
    assert UNet2D(TINY, max_batch=1, device="cpu").num_parameters() == count_parameters(TINY)


def test_padding_geometry():
    assert layout("paper")[1] == {"padded": (72, 72), "offset": (1, 1)}  # 70 -> 72: one cell per side
    assert layout(TINY)[1] == {"padded": (6, 6), "offset": (0, 0)}       # the odd row goes to the bottom
    assert layout(REF)[1] == {"padded": (12, 12), "offset": (1, 1)}
    assert layout({"base": "paper", "height": 64, "width": 80})[1] == {"padded": (64, 80), "offset": (0, 0)}
    assert padding(70, 4) == (72, 1)


def test_presets_and_overrides():
    assert resolve_config("paper") == {**PRESETS["paper"]}
    c = resolve_config({"base": "small", "dim_mults": (1, 2, 4)})
    assert c["full_attn"] == (False, False, True)  # the module's default follows the levels
    assert resolve_config({"base": "small", "full_attn": True})["full_attn"] == (True,) * 4  # cast_tuple
    with pytest.raises(ValueError, match="unknown config keys"):
        resolve_config({"dims": 3})
    with pytest.raises(ValueError, match="full_attn must be 2 booleans"):
        resolve_config({"dim_mults": (1, 2), "full_attn": (True,)})
    with pytest.raises(ValueError, match="unknown config 'huge'"):
        resolve_config("huge")
    with pytest.raises(ValueError, match="height must be positive"):
        resolve_config({"height": 0})


@pytest.mark.parametrize("bad,msg", [
    ({"groups": 3}, "not divisible by groups 3"),
    ({"dim": 6}, "not divisible by groups 8"),
    ({"dim": 3, "groups": 1}, "dim must be even"),
    ({"dim_mults": (1, 2, 3, 4, 5, 6, 7)}, "1..6"),
])
def test_bad_configs_raise_in_the_core(bad, msg):
    with pytest.raises(ValueError, match=msg):
        layout({"base": "small", **bad})


# ---- initialisation ----------------------------------------------------------------------------
def test_initialisation_is_pytorch_default():
    m = UNet2D("small", seed=3, max_batch=1, device="cpu")
    p = m.parameters()
    for name, v in p.items():
        if name.endswith(".norm.weight") or name.endswith(".g"):
            assert np.all(v == 1), name
        elif name.endswith(".norm.bias"):
            assert np.all(v == 0), name
        else:  # conv / linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = shape[1] * kernel
            fan = math.prod(v.shape[1:]) if v.ndim > 1 else fan_of_bias(p, name)
            bound = 1 / math.sqrt(fan)
            assert np.abs(v).max() <= bound, name
            if v.size >= 1000:
                assert abs(v.std() - bound / math.sqrt(3)) < 0.1 * bound, name
    ema = m.parameters("ema")
    assert all(np.array_equal(p[n], ema[n]) for n in p)
    again = UNet2D("small", seed=3, max_batch=1, device="cpu").get_tensor()
    other = UNet2D("small", seed=4, max_batch=1, device="cpu").get_tensor()
    np.testing.assert_array_equal(m.get_tensor(), again)
    assert not np.array_equal(m.get_tensor(), other)


def fan_of_bias(p, name):
    w = p[name[: -len("bias")] + "weight"]
    return math.prod(w.shape[1:])


# ---- forward against the reference -----------------------------------------------------------
@pytest.mark.parametrize("cfg,B", [(TINY, 2), (REF, 3)])
def test_forward_matches_numpy_reference(rng, cfg, B):
    m = UNet2D(cfg, seed=1, max_batch=B, device="cpu")
    perturb(m, rng)
    x, t = inputs(rng, cfg, B)
    out = m.forward(x, t)
    ref = ref_forward(m, x, t)
    assert out.shape == x.shape
    assert_close(out, ref, rtol=2e-4, atol=2e-4 * max(1.0, np.abs(ref).max()), what="unet2d forward")


def test_small_preset_on_velocity_maps_matches_reference(rng):
    """The small preset at 70 x 70 (padded to 72; 4 levels down to 9 x 9, full attention there)."""
    m = UNet2D("small", seed=2, max_batch=1, device="cpu")
    perturb(m, rng, 0.05)
    x, t = inputs(rng, m.config, 1, t=(40.0,))
    out, ref = m.forward(x, t), ref_forward(m, x, t)
    assert_close(out, ref, rtol=2e-4, atol=2e-4 * max(1.0, np.abs(ref).max()), what="small unet2d forward")


def test_ema_weights_and_batch_independence(rng):
    m = UNet2D(TINY, seed=1, max_batch=3, device="cpu")
    perturb(m, rng)
    x, t = inputs(rng, TINY, 3)
    both = m.forward(x, t)
    # each sample on its own: the same values (batch-independent ops; tolerance for sgemm blocking)
    for b in range(3):
        assert_close(m.forward(x[b:b + 1], t[b:b + 1]), both[b:b + 1], rtol=1e-6, atol=1e-6, what="per sample")
    ema = m.forward(x, t, weights="ema")  # the EMA copy still holds the initial weights
    assert_close(ema, ref_forward(m, x, t, "ema"), rtol=2e-4, atol=2e-4, what="ema forward")
    assert not np.allclose(ema, both)
    # a scalar t is broadcast
    np.testing.assert_array_equal(m.forward(x, 5.0), m.forward(x, np.full(3, 5.0, np.float32)))


# ---- backward: finite differences through the whole network -----------------------------------
def one_element_per_tensor(m, rng):
    return {name: int(rng.integers(v.size)) for name, v in m.parameters().items()}


@pytest.fixture
def tiny_case(rng):
    """TINY with perturbed weights, two samples, a random output gradient, the C gradients."""
    m = UNet2D(TINY, seed=5, max_batch=2, device="cpu")
    perturb(m, rng, 0.3)
    x, t = inputs(rng, TINY, 2, t=(7.0, 90.0))
    dout = rng.standard_normal(x.shape).astype(np.float32)
    out = m.forward(x, t)
    m.zero_grad()
    dx = m.backward(dout, need_dx=True)
    grads = {n: g.copy() for n, g in m.gradients().items()}
    return m, x, t, dout, out, dx, grads


def test_gradcheck_whole_network(tiny_case, rng):
    """One element of EVERY parameter tensor and every input element against central differences
    of the C forward's sum(out * dout). The forward is float32: each difference carries a rounding
    error of about (depth ~10) * 2^-24 * sum|out * dout| / (2 eps), so that is the absolute
    tolerance (times 4); the relative one is gradcheck.py's."""
    m, x, t, dout, out, dx, grads = tiny_case
    eps = 1e-2
    floor = 10 * 2.0 ** -24 * float(np.sum(np.abs(out.astype(np.float64) * dout))) / (2 * eps)
    atol = max(2e-3, 4 * floor)

    def objective():
        return float(np.sum(m.forward(x, t).astype(np.float64) * dout))

    params = m.parameters()
    for name, i in one_element_per_tensor(m, rng).items():
        want = central_difference(objective, params[name].reshape(-1), i, eps)
        got = grads[name].reshape(-1)[i]
        assert abs(got - want) <= atol + 2e-3 * abs(want), (name, got, want, atol)
    num = np.array([central_difference(objective, x.reshape(-1), i, eps) for i in range(x.size)])
    assert_close(dx, num.reshape(x.shape), rtol=2e-3, atol=atol, what="unet2d dx")


def test_gradients_match_float64_differences_of_the_reference(tiny_case, rng):
    """The same elements against central differences of the float64 reference forward (which the
    forward tests tie to the C forward), where rounding is negligible: only the C backward's own
    float32 error remains. Measured here: at most 2.3e-5 absolute and relative (largest gradient
    ~200); the bound is rtol 1e-4 plus atol 1e-6 of the largest gradient, 4-10x above that."""
    m, x, t, dout, out, dx, grads = tiny_case
    c = m.config
    P = {n: v.astype(np.float64) for n, v in m.state_dict().items()}
    x64 = x.astype(np.float64)

    def objective():
        return float(np.sum(unet_forward(P, x64, t, c["dim"], c["dim_mults"], c["full_attn"], c["groups"],
                                         c["heads"], c["dim_head"]) * dout))

    scale = max(float(np.abs(g).max()) for g in grads.values())
    for name, i in one_element_per_tensor(m, rng).items():
        want = central_difference(objective, P[name].reshape(-1), i, 1e-5)
        got = grads[name].reshape(-1)[i]
        assert abs(got - want) <= 1e-6 * scale + 1e-4 * abs(want), (name, got, want)
    for i in rng.choice(x.size, 8, replace=False):
        want = central_difference(objective, x64.reshape(-1), i, 1e-5)
        assert abs(dx.reshape(-1)[i] - want) <= 1e-6 * scale + 1e-4 * abs(want), ("x", i, dx.reshape(-1)[i], want)


def test_backward_accumulates_and_needs_a_forward(rng):
    m = UNet2D(TINY, seed=5, max_batch=2, device="cpu")
    x, t = inputs(rng, TINY, 2)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    m.forward(x, t)
    m.zero_grad()
    m.backward(dout)
    g1 = m.get_tensor(kind="grad")
    m.backward(dout)  # the same forward again: gradients add up
    assert_close(m.get_tensor(kind="grad"), 2 * g1, rtol=1e-6, atol=1e-7, what="accumulated")
    with pytest.raises(ValueError, match="same batch"):
        m.backward(dout[:1])
    m.forward(x, t, weights="ema")
    with pytest.raises(ValueError, match="EMA weights"):
        m.backward(dout)
    fresh = UNet2D(TINY, max_batch=2, device="cpu")
    with pytest.raises(ValueError, match="needs a preceding forward"):
        fresh.backward(dout)


# ---- training -------------------------------------------------------------------------------
def test_training_steps_lower_the_loss(rng):
    m = UNet2D(REF, seed=0, max_batch=4, device="cpu")
    x, t = inputs(rng, REF, 4)
    target = np.tanh(x[:, ::-1] + 0.5 * x).astype(np.float32)  # a fixed map of the input
    losses = [m.train_step(x, t, target, lr=2e-3)[0] for _ in range(40)]
    assert losses[-1] < 0.3 * losses[0], losses
    assert m.step == 40
    # the loss is the MSE of the model's output before the step
    m2 = UNet2D(REF, seed=0, max_batch=4, device="cpu")
    pred = m2.forward(x, t)
    loss, gnorm = m2.train_step(x, t, target)
    assert loss == pytest.approx(float(np.mean((pred.astype(np.float64) - target) ** 2)), rel=1e-5)
    assert gnorm > 0


def test_clipping_and_adamw(rng):
    x, t = inputs(rng, TINY, 2)
    target = np.zeros_like(x)
    a = UNet2D(TINY, seed=0, max_batch=2, device="cpu")
    b = UNet2D(TINY, seed=0, max_batch=2, device="cpu")
    la, na = a.train_step(x, t, target, lr=1e-3, max_grad_norm=1e-3)
    lb, nb = b.train_step(x, t, target, lr=1e-3, max_grad_norm=0)
    assert la == lb and na == pytest.approx(nb)  # the norm before clipping is reported either way
    # Adam's first step moves every parameter by about lr whatever the scale of the gradient, so
    # clipping shows in the second moment, not the step; it must differ
    assert not np.array_equal(a.get_tensor(kind="v"), b.get_tensor(kind="v"))
    c = UNet2D(TINY, seed=0, max_batch=2, device="cpu")
    p0 = c.get_tensor()
    c.train_step(x, t, target, lr=0.0, weight_decay=0.1, decoupled=True)  # lr 0: no move at all
    np.testing.assert_array_equal(c.get_tensor(), p0)


# ---- checkpoints ----------------------------------------------------------------------------
def test_save_load_identical(tmp_path, rng):
    m = UNet2D(TINY, seed=0, max_batch=2, device="cpu")
    x, t = inputs(rng, TINY, 2)
    target = rng.standard_normal(x.shape).astype(np.float32)
    for _ in range(3):
        m.train_step(x, t, target, lr=1e-3)
    m.set_tensor(None, 0.5 * m.get_tensor() + 0.1, "ema")  # an EMA copy distinct from the weights
    path = str(tmp_path / "unet2d.safetensors")
    m.save(path)
    r = UNet2D.load(path, max_batch=2, device="cpu")
    assert r.config == m.config and r.step == 3
    for kind in ("param", "ema", "m", "v"):
        np.testing.assert_array_equal(r.get_tensor(kind=kind), m.get_tensor(kind=kind))
    np.testing.assert_array_equal(r.forward(x, t), m.forward(x, t))
    np.testing.assert_array_equal(r.forward(x, t, "ema"), m.forward(x, t, "ema"))
    # training continues exactly (same Adam state and step count)
    assert r.train_step(x, t, target, lr=1e-3) == m.train_step(x, t, target, lr=1e-3)
    np.testing.assert_array_equal(r.get_tensor(), m.get_tensor())


def test_load_refuses_mismatched_files(tmp_path):
    from ubdiff import checkpoint
    from ubdiff.models.inversionnet import InversionNet
    path = str(tmp_path / "inv.safetensors")
    InversionNet({"base": "small", "dims": (2, 2, 2, 2, 2), "nt": 32, "nx": 8}, device="cpu").save(path)
    with pytest.raises(checkpoint.CheckpointError, match="expected 'unet2d'"):
        UNet2D.load(path)
    m = UNet2D(TINY, max_batch=1, device="cpu")
    good = str(tmp_path / "u.safetensors")
    m.save(good)
    tensors, meta = checkpoint.load(good)
    meta = {k: v for k, v in meta.items() if k != "format"}
    meta["config"] = {**meta["config"], "dim": 8}  # a config the tensors do not fit
    checkpoint.save(str(tmp_path / "bad.safetensors"), tensors, meta)
    with pytest.raises(checkpoint.CheckpointError, match="has shape"):
        UNet2D.load(str(tmp_path / "bad.safetensors"))


def test_state_dict_round_trip_and_errors(rng):
    a = UNet2D(TINY, seed=1, max_batch=1, device="cpu")
    perturb(a, rng)
    b = UNet2D(TINY, seed=2, max_batch=1, device="cpu")
    b.load_state_dict(a.state_dict())
    x, t = inputs(rng, TINY, 1)
    np.testing.assert_array_equal(b.forward(x, t), a.forward(x, t))
    np.testing.assert_array_equal(b.forward(x, t, "ema"), a.forward(x, t))  # "both" by default
    sd = a.state_dict()
    with pytest.raises(ValueError, match="missing 1 keys"):
        b.load_state_dict({k: v for k, v in sd.items() if k != "final_conv.bias"})
    with pytest.raises(ValueError, match="unexpected 1 keys"):
        b.load_state_dict({**sd, "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="init_conv.weight.*shape"):
        b.load_state_dict({**sd, "init_conv.weight": np.zeros((1, 1))})
    bad = {**sd, "final_conv.bias": np.array([np.nan], np.float32)}
    with pytest.raises(ValueError, match="non-finite"):
        b.load_state_dict(bad)


# ---- input errors ---------------------------------------------------------------------------
def test_input_errors(rng):
    m = UNet2D(TINY, max_batch=2, device="cpu")
    x, t = inputs(rng, TINY, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(N, 1, 5, 6\)"):
        m.forward(x[:, :, :4], t)
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(2,\)"):
        m.forward(x, t[:1])
    with pytest.raises(ValueError, match="non-finite"):
        m.forward(x, np.array([1.0, np.inf], np.float32))
    with pytest.raises(ValueError, match="weights must be 'param' or 'ema'"):
        m.forward(x, t, weights="online")
    with pytest.raises(ValueError, match="kind must be one of"):
        m.get_tensor(kind="adam")
    with pytest.raises(KeyError, match="no parameter tensor named 'nope'"):
        m.get_tensor("nope")
    with pytest.raises(ValueError, match="seed"):
        UNet2D(TINY, seed=-1)
    with pytest.raises(ValueError, match="max_batch"):
        UNet2D(TINY, max_batch=0)
    # the raw binding checks too
    out = np.empty_like(x)
    with pytest.raises(TypeError, match="x"):
        lib.unet2d_forward(m._h, out, x.astype(np.float64), t)
    with pytest.raises(ValueError, match=r"the model takes 1\.\.2 \(max_batch\)"):
        lib.unet2d_forward(m._h, np.empty((3, 1, 5, 6), np.float32), np.zeros((3, 1, 5, 6), np.float32),
                           np.zeros(3, np.float32))
    # the Python class grows the arena instead
    x3, t3 = inputs(rng, TINY, 3)
    assert m.forward(x3, t3).shape == (3, 1, 5, 6) and m.max_batch == 3


def test_binding_refuses_aliasing_bad_seeds_and_mutating_sequences(rng):
    """harden-c's rules (csrc/python/pyutil.h) on the U-Net's binding: outputs never overlap inputs
    or the model's own buffers, seeds are 0..2^64-1 (not wrapped), config sequences are read from
    a copy so an item's __index__ cannot change them under the loop."""
    m = UNet2D(TINY, max_batch=2, device="cpu")
    x, t = inputs(rng, TINY, 2)
    with pytest.raises(ValueError, match="out shares memory with x"):
        lib.unet2d_forward(m._h, x, x, t)
    n = x.size
    inside = m.parameters("grad")  # views of the model's gradient buffer
    flat = next(v for v in inside.values() if v.size >= n).reshape(-1)[:n].reshape(x.shape)
    with pytest.raises(ValueError, match="model's own parameter buffer 'grad'"):
        lib.unet2d_forward(m._h, np.empty_like(x), flat, t)
    with pytest.raises(ValueError, match="seed"):
        lib.unet2d_init(m._h, 2 ** 64)
    with pytest.raises((TypeError, ValueError), match="seed"):
        lib.unet2d_init(m._h, -1)

    class Shrinks:
        """An int whose __index__ empties the list being read."""
        def __init__(self, box):
            self.box = box

        def __index__(self):
            self.box.clear()
            return 2

    mults = [1]
    mults.append(Shrinks(mults))
    c = resolve_config(TINY)
    cfg = (c["dim"], mults, (0, 1), c["channels"], c["height"], c["width"], c["groups"], c["heads"],
           c["dim_head"])
    params, _ = lib.unet2d_layout(cfg)  # read from the copy: both levels
    assert [n for n, _ in params] == [n for n, _ in layout(TINY)[0]]
    assert mults == []  # the caller's list was emptied meanwhile
    with pytest.raises(ValueError, match=r"full_attn\[1\]"):
        lib.unet2d_layout((cfg[0], (1, 2), (0, 2)) + cfg[3:])


@pytest.mark.parametrize("kw,msg", [({"lr": float("nan")}, "lr"), ({"betas": (0.9, 1.0)}, r"betas\[1\]"),
                                    ({"eps": 0.0}, "eps"), ({"weight_decay": -1.0}, "weight_decay"),
                                    ({"max_grad_norm": float("nan")}, "max_grad_norm")])
def test_bad_hyperparameters_leave_the_model_unchanged(rng, kw, msg):
    m = UNet2D(TINY, max_batch=2, device="cpu")
    x, t = inputs(rng, TINY, 2)
    before = m.get_tensor()
    with pytest.raises(ValueError, match=msg):
        m.train_step(x, t, np.tanh(x), **kw)
    # the C core checks again (csrc/cpu/optim.c ubd_adam_check), before anything changes
    hp = dict(lr=1e-4, b1=0.9, b2=0.99, eps=1e-8, wd=0.0)
    key = {"lr": "lr", "eps": "eps", "weight_decay": "wd", "max_grad_norm": None, "betas": "b2"}[next(iter(kw))]
    if key is not None:
        hp[key] = {"lr": np.nan, "eps": 0.0, "wd": -1.0, "b2": 1.0}[key]
        with pytest.raises(ValueError, match="unet2d"):
            lib.unet2d_train_step(m._h, np.zeros(2, np.float32), x, t, np.tanh(x), hp["lr"], hp["b1"], hp["b2"],
                                  hp["eps"], hp["wd"], False, 1.0)
    np.testing.assert_array_equal(m.get_tensor(), before)
    assert m.step == 0


def test_views_stay_valid_when_the_arena_grows(rng):
    m = UNet2D(TINY, max_batch=1, device="cpu")
    v = m.parameters()["final_conv.bias"]
    x, t = inputs(rng, TINY, 3)
    m.forward(x, t)  # 3 > max_batch: the arena is re-planned, the parameters stay
    v[...] = 0.25
    assert m.get_tensor("final_conv.bias")[0] == np.float32(0.25)


def test_same_bits_at_any_thread_count(rng):
    """Products are cut into shape-determined blocks (csrc/cpu/gemm.c) and every other op writes
    each output from one thread: forward, backward and a training step give the same bits with
    1 and 2 threads (README, Reproducibility)."""
    x, t = inputs(rng, REF, 3)
    target = np.tanh(x).astype(np.float32)

    def run():
        m = UNet2D(REF, seed=4, max_batch=3, device="cpu")
        out = m.forward(x, t)
        dx = m.backward(target, need_dx=True)
        loss = m.train_step(x, t, target, lr=1e-3)
        return out, dx, m.get_tensor(kind="grad"), m.get_tensor(), loss

    ubdiff.set_num_threads(1)
    one = run()
    ubdiff.set_num_threads(2)
    two = run()
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
