"""Generated velocity families against the statistics measured on real OpenFWI maps.

Targets and rules: specs/velocity_families.md. Each test says whether a
statistic is measured from the generated maps themselves or read from the
generator's recorded parameters (``return_params=True``). Sample sizes give
standard errors well below the stated tolerances (e.g. a 20 % proportion over
4000 maps has a standard error of 0.6 %).
"""
import numpy as np
import pytest

from ubdiff.data import FAMILIES, generate_velocity


@pytest.fixture(scope="module")
def flatvel():
    return generate_velocity("flatvel-a", 4000, seed=11, return_params=True)


@pytest.fixture(scope="module")
def curvevel():
    return generate_velocity("curvevel-a", 2500, seed=12, return_params=True)


@pytest.fixture(scope="module")
def flatfault():
    return generate_velocity("flatfault-a", 1500, seed=13, return_params=True)


def _distinct(v):
    """Number of distinct values in each map."""
    s = np.sort(v.reshape(len(v), -1), axis=1)
    return 1 + (np.diff(s, axis=1) > 0).sum(1)


@pytest.mark.parametrize("family", FAMILIES)
def test_shape_range_and_seeds(family):
    a = generate_velocity(family, 40, seed=5)
    assert a.shape == (40, 1, 70, 70) and a.dtype == np.float32
    assert a.min() >= 1500 and a.max() <= 4500 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, generate_velocity(family, 40, seed=5))   # reproducible
    assert not np.array_equal(a, generate_velocity(family, 40, seed=6))
    assert len({m.tobytes() for m in a}) == 40                                # maps differ


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown OpenFWI family"):
        generate_velocity("flatvel", 3)
    with pytest.raises(ValueError):
        generate_velocity("flatvel-a", -1)
    assert generate_velocity("flatvel-a", 0).shape == (0, 1, 70, 70)


# --- FlatVel-A (measured from the maps) ------------------------------------------------
def test_flatvel_a_layer_histogram(flatvel):
    v, _ = flatvel
    counts = _distinct(v)   # velocities strictly increase, so distinct values = visible layers
    frac = np.array([(counts == k).mean() for k in range(3, 9)])
    target = np.array([0.10, 0.20, 0.20, 0.20, 0.20, 0.08])   # spec: measured on 6000 maps
    assert counts.min() >= 3 and counts.max() <= 8
    np.testing.assert_allclose(frac, target, atol=0.025)       # spec: model reproduces to ~2 %


def test_flatvel_a_horizontal_increasing_whole_numbers(flatvel):
    v, _ = flatvel
    m = v[:, 0]
    assert (m == m[:, :, :1]).all()                           # every row constant: horizontal
    col = m[:, :, 0]
    d = np.diff(col, axis=1)
    assert (d >= 0).all()                                     # never decreases with depth
    assert (np.round(m) == m).all() and m.min() >= 1500 and m.max() <= 4500
    # thickness of each visible layer (the bottom one may be cut by the map edge)
    thick = [np.diff(np.flatnonzero(np.r_[True, r[1:] != r[:-1]])) for r in col]
    thinnest = min(t.min() for t in thick if len(t))
    assert thinnest >= 5                                      # spec: thinnest seen 5 cells
    counts = _distinct(v)
    for k, typical in ((4, 20), (8, 10)):   # spec: typical thickness ~20 (4 layers) to ~10 (8)
        full = np.concatenate([t[:-1] for t, c in zip(thick, counts) if c == k])  # not the cut one
        assert abs(np.median(full) - typical) <= 2


# --- CurveVel-A --------------------------------------------------------------------------
def test_curvevel_a_layers_all_visible_and_monotone(curvevel):
    v, p = curvevel
    counts = _distinct(v)                                     # measured from the maps
    np.testing.assert_array_equal(counts, p["layers"])        # every drawn layer is visible
    frac = np.array([(counts == k).mean() for k in range(4, 9)])
    np.testing.assert_allclose(frac, 0.2, atol=0.025)         # spec: ~20 % each of 4..8
    assert (np.diff(v[:, 0], axis=1) >= 0).all()              # increases down every column
    assert (np.round(v) == v).all()                           # no blending
    assert (v[:, 0] != v[:, 0, :, :1]).any(axis=(1, 2)).mean() > 0.95   # layers are curved


