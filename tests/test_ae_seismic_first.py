"""The seismic-first training modes of the co-latent autoencoder (the paper's
Table 5 variant, Eq. 3 before Eq. 2) and their UBDiff stages:

- "seis_first": l_s on the pairs trains E, the seismic head and D_s (E in
  training mode); the velocity head and D_v are not run;
- "vel_after": l_v trains the velocity head and D_v with E frozen in eval mode;
  the seismic head and D_s are not run.
NumPy reference of both losses, finite-difference gradients of every trained
tensor, bit-identical frozen parts, loss decrease, exact resume in UBDiff."""
import numpy as np
import pytest
from ae_reference import decode_seismic, decode_velocity, encode, loss
from test_autoencoder import MINI, TINY, data, randomise_for_eval, smooth_regime

from ubdiff import get_num_threads, set_num_threads
from ubdiff.models import ae_spec
from ubdiff.models.autoencoder import CoLatentAutoencoder

TRAINED = {"seis_first": ("encoder", "head_s", "decoder_s"), "vel_after": ("head_v", "decoder_v")}


@pytest.fixture(autouse=True)
def one_thread():
    n = get_num_threads()   # tiny models: see tests/test_autoencoder.py
    set_num_threads(1)
    yield
    set_num_threads(n)


def _params(m):
    return {**{n: v.astype(np.float64) for n, v in m.named_parameters().items()},
            **{n: v.astype(np.float64) for n, v in m.named_buffers().items()}}


def test_losses_match_numpy_reference(rng):
    m = CoLatentAutoencoder(TINY, seed=4)
    randomise_for_eval(m, rng)
    vel, seis = data(rng, TINY, 4)
    P = _params(m)
    r = m.forward_backward(vel, seis, mode="seis_first", gammas=(1, 1, 2, 0.5))
    ls = loss(decode_seismic(P, encode(P, vel, train=True), TINY, train=True), seis, 2, 0.5)
    assert np.isnan(r["velocity"]) and r["seismic"] == pytest.approx(ls, rel=1e-4)
    assert r["total"] == pytest.approx(ls, rel=1e-4)
    P = _params(m)   # seis_first moved the encoder's running statistics: vel_after's E (eval) uses them
    r = m.forward_backward(vel, mode="vel_after", gammas=(2, 0.5, 1, 1))
    lv = loss(decode_velocity(P, encode(P, vel, train=False), train=True), vel, 2, 0.5)
    assert np.isnan(r["seismic"]) and r["velocity"] == pytest.approx(lv, rel=1e-4)
    assert r["total"] == pytest.approx(lv, rel=1e-4)


