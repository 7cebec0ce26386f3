"""Forward modelling (ubdiff.physics) against the spec (shared/specs/forward_modeling.md)
and a plain NumPy implementation of the same scheme."""
import functools

import numpy as np
import pytest

import ubdiff
from ubdiff import physics
from ubdiff._native import lib


@pytest.fixture(autouse=True)
def on_cpu(monkeypatch):
    """These tests check the CPU core (against NumPy, bit-identical across
    threads): pinned to device="cpu", which on a GPU machine "auto" would not
    pick. tests/test_physics_cuda.py compares the devices."""
    monkeypatch.setattr(physics, "forward_model", functools.partial(physics.forward_model, device="cpu"))


# ---- NumPy reference --------------------------------------------------------
def ricker_ref(freq, dt):
    nw = 2 * int(np.floor(2.2 / (freq * dt) / 2)) + 1
    k = np.arange(nw)
    b = (np.pi * freq * dt * (nw // 2 - k)) ** 2
    return (1 - 2 * b) * np.exp(-b)


def damping_ref(H, W, nbc, vmin, dx):
    """d (NZ, NX) as the spec words it: x profile in the left/right strips
    (corners included), z profile in the top/bottom strips, 0 inside."""
    L = (nbc - 1) * dx
    d0 = 3 * vmin * np.log(1e7) / (2 * L)
    prof = d0 * (np.arange(nbc) * dx / L) ** 2  # i = 0 next to the interior
    d = np.zeros((H + 2 * nbc, W + 2 * nbc))
    d[:nbc, nbc:nbc + W] = prof[::-1, None]
    d[nbc + H:, nbc:nbc + W] = prof[:, None]
    d[:, :nbc] = prof[::-1][None, :]
    d[:, nbc + W:] = prof[None, :]
    return d


def shift(p, k, ax, wrap):
    """p shifted by k along ax: periodic (np.roll), or with zeros coming in."""
    r = np.roll(p, k, ax)
    if not wrap:
        idx = [slice(None)] * 2
        idx[ax] = slice(0, k) if k > 0 else slice(k, None)
        r[tuple(idx)] = 0
    return r


def forward_ref(v, *, nt, nbc, src_x, src_z=1, rec_x=None, rec_z=1, freq=15.0, dt=1e-3, dx=10.0, wrap=True):
    """(ns, nt, nr) in float64; np.roll gives the periodic neighbours."""
    v = np.asarray(v, np.float64)
    H, W = v.shape
    rec_x = np.arange(W) if rec_x is None else np.asarray(rec_x)
    vp = np.pad(v, nbc, mode="edge")
    alpha = (vp * dt / dx) ** 2
    kappa = damping_ref(H, W, nbc, v.min(), dx) * dt
    a, b = 2 - 5 * alpha - kappa, 1 - kappa
    w = np.zeros(nt)
    r = ricker_ref(freq, dt)[:nt]
    w[:len(r)] = r
    out = np.zeros((len(src_x), nt, len(rec_x)))
    for s, sx in enumerate(src_x):
        p0 = np.zeros_like(vp)
        p1 = np.zeros_like(vp)
        amp = v[src_z, sx] ** 2 * dt ** 2
        for n in range(nt):
            n1 = sum(shift(p1, k, ax, wrap) for k in (1, -1) for ax in (0, 1))
            n2 = sum(shift(p1, k, ax, wrap) for k in (2, -2) for ax in (0, 1))
            p2 = a * p1 - b * p0 + alpha * (4 / 3 * n1 - 1 / 12 * n2)  # update
            p2[src_z + nbc, sx + nbc] += amp * w[n]  # inject
            out[s, n] = p2[rec_z + nbc, rec_x + nbc]  # record
            p0, p1 = p1, p2  # rotate
    return out


def smooth_map(rng, H, W, lo=1500.0, hi=4500.0):
    """A layered map with a random bump: realistic structure, several velocities."""
    z = np.linspace(0, 1, H)[:, None]
    x = np.linspace(0, 1, W)[None, :]
    v = lo + (hi - lo) * (0.2 + 0.6 * z + 0.2 * np.sin(3 * x + rng.uniform(0, 6)) * z)
    v += rng.uniform(-100, 100, (H, W))
    return np.clip(v, lo, hi).astype(np.float32)


# ---- Ricker -------------------------------------------------------------------
def test_ricker_matches_closed_form():
    w = physics.ricker(15.0, 1e-3)
    assert w.dtype == np.float32 and w.shape == (147,)
    assert np.argmax(w) == 73 and w[73] == 1.0
    np.testing.assert_allclose(w, ricker_ref(15.0, 1e-3), rtol=0, atol=1e-7)  # float32 rounding of O(1) values
    long = physics.ricker(15.0, 1e-3, n=1000)
    np.testing.assert_array_equal(long[:147], w)
    assert not long[147:].any()
    np.testing.assert_allclose(physics.ricker(25.0, 2e-3), ricker_ref(25.0, 2e-3), atol=1e-7)
    assert physics.ricker(25.0, 2e-3).shape == (45,)  # 2 floor(44 / 2) + 1
    with pytest.raises(ValueError):
        physics.ricker(0.0, 1e-3)
    with pytest.raises(ValueError):
        physics.ricker(15.0, 1e-3, n=-1)


# ---- agreement with the NumPy reference ---------------------------------------------
# Tolerance: the core runs in float32, the reference in float64. Each step
# rounds every cell (relative 6e-8, a few roundings per update) and the
# errors travel on with the wave, so they can grow about linearly with the
# step count: ~250 steps x 6e-8 x a few ~ 3e-5 of the peak at most; measured
# 1e-6 .. 5e-6. Scheme mistakes are far larger: damping the corners with the
# z profile instead of the x profile already gives 9e-3, recording one step
# off 9e-2.
REF_RTOL = 3e-5


@pytest.mark.parametrize("H,W,nbc,nt,src_x,src_z,rec_z", [
    (20, 20, 12, 200, (0, 7, 19), 1, 1),
    (17, 23, 10, 250, (3, 22), 4, 0),  # odd sizes, deeper source, receivers on row 0
])
def test_matches_numpy_reference(rng, H, W, nbc, nt, src_x, src_z, rec_z):
    v = smooth_map(rng, H, W)
    got = physics.forward_model(v, nt=nt, nbc=nbc, src_x=src_x, src_z=src_z, rec_z=rec_z)
    ref = forward_ref(v, nt=nt, nbc=nbc, src_x=src_x, src_z=src_z, rec_z=rec_z)
    assert got.shape == ref.shape == (len(src_x), nt, W)
    assert np.abs(ref).max() > 1.0  # the wave did reach the receivers
    err = np.abs(got - ref).max() / np.abs(ref).max()
    print(f"max error {err:.3g} of the peak")
    assert err < REF_RTOL, f"max error {err:.3g} of the peak"


def test_matches_numpy_reference_openfwi_size(rng):
    # The full OpenFWI setup (nbc 120, 1000 steps) for one shot: ~4 s of NumPy.
    # Measured error 3e-6 of the peak, inside the same tolerance.
    z = np.linspace(0, 1, 70)[:, None]
    v = (1500 + 2500 * z + rng.uniform(-200, 200, (70, 70))).astype(np.float32)
    got = physics.forward_model(v, src_x=(34,))
    ref = forward_ref(v, nt=1000, nbc=120, src_x=(34,))
    assert np.abs(got - ref).max() < REF_RTOL * np.abs(ref).max()


def test_periodic_wrap_matters_and_is_matched():
    # A thin padding (nbc=5) lets the wave wrap around the padded grid: the
    # np.roll reference agrees, one with non-periodic (zero) edges does not.
    v = np.full((12, 12), 2000.0, np.float32)
    kw = dict(nt=150, nbc=5, src_x=(0,), rec_x=(11,))
    got = physics.forward_model(v, **kw)
    ref = forward_ref(v, **kw)
    peak = np.abs(ref).max()
    assert np.abs(got - ref).max() < REF_RTOL * peak
    assert np.abs(got - forward_ref(v, wrap=False, **kw)).max() > 100 * REF_RTOL * peak


def test_batch_maps_independent_and_single_map(rng):
    vs = np.stack([smooth_map(rng, 16, 16, 1500, 3000), smooth_map(rng, 16, 16, 2000, 4000)])[:, None]
    kw = dict(nt=120, nbc=10, src_x=(2, 13))
    both = physics.forward_model(vs, **kw)
    assert both.shape == (2, 2, 120, 16) and both.dtype == np.float32
    for i in range(2):
        np.testing.assert_array_equal(both[i], physics.forward_model(vs[i, 0], **kw))
    # batching changes nothing
    np.testing.assert_array_equal(both, physics.forward_model(vs, batch_size=1, progress=True, **kw))


def test_input_dtypes_converted(rng):
    v = smooth_map(rng, 14, 14)
    kw = dict(nt=80, nbc=8, src_x=(7,))
    ref = physics.forward_model(v, **kw)
    np.testing.assert_array_equal(physics.forward_model(v.astype(np.float64), **kw), ref)
    np.testing.assert_array_equal(physics.forward_model(np.asfortranarray(v), **kw), ref)
    v16 = np.full((14, 14), 2048, np.float16)  # exactly representable
    np.testing.assert_array_equal(physics.forward_model(v16, **kw),
                                  physics.forward_model(np.full((14, 14), 2048.0), **kw))


def test_threads_bitwise_identical(rng):
    vs = np.stack([smooth_map(rng, 15, 18) for _ in range(3)])[:, None]
    kw = dict(nt=100, nbc=8, src_x=(0, 9, 17))
    old = ubdiff.get_num_threads()
    try:
        ubdiff.set_num_threads(1)
        one = physics.forward_model(vs, **kw)
        ubdiff.set_num_threads(2)
        two = physics.forward_model(vs, **kw)
    finally:
        ubdiff.set_num_threads(old)
    np.testing.assert_array_equal(one, two)


# ---- physics ----------------------------------------------------------------------------
def test_openfwi_constant_4500_range():
    # spec: a constant 4500 m/s map reaches about -27 / 53 at the source's
    # receiver (FlatVel-A's seismic range is -26.95 .. 52.77). One shot of the
    # full OpenFWI setup (310 x 310 padded, 1000 steps).
    s = physics.forward_model(np.full((70, 70), 4500.0), src_x=(34,))
    tr = s[0, :, 34]
    assert s.shape == (1, 1000, 70)
    assert -27.6 < tr.min() < -26.7 and 52.5 < tr.max() < 53.8, (tr.min(), tr.max())
    assert tr.argmax() > 73  # the peak follows the 73 ms source delay


def test_energy_bounded_homogeneous():
    # 1000 steps on a small grid: after the direct wave leaves through the
    # damped padding the records decay instead of growing (no blow-up), also
    # at v dt/dx = 0.59, close to the stability limit.
    for v in (1500.0, 4500.0, 5900.0):
        s = physics.forward_model(np.full((30, 30), v), nt=1000, nbc=120 if v > 5000 else 30, src_x=(15,))
        a = np.abs(s[0])
        assert np.isfinite(a).all()
        early, late = a[:300].max(), a[700:].max()
        assert early > 10 and late < 0.01 * early, (v, early, late)


def test_two_layer_reflection_time():
    # Interface at 300 m (row 30 is the first fast row), source and receiver at
    # 10 m: the reflection peaks at 73 ms + 2 (300 - 10) / v1 = 363 ms. The
    # homogeneous record (same vmin, so the same damping) is subtracted to
    # isolate it. Tolerance 6 ms: the interface lies between rows 29 and 30
    # (+-2.5 ms) and the 2-D wavelet's phase shift moves the peak a few ms.
    H, W, v1, v2, iface = 50, 80, 2000.0, 4000.0, 30
    v = np.full((H, W), v1, np.float32)
    v[iface:] = v2
    kw = dict(nt=500, nbc=20, src_x=(40,), rec_x=(40,))
    res = (physics.forward_model(v, **kw) - physics.forward_model(np.full((H, W), v1), **kw))[0, :, 0]
    expected = 73 + 2 * (iface * 10.0 - 10.0) / v1 * 1000
    assert abs(int(np.argmax(res)) - expected) <= 6, (np.argmax(res), expected)
    assert res.max() > 5 * np.abs(res[:250]).max()  # nothing before the reflection arrives
    # faster below: positive reflection coefficient ~ (v2 - v1) / (v2 + v1) = 1/3
    assert res.max() > 0.5 * abs(res.min())


def test_cfl_number():
    assert physics.cfl_number(np.full((3, 3), 4500.0)) == pytest.approx(0.45)
    assert physics.cfl_number([[1000.0, 3000.0]], dt=2e-3, dx=5.0) == pytest.approx(1.2)
    with pytest.raises(ValueError, match="NaN"):
        physics.cfl_number([np.nan])


# ---- errors -------------------------------------------------------------------------------
def test_unstable_maps_rejected():
    ok = np.full((10, 10), 3000.0, np.float32)
    bad = ok.copy()
    bad[4, 5] = 6200.0  # v dt/dx = 0.62 > sqrt(3/8)
    with pytest.raises(ValueError, match=r"map 1 is unstable.*6200.*0\.62"):
        physics.forward_model(np.stack([ok, bad])[:, None], nt=10, nbc=20)
    # inside the limit in the interior but not at the border with strong damping:
    # nbc=20 gives kappa_max ~ 0.77 for 6000 m/s, limit sqrt(3/8 - 3 kappa/16) ~ 0.48
    with pytest.raises(ValueError, match="padding"):
        physics.forward_model(np.full((10, 10), 6000.0), nt=10, nbc=20)
    # 6000 m/s only inside, slow border: fine with the same padding
    edge_slow = np.full((10, 10), 3000.0)
    edge_slow[3:7, 3:7] = 6000.0
    physics.forward_model(edge_slow, nt=10, nbc=20, src_x=(5,))


@pytest.mark.parametrize("value,what", [(np.nan, "non-finite"), (np.inf, "non-finite"), (0.0, "non-positive"),
                                        (-5.0, "non-positive")])
def test_bad_velocity_values(value, what):
    v = np.full((2, 1, 8, 8), 2000.0)
    v[1, 0, 3, 2] = value
    with pytest.raises(ValueError, match=rf"map 1 has a {what.split('-')[0]}.*z=3, x=2"):
        physics.forward_model(v, nt=5, nbc=4)


def test_bad_inputs():
    v = np.full((8, 8), 2000.0)
    fm = physics.forward_model
    with pytest.raises(ValueError, match="shape"):
        fm(np.full((2, 8, 8), 2000.0))  # (N, H, W) is ambiguous: needs the channel axis
    with pytest.raises(ValueError, match="shape"):
        fm(np.full((2, 2, 8, 8), 2000.0))
    with pytest.raises(ValueError, match="shape"):
        fm(np.full(8, 2000.0))
    with pytest.raises(ValueError, match="empty"):
        fm(np.zeros((0, 1, 8, 8)))
    with pytest.raises(TypeError):
        fm(v.astype(np.complex64))
    with pytest.raises(TypeError):
        fm(v, src_x=(1.5,))
    with pytest.raises(ValueError, match="source 0"):
        fm(v, nt=5, nbc=4, src_x=(8,))
    with pytest.raises(ValueError, match="receiver 1"):
        fm(v, nt=5, nbc=4, src_x=(1,), rec_x=(0, -1))
    with pytest.raises(ValueError, match="source 0"):
        fm(v, nt=5, nbc=4, src_x=(1,), src_z=8)
    with pytest.raises(ValueError, match="rec_z"):
        fm(v, nt=5, nbc=4, rec_z=(1, 1))
    with pytest.raises(ValueError, match="nt"):
        fm(v, nt=0)
    with pytest.raises(ValueError, match="nbc"):
        fm(v, nt=5, nbc=1)
    with pytest.raises(ValueError, match="batch_size"):
        fm(v, nt=5, batch_size=0)
    with pytest.raises(ValueError, match="dt"):
        fm(v, nt=5, dt=0.0)
    with pytest.raises(ValueError, match="device"):
        fm(v, nt=5, device="tpu")


def test_device_argument(rng):
    """device="auto" is the GPU when one is usable, else the CPU; the raw
    binding takes the device as its last argument (default "cpu")."""
    v = smooth_map(rng, 12, 12)[None, None]
    kw = dict(nt=40, nbc=6, src_x=(3,))
    cpu = physics.forward_model(v, device="cpu", **kw)
    usable = ubdiff.cuda_compiled() and ubdiff.gpu_count() > 0
    auto = physics.forward_model(v, device="auto", **kw)
    if not usable:
        np.testing.assert_array_equal(auto, cpu)
        why = "no CUDA GPU is visible" if ubdiff.cuda_compiled() else "built without CUDA"
        with pytest.raises(RuntimeError, match=f"device='cuda': .*{why}"):
            physics.forward_model(v, device="cuda", **kw)
    seis = np.empty((1, 1, 40, 12), np.float32)
    args = (seis, v[:, 0], [1], [3], [1] * 12, list(range(12)), 15.0, 1e-3, 10.0, 6)
    lib.forward_model(*args)
    np.testing.assert_array_equal(seis, cpu)
    with pytest.raises(ValueError, match="device must be"):
        lib.forward_model(*args, "tpu")


def test_raw_binding_checks_shapes():
    v = np.full((1, 8, 8), 2000.0, np.float32)
    pos = ([1], [2], [1, 1], [0, 7])
    with pytest.raises(ValueError, match="seis"):
        lib.forward_model(np.empty((1, 2, 5, 2), np.float32), v, *pos, 15.0, 1e-3, 10.0, 4)  # ns mismatch
    with pytest.raises(ValueError, match="vel"):
        lib.forward_model(np.empty((1, 1, 5, 2), np.float32), v[0], *pos, 15.0, 1e-3, 10.0, 4)
    with pytest.raises(TypeError):
        lib.forward_model(np.empty((1, 1, 5, 2), np.float64), v, *pos, 15.0, 1e-3, 10.0, 4)
    with pytest.raises(ValueError, match="src_z/src_x"):
        lib.forward_model(np.empty((1, 1, 5, 2), np.float32), v, [1, 1], [2], [1, 1], [0, 7], 15.0, 1e-3, 10.0, 4)
    out = np.empty((1, 1, 5, 2), np.float32)
    lib.forward_model(out, v, *pos, 15.0, 1e-3, 10.0, 4)
    assert np.isfinite(out).all()


def test_releases_the_gil():
    # While a long call runs in a worker thread the main thread keeps running:
    # its largest pause stays far below the call's duration (holding the GIL,
    # it would last the whole call).
    import threading
    import time

    v = np.full((70, 70), 3000.0)
    done = []
    worker = threading.Thread(target=lambda: done.append(physics.forward_model(v, src_x=(5, 30, 60), nt=600)))
    t0 = time.perf_counter()
    worker.start()
    last, gap = t0, 0.0
    while worker.is_alive():
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    total = time.perf_counter() - t0
    worker.join()
    assert done and total > 0.05
    assert gap < 0.5 * total, (gap, total)


def test_openfwi_geometry_defaults():
    # spec: linspace(0, 69, 5) rounded half to even (34.5 -> 34), 70 receivers on row 1
    assert physics.OPENFWI_SRC_X == tuple(int(x) for x in np.rint(np.linspace(0, 69, 5)))
    s = physics.forward_model(np.full((1, 1, 70, 70), 2000.0), nt=3, nbc=4)
    assert s.shape == (1, 5, 3, 70)