def test_curvevel_a_curve_statistics(curvevel):
    v, p = curvevel
    d = p["curve"]                                            # recorded d(x) of each map
    ptp = np.ptp(d, axis=1)
    assert abs(np.median(ptp) - 21) < 2.5                     # spec: median 21 cells
    lo, hi = np.percentile(ptp, [5, 95])
    assert 7 <= lo <= 11 and 40 <= hi <= 56                   # spec: 5-95 % 9-48
    dev = np.abs(d - d.mean(axis=1, keepdims=True))
    assert dev[:, -10:].mean() > 3 * dev[:, :10].mean()       # amplitude grows to the right
    # Measured from the maps: an interface spanning every column is the curve
    # shifted, so the ptp of its depth equals ptp(d) up to the 1-cell grid.
    checked, left, right = 0, [], []
    for m, dd in zip(v[:, 0], d):
        for val in np.unique(m)[1:]:
            hit = m == val
            if hit.any(0).all() and not hit[0].any():
                depth = hit.argmax(axis=0)
                assert abs(np.ptp(depth) - np.ptp(dd)) <= 1.0 + 1e-6
                left.append(np.abs(depth[:10] - depth.mean()).mean())
                right.append(np.abs(depth[-10:] - depth.mean()).mean())
                checked += 1
    assert checked > 800
    assert np.mean(right) > 2 * np.mean(left)                 # growth seen in the maps too


def test_curvevel_interface_spacing(curvevel):
    v, _ = curvevel
    per_map = []   # measured from the maps: per map, median vertical thickness of the layers
    for m in v[:, 0]:                      # not cut by the top or bottom edge, every 5th column
        t = []
        for c in m[:, ::5].T:
            b = np.flatnonzero(np.r_[True, c[1:] != c[:-1], True])
            t.extend(np.diff(b)[1:-1])
        if t:
            per_map.append(np.median(t))
    assert abs(np.median(per_map) - 14) <= 1.5                # spec: median 14 cells
    lo, hi = np.percentile(per_map, [5, 95])
    assert 8 <= lo <= 12 and 20 <= hi <= 26                   # spec: 5-95 % 10-23


# --- FlatFault-A -------------------------------------------------------------------------
def test_flatfault_a_layers(flatfault):
    v, p = flatfault
    pure = []                                                  # measured from the maps:
    for m in v[:, 0]:                                          # values covering >= 30 pixels
        vals, cnt = np.unique(m, return_counts=True)
        pure.append(vals[cnt >= 30])
    four = np.array([len(q) == 4 for q in pure])
    assert four.mean() > 0.97                                  # spec: nearly always 4 layers
    q = np.array([x for x, ok in zip(pure, four) if ok])
    assert ((q[:, :2] <= 3000) & (q[:, 2:] >= 3000)).all()    # two slow, two fast
    np.testing.assert_allclose(q.mean(0), [1990, 2477, 3496, 3993], atol=45)


def test_flatfault_a_fault_counts(flatfault):
    v, p = flatfault
    unfaulted = (v[:, 0] == v[:, 0, :, :1]).all(axis=(1, 2))  # from the maps: all rows constant
    assert abs(unfaulted.mean() - 0.04) < 0.015                # spec: none in 4 %
    nf = p["n_faults"]                                         # recorded parameters
    np.testing.assert_array_equal(unfaulted, nf == 0)
    assert abs((nf == 1).mean() - 0.75) < 0.03 and abs((nf >= 2).mean() - 0.20) < 0.03


def test_flatfault_a_throw_dip_sense(flatfault):
    _, p = flatfault                                           # recorded parameters
    first = p["faults"][0]
    t, dip = first["throw"], np.rad2deg(first["dip"])
    assert t.min() >= 3 and t.max() <= 10 and abs(np.median(t) - 7) < 0.4
    assert abs(np.median(dip) - 71) < 2                       # spec: median ~71 deg
    lo, hi = np.percentile(dip, [5, 95])
    assert abs(lo - 46) < 4 and abs(hi - 88) < 3              # spec: 5-95 % 46-88 deg
    assert abs(first["normal"].mean() - 2 / 3) < 0.04          # two-thirds normal


def test_flatfault_a_blended_pixels(flatfault):
    v, p = flatfault
    layer_vals = p["velocities"]                                # the 4 drawn layer velocities
    blended = np.mean([~np.isin(m, lv) for m, lv in zip(v[:, 0], layer_vals)])
    assert 0.07 <= blended <= 0.11                              # spec: ~9 % of pixels


# --- the other families (smoke-level properties of the documented rules) --------------
def test_b_variants_and_curvefault():
    fb, p = generate_velocity("flatvel-b", 500, seed=1, return_params=True)
    col = fb[:, 0, :, 0]
    assert (np.diff(col, axis=1) < 0).any(axis=1).mean() > 0.5   # not forced to increase
    assert 6 <= p["layers"].min() and p["layers"].max() <= 10
    ffb, p = generate_velocity("flatfault-b", 300, seed=1, return_params=True)
    assert set(np.unique(p["layers"])) <= {6, 7, 8}
    cf, p = generate_velocity("curvefault-a", 300, seed=1, return_params=True)
    assert (p["n_faults"] == 1).all() and np.ptp(p["curve"], axis=1).mean() > 3
    sa = generate_velocity("style-a", 200, seed=1)
    sb = generate_velocity("style-b", 200, seed=1)
    rough = lambda m: np.abs(np.diff(m, axis=3)).mean()        # noqa: E731
    assert rough(sb) > 1.5 * rough(sa)                          # B is blurred less