@pytest.mark.parametrize("mode", ["seis_first", "vel_after"])
def test_gradcheck_trained_groups(rng, mode):
    """d total / d parameter by central differences for 2 entries of every tensor of the
    groups the mode trains (tolerances as in test_autoencoder.test_full_model_gradcheck)."""
    m = CoLatentAutoencoder(TINY, seed=2)
    smooth_regime(m, rng)
    vel, seis = data(rng, TINY, 4)
    s = None if mode == "vel_after" else seis
    if mode == "vel_after":
        m.encode(vel, training=True)   # running statistics of the batch: eval-mode E away from its init
    m.forward_backward(vel, s, mode=mode)
    grads = {n: g.copy() for n, g in m.named_parameters("grad").items()}
    spec = ae_spec.spec(m.config)
    group_of = {n: g for n, _, _, g in spec["params"]}
    eps, checked = 1e-3, 0
    for name, p in m.named_parameters().items():
        if group_of[name] not in TRAINED[mode]:
            continue
        flat = p.reshape(-1)
        for i in rng.choice(flat.size, size=min(2, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + eps
            lp = m.forward_backward(vel, s, mode=mode)["total"]
            flat[i] = old - eps
            lm = m.forward_backward(vel, s, mode=mode)["total"]
            flat[i] = old
            num = (lp - lm) / (2 * eps)
            ana = grads[name].reshape(-1)[i]
            assert abs(num - ana) <= 1e-3 + 2e-2 * abs(num), f"{name}[{i}]: numeric {num:.6g} vs analytic {ana:.6g}"
            checked += 1
    assert checked > 20
    for g in TRAINED[mode]:
        assert np.abs(m.flat("grad")[m.group_slice(g)]).max() > 0, g


@pytest.mark.parametrize("mode", ["seis_first", "vel_after"])
def test_untrained_parts_stay_bit_identical(rng, mode):
    m = CoLatentAutoencoder(MINI, seed=1)
    vel, seis = data(rng, MINI, 4)
    for _ in range(2):
        m.train_step(vel, seis, mode="wo_opt", lr=1e-3)   # non-trivial statistics and Adam state
    p0 = {g: m.flat()[m.group_slice(g)].copy() for g in ae_spec.GROUPS}
    b0 = {n: v.copy() for n, v in m.named_buffers().items()}
    for _ in range(3):
        m.train_step(vel, None if mode == "vel_after" else seis, mode=mode, lr=1e-3)
    for g in ae_spec.GROUPS:
        same = np.array_equal(m.flat()[m.group_slice(g)].view(np.uint32), p0[g].view(np.uint32))
        assert same == (g not in TRAINED[mode]), g
    frozen_buffers = {"seis_first": ("batch_norm_v", "decoder_v."),
                      "vel_after": ("encoder.", "batch_norm_s", "decoder_s.")}[mode]
    for n, v in m.named_buffers().items():
        if n.startswith(frozen_buffers):
            assert np.array_equal(v.view(np.uint32), b0[n].view(np.uint32)), n
    steps = m.optimizer_steps()
    assert all(steps[g] == (5 if g in TRAINED[mode] else 2) for g in ae_spec.GROUPS), steps


@pytest.mark.parametrize("mode,key", [("seis_first", "seismic"), ("vel_after", "velocity")])
def test_loss_decreases(rng, mode, key):
    m = CoLatentAutoencoder(MINI, seed=0)
    vel, seis = data(rng, MINI, 4)
    s = None if mode == "vel_after" else seis
    losses = [m.train_step(vel, s, mode=mode, lr=3e-3)[key] for _ in range(30)]
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0], losses


def test_seis_first_needs_seismic(rng):
    m = CoLatentAutoencoder(MINI)
    vel, _ = data(rng, MINI, 2)
    with pytest.raises(ValueError, match="needs seismic"):
        m.train_step(vel, mode="seis_first")


@pytest.mark.parametrize("mode", ["seis_first", "vel_after"])
def test_split_step_and_trained_slice(rng, mode):
    """train_step = forward_backward + apply_update bit for bit; the trained slice
    spans the first to the last trained group (seis_first: all five, the velocity
    side's gradient zeroed inside it and not applied), so an all-reduce of it fits
    between the two calls."""
    vel, seis = data(rng, MINI, 3)
    s = None if mode == "vel_after" else seis
    a, b = CoLatentAutoencoder(MINI, seed=2), CoLatentAutoencoder(MINI, seed=2)
    for m in (a, b):
        m.train_step(vel, seis, mode="wo_opt", lr=1e-3)   # non-zero gradients everywhere
    g = {name: b.group_slice(name) for name in ae_spec.GROUPS}
    sl = b.trained_slice(mode)
    assert sl == {"seis_first": slice(0, b.num_parameters()),
                  "vel_after": slice(g["head_v"].start, g["decoder_v"].stop)}[mode]
    hp = dict(lr=1e-3, betas=(0.8, 0.99), eps=1e-7, weight_decay=1e-3)
    for _ in range(2):
        ra = a.train_step(vel, s, mode=mode, **hp)
        rb = b.forward_backward(vel, s, mode=mode)
        grad = b.get_tensor(kind="grad")
        for name in ae_spec.GROUPS:
            if name not in TRAINED[mode] and g[name].start >= sl.start and g[name].stop <= sl.stop:
                assert not grad[g[name]].any(), name   # inside the slice, not trained: zero
        b.set_tensor(None, grad, kind="grad")          # what an all-reduce of one worker writes back
        b.apply_update(mode=mode, **hp)
        assert np.array_equal(np.array(list(ra.values())), np.array(list(rb.values())), equal_nan=True)
    for kind in ("param", "grad", "m", "v", "buf"):
        assert np.array_equal(a.get_tensor(kind=kind), b.get_tensor(kind=kind)), kind
    assert a.optimizer_steps() == b.optimizer_steps()


def _pairs(n):
    import ubdiff
    v = ubdiff.data.generate_velocity("flatvel-a", n, seed=3)
    s = np.random.default_rng(1).standard_normal((n, 5, 250, 70)).astype(np.float32)
    return v, s


def test_ubdiff_stages_resume_exactly(tmp_path):
    """fit_seismic_first + fit_velocity_after: 2 epochs each equal 1 + save/load + 1, bit for bit,
    and the stages are recorded in the run's state."""
    import ubdiff
    cfg = {"autoencoder": dict(ae_spec.SMALL, max_batch=4), "diffusion": "small"}
    v, s = _pairs(8)

    def run(split):
        m = ubdiff.UBDiff(cfg, seed=5)
        for k in split:
            m.fit_seismic_first(v, s, epochs=k, batch_size=4, lr=1e-3, progress=False)
            m.save(tmp_path / "run")
            m = ubdiff.UBDiff.load(tmp_path / "run")
        for k in split:
            m.fit_velocity_after(v, epochs=k, batch_size=4, lr=1e-3, progress=False)
            m.save(tmp_path / "run")
            m = ubdiff.UBDiff.load(tmp_path / "run")
        return m

    a, b = run([2]), run([1, 1])
    assert a.state["seis_first"]["epoch"] == 2 and a.state["vel_after"]["epoch"] == 2
    assert len(a.history["seis_first"]) == 2 and np.isnan(a.history["vel_after"][0].get("seismic", np.nan))
    assert np.array_equal(a.autoencoder.flat(), b.autoencoder.flat())
    assert np.array_equal(a.autoencoder.flat("buf"), b.autoencoder.flat("buf"))
