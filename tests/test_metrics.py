"""Evaluation metrics: Fréchet distance / FID / KID, OpenFWI SSIM, MAE/MSE,
physics consistency, report writing and the evaluate sub-command."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from ubdiff import metrics as M
from ubdiff.metrics import _norm
from ubdiff.metrics.physics import subsample_factor


# ---- Fréchet distance ---------------------------------------------------------
def _rot(d, rng):
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return q


def _w2_commuting(mu1, a, mu2, b):
    """Closed form for covariances R diag(a) R^T and R diag(b) R^T (same eigenbasis):
    |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2."""
    return float(np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))


@pytest.mark.parametrize("d", [1, 3, 16])
def test_frechet_matches_closed_form_commuting(rng, d):
    r = _rot(d, rng)
    a, b = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    got = M.frechet_distance(mu1, r @ np.diag(a) @ r.T, mu2, r @ np.diag(b) @ r.T)
    # float64 eigendecompositions of well-conditioned matrices: ~1e-12 relative
    assert got == pytest.approx(_w2_commuting(mu1, a, mu2, b), rel=1e-9, abs=1e-10)


def test_frechet_singular_covariances(rng):
    d = 6
    r = _rot(d, rng)
    # rank-deficient, same eigenbasis: zero eigenvalues on different axes
    a = np.array([2.0, 0.0, 1.0, 0.0, 0.5, 0.0])
    b = np.array([0.0, 3.0, 1.0, 0.0, 0.0, 0.7])
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    got = M.frechet_distance(mu1, r @ np.diag(a) @ r.T, mu2, r @ np.diag(b) @ r.T)
    assert got == pytest.approx(_w2_commuting(mu1, a, mu2, b), rel=1e-9, abs=1e-9)
    # a point mass against any Gaussian: |dmu|^2 + tr C2 (non-commuting C2)
    c2 = rng.standard_normal((d, 3))
    c2 = c2 @ c2.T  # rank 3
    got = M.frechet_distance(mu1, np.zeros((d, d)), mu2, c2)
    assert got == pytest.approx(np.sum((mu1 - mu2) ** 2) + np.trace(c2), rel=1e-9)
    # sample covariance with fewer samples than dimensions (the FID situation) vs itself
    f = rng.standard_normal((5, 32))
    mu, c = M.gaussian_stats(f)
    assert M.frechet_distance(mu, c, mu, c) < 1e-9


def test_frechet_matches_sqrtm_route_noncommuting(rng):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    d = 8
    x, y = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    c1, c2 = x @ x.T + 0.5 * np.eye(d), y @ y.T + 0.5 * np.eye(d)
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    covmean = scipy_linalg.sqrtm(c1 @ c2).real  # well-conditioned: the classic route is fine
    ref = np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean)
    assert M.frechet_distance(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-8)


def test_frechet_errors():
    with pytest.raises(ValueError, match="covariance"):
        M.frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="dimensions differ"):
        M.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="NaN"):
        M.frechet_distance(np.full(2, np.nan), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="at least 2"):
        M.fid_from_features(np.zeros((1, 3)), np.zeros((4, 3)))


# ---- FID / KID on features -------------------------------------------------------
def test_fid_self_zero_and_monotone(rng):
    f = rng.standard_normal((400, 12)) @ rng.standard_normal((12, 12))
    assert M.fid_from_features(f, f) < 1e-8
    noise = rng.standard_normal(f.shape)
    shift = rng.standard_normal(12)
    vals = [M.fid_from_features(f, f + t * noise + t * shift) for t in (0.0, 0.1, 0.3, 1.0, 3.0)]
    assert vals[0] < 1e-8
    assert all(b > a for a, b in zip(vals, vals[1:])), vals


def test_kid_unbiased_vs_biased(rng):
    # Independent data sets from one distribution: the unbiased MMD^2 has expectation
    # 0, the biased V-statistic is positive (it keeps k(x_i, x_i) in the within-set
    # means). R independent repetitions give a mean and its standard error.
    R, n, d = 300, 40, 4
    unb, bia = np.empty(R), np.empty(R)
    for i in range(R):
        x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        unb[i] = M.kid_from_features(x, y, subsets=1, subset_size=n, seed=i).mean
        bia[i] = M.kid_from_features(x, y, subsets=1, subset_size=n, seed=i, unbiased=False).mean
    se_u, se_b = unb.std() / np.sqrt(R), bia.std() / np.sqrt(R)
    assert abs(unb.mean()) < 3.5 * se_u, (unb.mean(), se_u)
    assert bia.mean() > 10 * se_b, (bia.mean(), se_b)


def test_kid_detects_shift_and_is_seeded(rng):
    x, y = rng.standard_normal((300, 8)), rng.standard_normal((300, 8)) + 0.5
    r1 = M.kid_from_features(x, y, subsets=20, subset_size=100, seed=3)
    r2 = M.kid_from_features(x, y, subsets=20, subset_size=100, seed=3)
    assert r1 == r2 and isinstance(r1, M.KIDResult)
    assert r1.mean > 5 * r1.std > 0
    # subsets drawn without replacement from the same set: x vs x is exactly 0 only in
    # expectation, but far below the shifted value
    assert abs(M.kid_from_features(x, x, subsets=20, subset_size=100).mean) < 0.1 * r1.mean


def _kid_reference(x, y, subsets, size, rng):
    """KID as Binkowski et al. 2018 define it, written with explicit loops over pairs:
    k(a, b) = (a.b / d + 1)^3; per subset (size draws without replacement from each set)
    the unbiased MMD^2 = sum_{i!=j} k(x_i,x_j) / (m(m-1)) + sum_{i!=j} k(y_i,y_j) / (m(m-1))
    - 2 sum_{i,j} k(x_i,y_j) / m^2; KID = the mean over subsets."""
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    vals = []
    for _ in range(subsets):
        xs = x[rng.permutation(len(x))[:size]]
        ys = y[rng.permutation(len(y))[:size]]
        m = size
        kxx = sum(k(xs[i], xs[j]) for i in range(m) for j in range(m) if i != j)
        kyy = sum(k(ys[i], ys[j]) for i in range(m) for j in range(m) if i != j)
        kxy = sum(k(xs[i], ys[j]) for i in range(m) for j in range(m))
        vals.append(kxx / (m * (m - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (m * m))
    return float(np.mean(vals))


def test_kid_matches_an_independent_implementation(rng):
    """kid_from_features against the loop-written definition: with subset_size >= n every
    subset is the whole set (MMD^2 is invariant to the order), so both give the same number to
    rounding; with smaller subsets both estimate the same quantity and agree within the
    spread of the subset means. Features of norm ~ sqrt(d) (x.y/d ~ O(1), Inception's regime)
    and 10x that (KID grows ~ s^6 for features scaled by s: the kernel is cubic in x.y)."""
    n, d = 30, 16
    x = rng.standard_normal((n, d))
    y = 0.8 * rng.standard_normal((n, d)) + 0.3
    whole = M.kid_from_features(x, y, subsets=3, subset_size=n)
    assert whole.std < 1e-12 * abs(whole.mean)
    ref = _kid_reference(x, y, 1, n, np.random.default_rng(1))
    assert abs(whole.mean - ref) <= 1e-10 * abs(ref), (whole.mean, ref)
    assert abs(M.mmd2(x, y) - ref) <= 1e-10 * abs(ref)
    sub = M.kid_from_features(x, y, subsets=200, subset_size=10, seed=2)
    ref_sub = _kid_reference(x, y, 200, 10, np.random.default_rng(3))
    assert abs(sub.mean - ref_sub) <= 4 * sub.std / np.sqrt(200) * np.sqrt(2), (sub, ref_sub)
    # the scale: features 10x larger, KID ~ 10^6 x larger in the regime x.y/d >> 1
    big = M.kid_from_features(10 * x, 10 * y, subsets=1, subset_size=n).mean
    assert abs(big - _kid_reference(10 * x, 10 * y, 1, n, np.random.default_rng(1))) <= 1e-10 * abs(big)
    assert 1e4 < big / whole.mean < 1e7, big / whole.mean


def test_fid_kid_default_features_check_the_input_shape(rng):
    # features=None means the reference network (tests/test_featnet.py), which takes 70 x 70 maps only
    v = rng.uniform(1500, 4500, (4, 1, 8, 8)).astype(np.float32)
    for fn in (M.fid, M.kid):
        with pytest.raises(ValueError, match="1, 70, 70"):
            fn(v, v)


def test_fid_kid_with_feature_callable(rng):
    real = rng.uniform(1500, 4500, (40, 1, 8, 8)).astype(np.float32)
    gen = np.clip(real + 600, 1500, 4500)
    seen = []

    def feats(b):  # records what the network sees: normalised batches
        seen.append((b.min(), b.max(), len(b)))
        return b.reshape(len(b), -1)[:, :6]
    assert M.fid(real, real, features=feats, batch_size=16) < 1e-8
    assert all(lo >= -1 and hi <= 1 and n <= 16 for lo, hi, n in seen)
    assert M.fid(real, gen, features=feats) > 0.05
    k = M.kid(real, gen, features=feats, subsets=10, subset_size=20)
    assert k.mean > 0
    # normalized=True passes data through unchanged
    rn = _norm.normalize_velocity(real)
    assert M.fid(rn, _norm.normalize_velocity(gen), normalized=True, features=feats) == \
        pytest.approx(M.fid(real, gen, features=feats), rel=1e-6)
    with pytest.raises(ValueError, match="data_min"):  # seismic in physical units needs its range
        M.fid(rng.standard_normal((4, 5, 10, 7)), rng.standard_normal((4, 5, 10, 7)),
              modality="seismic", features=lambda b: b.reshape(len(b), -1))


def test_seismic_range_lookup():
    # the transforms themselves are ubdiff.data's (tested in test_data_io.py)
    assert _norm.seismic_range("FlatVel-A") == pytest.approx((-26.95, 52.77))
    assert _norm.seismic_range("curvefault_b") == pytest.approx((-24.93, 50.98))
    assert _norm.seismic_range(data_range=(-1, 2)) == (-1.0, 2.0)
    with pytest.raises(ValueError, match="max > min"):
        _norm.seismic_range(data_range=(2, 1))
    with pytest.raises(ValueError, match="unknown OpenFWI family"):
        _norm.seismic_range("flatvel-z")
    with pytest.raises(ValueError, match="data_min/data_max"):
        _norm.seismic_range()


# ---- SSIM / MAE / MSE -----------------------------------------------------------
def _ssim_reference(a, b):
    """Straightforward SSIM (pytorch_ssim semantics): explicit 2-D window, zero padding,
    per-pixel window sums over sliding views. a, b in [-1, 1], shape (N, H, W)."""
    x, y = a * 0.5 + 0.5, b * 0.5 + 0.5
    g = np.array([np.exp(-((i - 5) ** 2) / (2 * 1.5 ** 2)) for i in range(11)])
    w2 = np.outer(g, g) / np.outer(g, g).sum()

    def local(z):
        zp = np.pad(z, ((0, 0), (5, 5), (5, 5)))
        return np.einsum("nhwij,ij->nhw", sliding_window_view(zp, (11, 11), axis=(1, 2)), w2)
    mx, my = local(x), local(y)
    sxx, syy, sxy = local(x * x) - mx ** 2, local(y * y) - my ** 2, local(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    m = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return m.reshape(len(m), -1).mean(1)


@pytest.mark.parametrize("shape", [(3, 1, 13, 17), (2, 1, 70, 70), (1, 1, 6, 9)])
def test_ssim_matches_reference(rng, shape):
    a = np.tanh(rng.standard_normal(shape)).astype(np.float32)
    b = np.clip(a + 0.3 * rng.standard_normal(shape), -1, 1).astype(np.float32)
    ref = _ssim_reference(a[:, 0].astype(np.float64), b[:, 0].astype(np.float64))
    # same float64 formula, different summation order: ~1e-12
    np.testing.assert_allclose(M.ssim(a, b, reduction="none"), ref, rtol=1e-9, atol=1e-10)
    assert M.ssim(a, b) == pytest.approx(ref.mean(), rel=1e-9)


def test_ssim_identity_symmetry_and_units(rng):
    a = np.tanh(rng.standard_normal((4, 1, 20, 20)))
    b = np.tanh(rng.standard_normal((4, 1, 20, 20)))
    assert M.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert M.ssim(a, b) == pytest.approx(M.ssim(b, a), abs=1e-14)
    assert M.ssim(a, b) < 0.5
    va, vb = _norm.denormalize_velocity(a), _norm.denormalize_velocity(b)
    assert M.ssim(va, vb, normalized=False) == pytest.approx(M.ssim(a, b), abs=1e-5)
    assert M.ssim(a[0, 0], b[0, 0]) == pytest.approx(M.ssim(a[:1], b[:1]), abs=1e-14)  # (H, W) input


def test_ssim_constant_shift_analytic():
    # Constant maps x = p and y = q (values in [0, 1] after x/2 + 1/2). With zero
    # padding, the window mass inside the map at pixel (i, j) is W = w(i) w(j), where
    # w(i) = sum of the 1-D Gaussian weights that fall inside the map. Then
    #   mu_x = p W, E[x^2] = p^2 W  ->  sigma_x^2 = p^2 W (1 - W), sigma_xy = p q W (1 - W),
    # so  SSIM(i, j) = (2pqW^2 + C1) / ((p^2+q^2) W^2 + C1)
    #               * (2pqW(1-W) + C2) / ((p^2+q^2) W(1-W) + C2).
    # In the interior (W = 1) only the luminance term changes under the shift:
    #   SSIM = (2pq + C1) / (p^2 + q^2 + C1).
    H, Wd = 16, 23
    p, q = 0.3, 0.3 + 0.25  # constant shift of 0.25 in [0, 1] units (0.5 in [-1, 1])
    g = M.pairwise.gaussian_window_1d()

    def mass(n):
        return np.array([sum(g[k] for k in range(11) if 0 <= i + k - 5 < n) for i in range(n)])
    W = np.outer(mass(H), mass(Wd))
    c1, c2, s = 0.01 ** 2, 0.03 ** 2, p * p + q * q
    expect = (2 * p * q * W ** 2 + c1) / (s * W ** 2 + c1) * (2 * p * q * W * (1 - W) + c2) / (s * W * (1 - W) + c2)
    x = np.full((1, 1, H, Wd), 2 * p - 1)
    y = np.full((1, 1, H, Wd), 2 * q - 1)
    np.testing.assert_allclose(M.ssim_map(x, y)[0, 0], expect, rtol=1e-10)
    interior = M.ssim_map(x, y)[0, 0, 5:-5, 5:-5]
    np.testing.assert_allclose(interior, (2 * p * q + c1) / (s + c1), rtol=1e-10)


def test_ssim_shift_of_textured_map_changes_luminance_only(rng):
    # For y = x + c, sigma_y = sigma_x and sigma_xy = sigma_x^2 wherever the window is
    # fully inside the map, so the contrast-structure term is 1 and
    # SSIM = (2 mu (mu + c) + C1) / (mu^2 + (mu + c)^2 + C1), mu = local mean of x.
    x = 0.2 + 0.1 * np.tanh(rng.standard_normal((1, 30, 30)))  # [0, 1] units
    c = 0.3
    a, b = 2 * x - 1, 2 * (x + c) - 1
    g = np.exp(-((np.arange(11) - 5) ** 2) / 4.5)
    w2 = np.outer(g, g) / np.outer(g, g).sum()
    mu = np.einsum("nhwij,ij->nhw", sliding_window_view(x, (11, 11), axis=(1, 2)), w2)[0]  # valid region
    c1 = 0.01 ** 2
    expect = (2 * mu * (mu + c) + c1) / (mu ** 2 + (mu + c) ** 2 + c1)
    np.testing.assert_allclose(M.ssim_map(a, b)[0, 5:-5, 5:-5], expect, rtol=1e-8)


def test_mae_mse_match_numpy(rng):
    a = rng.uniform(-1, 1, (5, 1, 9, 11))
    b = rng.uniform(-1, 1, (5, 1, 9, 11))
    assert M.mae(a, b) == pytest.approx(np.mean(np.abs(a - b)), rel=1e-12)
    assert M.mse(a, b) == pytest.approx(np.mean((a - b) ** 2), rel=1e-12)
    np.testing.assert_allclose(M.mse(a, b, reduction="none"), ((a - b) ** 2).mean(axis=(1, 2, 3)), rtol=1e-12)
    va, vb = _norm.denormalize_velocity(a), _norm.denormalize_velocity(b)
    # float32 round trip through m/s: ~1e-7 absolute on [-1, 1] values
    assert M.mae(va, vb, normalized=False) == pytest.approx(np.mean(np.abs(a - b)), abs=1e-5)


def test_pairwise_errors(rng):
    with pytest.raises(ValueError, match="shapes differ"):
        M.ssim(np.zeros((2, 1, 8, 8)), np.zeros((2, 1, 8, 9)))
    with pytest.raises(ValueError, match="H, W"):
        M.mae(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="reduction"):
        M.mse(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), reduction="sum")


# ---- physics consistency ---------------------------------------------------------
def fake_simulate(v, nt=60, **_):
    """Deterministic stand-in for the wave equation: (B,1,H,W) m/s -> (B,5,nt,W)."""
    cols = v[:, 0].mean(axis=1).astype(np.float64)  # (B, W)
    depth = v[:, 0, :, :].std(axis=1).astype(np.float64) + 1.0
    t = np.arange(nt)[None, None, :, None]
    shot = np.arange(5)[None, :, None, None]
    s = np.sin(t * cols[:, None, None, :] / 2000.0 + shot) * np.log(depth)[:, None, None, :]
    return s.astype(np.float32)


def _velocity(rng, n=6, h=10, w=12):
    return rng.uniform(1500, 4500, (n, 1, h, w)).astype(np.float32)


def test_physics_consistency_fake_simulator(rng):
    v = _velocity(rng)
    s = fake_simulate(v)
    r = M.physics_consistency(v, s, simulate=fake_simulate, batch_size=4, worst_k=3)
    assert r["rel_l1"].shape == (6,) and r["corr"].shape == (6, 5)
    assert np.all(r["rel_l1"] < 1e-6) and np.all(r["rel_l2"] < 1e-6)
    np.testing.assert_allclose(r["corr"], 1.0, atol=1e-5)
    shuffled = M.physics_consistency(v, np.roll(s, 1, axis=0), simulate=fake_simulate, batch_size=4, worst_k=3)
    assert np.all(shuffled["rel_l2"] > 0.3) and shuffled["summary"]["rel_l2"]["median"] > 0.5
    assert shuffled["summary"]["corr"]["mean"] < 0.5
    # worst pairs: largest rel_l2 first, with their simulated records
    w = shuffled["worst"]
    assert list(w) == list(np.argsort(-shuffled["rel_l2"])[:3])
    np.testing.assert_allclose(shuffled["worst_simulated"], fake_simulate(v[w]))
    assert set(shuffled["summary"]["rel_l2"]) >= {"mean", "median", "q05", "q95", "std"}


def test_physics_consistency_subsampled_time(rng):
    v = _velocity(rng, n=3)
    s = fake_simulate(v, nt=100)[:, :, ::3]  # 34 samples
    r = M.physics_consistency(v, s, simulate=fake_simulate, sim_kwargs={"nt": 100})
    assert r["subsample"] == 3 and np.all(r["rel_l2"] < 1e-6)
    assert subsample_factor(1000, 1000) == 1 and subsample_factor(1000, 250) == 4
    assert subsample_factor(1000, 334) == 3
    with pytest.raises(ValueError, match="integer factor"):
        M.physics_consistency(v, fake_simulate(v, nt=100)[:, :, :45], simulate=fake_simulate,
                              sim_kwargs={"nt": 100})
    with pytest.raises(ValueError, match="stretched"):
        subsample_factor(100, 200)


def test_physics_consistency_normalized_inputs(rng):
    v = _velocity(rng, n=3)
    s = fake_simulate(v)
    lo, hi = -2.0, 2.0
    r = M.physics_consistency(_norm.normalize_velocity(v), _norm.normalize_seismic(s, lo, hi),
                              simulate=fake_simulate, normalized=True, data_range=(lo, hi))
    # float32 round trips of velocity (m/s) and log/expm1: relative ~1e-5
    assert np.all(r["rel_l2"] < 1e-3)
    with pytest.raises(ValueError, match="data_min"):
        M.physics_consistency(v, s, simulate=fake_simulate, normalized=True)


def test_physics_consistency_errors(rng):
    v = _velocity(rng, n=3)
    with pytest.raises(ValueError, match="different numbers"):
        M.physics_consistency(v, fake_simulate(v)[:2], simulate=fake_simulate)
    with pytest.raises(ValueError, match="shots/receivers"):
        M.physics_consistency(v, fake_simulate(v)[:, :3], simulate=fake_simulate)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        M.physics_consistency(v[:, 0], fake_simulate(v), simulate=fake_simulate)


def test_plot_worst_pairs(tmp_path, rng):
    v = _velocity(rng, n=4)
    s = np.roll(fake_simulate(v), 1, axis=0)
    r = M.physics_consistency(v, s, simulate=fake_simulate, worst_k=2)
    path = tmp_path / "worst.png"
    fig = M.plot_worst_pairs(v, s, r, path=path, shots=(0, 4))
    assert path.stat().st_size > 1000 and len(fig.axes) >= 2 * 7
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_physics_consistency_real_simulator(rng):
    from ubdiff import physics
    # 20x20 maps, dx 10 m, dt 1 ms, v <= 3000 m/s: Courant number 0.3, stable
    kw = dict(freq=15.0, nt=200, dt=1e-3, dx=10.0, nbc=20, src_x=(0, 5, 10, 14, 19), src_z=1, rec_z=1)
    v = np.stack([np.full((1, 20, 20), 2000.0), np.linspace(1500, 3000, 20)[None, :, None] * np.ones((1, 20, 20))])
    v = v.astype(np.float32)
    s = physics.forward_model(v, **kw)
    r = M.physics_consistency(v, s, sim_kwargs=kw)  # default simulate = ubdiff.physics.forward_model
    assert np.all(r["rel_l2"] < 1e-5)
    swapped = M.physics_consistency(v, s[::-1].copy(), sim_kwargs=kw)
    assert np.all(swapped["rel_l2"] > 0.05)


# ---- report and CLI ----------------------------------------------------------------
def test_write_report(tmp_path, rng):
    results = {
        "physics": {"summary": M.summarize(rng.uniform(size=50)), "rel_l2": rng.uniform(size=5),
                    "n": 5, "nan_value": float("nan")},
        "fid_kid": {"skipped": "no default feature network here"},
        "big": {"array": np.zeros((400, 400))},
    }
    figs = {"grid": M.plot_velocity_grid(_velocity(rng, n=5)),
            "gathers": M.plot_seismic_grid(fake_simulate(_velocity(rng, n=3))),
            "hist": M.plot_histograms({"a": rng.uniform(size=30), "b": {"x": rng.normal(size=20), "y": [1, 2, 3]}})}
    out = M.write_report(tmp_path / "rep", results, figs)
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["physics"]["n"] == 5 and len(rep["physics"]["rel_l2"]) == 5 and rep["physics"]["nan_value"] is None
    assert rep["big"]["array"] == {"omitted_array": {"shape": [400, 400], "dtype": "float64"}}
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "*Skipped*: no default feature network" in md
    assert "| summary | 50 | 0 |" in md and " median |" in md  # summary dict as one wide-table row
    for name in ("grid", "gathers", "hist"):
        assert (tmp_path / "rep" / f"{name}.png").stat().st_size > 1000 and f"({name}.png)" in md
    assert len(out["figures"]) == 3


def test_cli_help():
    p = subprocess.run([sys.executable, "-m", "ubdiff.cli_evaluate", "evaluate", "--help"],
                       capture_output=True, text=True, timeout=60,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert p.returncode == 0, p.stderr
    for flag in ("--generated", "--real", "--out", "--max-samples", "--skip-physics"):
        assert flag in p.stdout


def flat_features(b):
    """Feature callable used by the CLI test (--features test_metrics:flat_features)."""
    return b.reshape(len(b), -1)[:, ::97][:, :8]


def _write_set(folder, v, s, vel_name="model1.npy", seis_name="data1.npy"):
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, vel_name), v)
    if s is not None:
        np.save(os.path.join(folder, seis_name), s)


def _run_cli(argv):
    import argparse

    from ubdiff import cli_evaluate
    parser = argparse.ArgumentParser()
    cli_evaluate.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_evaluate_end_to_end(tmp_path, rng, monkeypatch):
    v_real = _velocity(rng, n=12, h=70, w=70)
    v_gen = np.clip(v_real + rng.normal(0, 100, v_real.shape), 1500, 4500).astype(np.float32)
    s_gen = fake_simulate(v_gen, nt=60)
    s_gen[:3] = s_gen[3:6]  # three inconsistent pairs
    _write_set(tmp_path / "gen", v_gen[:6], s_gen[:6], "vel2_1_0.npy", "seis2_1_0.npy")
    _write_set(tmp_path / "gen", v_gen[6:], s_gen[6:], "vel2_1_1.npy", "seis2_1_1.npy")
    _write_set(tmp_path / "real", v_real, fake_simulate(v_real, nt=60))
    # physics through the CLI with the fake simulator in place of the forward model
    monkeypatch.setattr(M.physics, "_default_simulate", lambda: fake_simulate)
    rc = _run_cli(["evaluate", "--generated", str(tmp_path / "gen"), "--real", str(tmp_path / "real"),
                   "--out", str(tmp_path / "rep"), "--paired", "--max-samples", "10",
                   "--features", "test_metrics:flat_features"])
    assert rc == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["data"]["generated"]["velocity_shape"] == [10, 1, 70, 70]
    assert 0 < rep["pairwise"]["ssim"] < 1 and rep["pairwise"]["mae"] > 0
    assert rep["fid_kid"]["velocity"]["fid"] > 0 and "kid_mean" in rep["fid_kid"]["seismic"]
    assert sorted(rep["physics"]["worst_indices"][:3]) == [0, 1, 2]
    assert max(rep["physics"]["rel_l2"][3:]) < 1e-6
    for f in ("report.md", "physics_worst_pairs.png", "generated_velocity.png", "value_histograms.png"):
        assert (tmp_path / "rep" / f).exists(), f


def test_cli_evaluate_skips_without_pairs_and_on_request(tmp_path, rng):
    v = _velocity(rng, n=4, h=70, w=70)
    _write_set(tmp_path / "gen", v, None)
    _write_set(tmp_path / "real", v[::-1].copy(), None)
    assert _run_cli(["evaluate", "--generated", str(tmp_path / "gen"), "--real", str(tmp_path / "real"),
                     "--out", str(tmp_path / "rep"), "--skip-physics", "--skip-fid"]) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert "--skip-fid" in rep["fid_kid"]["skipped"]
    assert "not paired" in rep["pairwise"]["skipped"]
    assert "--skip-physics" in rep["physics"]["skipped"]


def test_load_folder_pairs_by_suffix_in_natural_order(tmp_path):
    from ubdiff.data import DataError
    from ubdiff.metrics._io import load_folder
    for i in (10, 2):  # natural order: 2 before 10
        np.save(tmp_path / f"model{i}.npy", np.full((2, 1, 3, 3), i, np.float32))
        np.save(tmp_path / f"data{i}.npy", np.full((2, 5, 4, 3), i, np.float32))
    d = load_folder(str(tmp_path))
    assert d["paired"] and d["velocity"][:, 0, 0, 0].tolist() == [2, 2, 10, 10]
    assert d["seismic"][:, 0, 0, 0].tolist() == [2, 2, 10, 10]
    assert len(load_folder(str(tmp_path), max_samples=3)["velocity"]) == 3
    # a velocity file without its seismic partner is named, not silently left out
    np.save(tmp_path / "model7.npy", np.zeros((2, 1, 3, 3), np.float32))
    with pytest.raises(DataError, match=r"without a partner: model7\.npy"):
        load_folder(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_folder(str(tmp_path / "missing"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no model"):
        load_folder(str(tmp_path / "empty"))
    os.makedirs(tmp_path / "odd")
    np.save(tmp_path / "odd" / "model1.npy", np.zeros((2, 1, 3, 3), np.float32))
    np.save(tmp_path / "odd" / "data2.npy", np.zeros((2, 5, 4, 3), np.float32))
    with pytest.raises(DataError, match=r"without a partner: data2\.npy, model1\.npy"):
        load_folder(str(tmp_path / "odd"))
