"""InversionNet usefulness protocol (paper Table 3): ubdiff.metrics.usefulness and
`ubdiff evaluate --inversionnet`.

Everything runs on tiny synthetic data: flat-layer velocity maps (the FlatVel-A
generator) and a cheap stand-in for seismic records, in which time sample t of
every shot holds the velocity of depth row t * 70 // nt (shot c shifted by 3c
receivers). That is a learnable, deterministic velocity -> record map, so a
network trained on true pairs must beat one trained on shuffled pairs, at a
fraction of the cost of wave simulation.
"""
import json
import os

import numpy as np
import pytest

import ubdiff
from ubdiff.data import Normalizer, OpenFWIDataset, generate_velocity, normalize_velocity
from ubdiff.metrics import mae, mse, ssim
from ubdiff.metrics.usefulness import inversion_usefulness, plot_inversion_examples
from ubdiff.models import InversionNet

NT = 64
TINY = {"base": "small", "dims": (4, 8, 8, 16, 16), "nt": NT}   # 36k parameters, ~10 ms per step
CONST = {"data_min": -20.0, "data_max": 40.0, "label_min": 1500.0, "label_max": 4500.0}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The shared 2-core test machine makes 2 OpenMP threads up to 30x slower
    # (oversubscription); results do not depend on the thread count.
    before = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    yield
    ubdiff.set_num_threads(before)


def pairs(n, seed, nt=NT):
    """Normalised (seismic (n, 5, nt, 70), velocity (n, 1, 70, 70))."""
    v = normalize_velocity(generate_velocity("flatvel-a", n, seed=seed))
    rows = (np.arange(nt) * 70) // nt
    s = np.stack([np.roll(v[:, 0][:, rows, :], 3 * c, axis=2) for c in range(5)], axis=1)
    return s.astype(np.float32), v


def physical(p):
    n = Normalizer(CONST)
    return n.seismic_inverse(p[0]), n.velocity_inverse(p[1])


def run(gen, test, real=None, **kw):
    kw = {"config": TINY, "epochs": 2, "batch_size": 4, "lr": 1e-3, "normalized": True, "progress": False, **kw}
    return inversion_usefulness(gen, test, real, **kw)


def test_keys_and_metrics_equal_predict():
    gen, test, real = pairs(12, 1), pairs(6, 2), pairs(8, 3)
    r = run(gen, test, real, return_models=True)
    assert set(r) == {"protocol", "summary", "generated", "real", "examples", "models"}
    assert set(r["summary"]) == {"generated", "real"}
    for key, n in (("generated", 12), ("real", 8)):
        assert r["summary"][key]["n_train"] == n
        assert r[key]["train_steps"] == 2 * (n // 4)   # partial batches dropped, as in InversionNet.fit
        assert len(r[key]["train_loss"]) == 2 and all(np.isfinite(r[key]["train_loss"]))
        pred = r["models"][key].predict(test[0], batch_size=6, progress=False)
        # eval-mode predictions do not depend on the batch split beyond float32 rounding
        np.testing.assert_allclose(r[key]["ssim"], ssim(pred, test[1]), rtol=1e-5)
        np.testing.assert_allclose(r[key]["mae"], mae(pred, test[1]), rtol=1e-5)
        np.testing.assert_allclose(r[key]["mse"], mse(pred, test[1]), rtol=1e-5)
        np.testing.assert_allclose(r[key]["ssim_per_sample"], ssim(pred, test[1], reduction="none"), rtol=1e-5)
        assert r["summary"][key]["ssim"] == r[key]["ssim"]
        np.testing.assert_allclose(r["examples"][key], pred[:4], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(r["examples"]["true"], test[1][:4])
    assert r["protocol"]["n_test"] == 6 and r["protocol"]["time_subsample"]["generated"] == 1
    fig = plot_inversion_examples(r)
    assert len(fig.axes) == 3 * 4 + 1   # 3 rows x 4 samples + colour bar


def test_training_equals_inversionnet_fit():
    # The batch-iterator loop must reproduce InversionNet.fit step for step.
    gen, test = pairs(10, 1), pairs(4, 2)
    r = run(gen, test, epochs=2, batch_size=4, seed=3, return_models=True)
    ref = InversionNet(TINY, seed=3, max_batch=4)
    hist = ref.fit(gen[0], gen[1], epochs=2, batch_size=4, lr=1e-3, seed=3, progress=False)
    assert r["generated"]["train_loss"] == hist
    got = r["models"]["generated"].state_dict()
    for name, want in ref.state_dict().items():
        np.testing.assert_array_equal(got[name], want, err_msg=name)


def test_physical_units_memmaps_and_datasets_match_normalised(tmp_path):
    # physical units; records at 2x the config's nt are subsampled automatically
    gp, tp = physical(pairs(8, 1, nt=2 * NT)), physical(pairs(4, 2, nt=2 * NT))
    n = Normalizer(CONST)
    base = run((n.seismic(gp[0]), n.velocity(gp[1])), (n.seismic(tp[0]), n.velocity(tp[1])))
    assert base["protocol"]["time_subsample"] == {"generated": 2, "real_test": 2}
    # same float operations per batch as normalising up front -> identical results
    r = run(gp, tp, normalized=False, dataset=CONST)
    assert r["summary"] == base["summary"]
    # memmapped files read through ubdiff.data, in physical units
    for name, (s, v) in (("g", gp), ("t", tp)):
        os.makedirs(tmp_path / name)
        np.save(tmp_path / name / "data1.npy", s)
        np.save(tmp_path / name / "model1.npy", v)
    ds = {k: OpenFWIDataset([(str(tmp_path / k / "data1.npy"), str(tmp_path / k / "model1.npy"))],
                            seismic_shape=(5, 2 * NT, 70)) for k in ("g", "t")}
    r2 = run(ds["g"], ds["t"], normalized=False, data_range=(-20.0, 40.0))
    assert r2["summary"] == r["summary"]
    # a dataset that normalises itself is taken as normalised
    dn = OpenFWIDataset([(str(tmp_path / "g" / "data1.npy"), str(tmp_path / "g" / "model1.npy"))],
                        seismic_shape=(5, 2 * NT, 70), info=CONST, normalize=True)
    r3 = run(dn, ds["t"], normalized=False, data_range=(-20.0, 40.0))
    assert r3["summary"]["generated"] == r["summary"]["generated"]
    mm = np.load(tmp_path / "g" / "data1.npy", mmap_mode="r"), np.load(tmp_path / "g" / "model1.npy", mmap_mode="r")
    r4 = run(mm, tp, normalized=False, dataset=CONST)
    assert r4["summary"] == r["summary"]


def test_reproducible_with_seed():
    gen, test, real = pairs(8, 1), pairs(4, 2), pairs(8, 3)
    a, b = run(gen, test, real, seed=5), run(gen, test, real, seed=5)
    assert a["summary"] == b["summary"]
    np.testing.assert_array_equal(a["examples"]["real"], b["examples"]["real"])
    c = run(gen, test, real, seed=6)
    assert c["summary"]["generated"]["mae"] != a["summary"]["generated"]["mae"]


def test_true_pairs_beat_shuffled_pairs():
    # 320 AdamW steps of the tiny net per training (~6-11 s on the shared machine). Measured
    # (seed 0/1): test SSIM 0.65/0.67 on true pairs vs 0.53/0.56 on shuffled
    # ones, MAE 0.19 vs 0.39/0.27; the margins asserted are about half of that.
    real, test = pairs(32, 1), pairs(16, 2)
    garbage = (real[0], real[1][np.random.default_rng(0).permutation(32)])
    r = run(garbage, test, real, epochs=40, batch_size=4, lr=3e-3, seed=0)
    s = r["summary"]
    assert s["real"]["ssim"] > s["generated"]["ssim"] + 0.05, s
    assert s["real"]["mae"] < s["generated"]["mae"] - 0.05, s
    assert s["real"]["mse"] < s["generated"]["mse"], s


def test_bad_inputs_raise_clear_errors():
    gen, test = pairs(8, 1), pairs(4, 2)
    with pytest.raises(ValueError, match="8 seismic records but 7 velocity maps"):
        run((gen[0], gen[1][:7]), test)
    with pytest.raises(ValueError, match=r"velocity maps must be \(1, 70, 70\)"):
        run(gen, (test[0], test[1][:, :, :60]))
    with pytest.raises(ValueError, match="time samples"):
        run((gen[0][:, :, :50], gen[1]), test)
    with pytest.raises(ValueError, match=r"seismic records must be \(5, nt, 70\)"):
        run((gen[0][:, :3], gen[1]), test)
    with pytest.raises(ValueError, match="4-D"):
        run((gen[0][0], gen[1]), test)
    gp = physical(gen)
    with pytest.raises(ValueError, match="looks like m/s"):
        run(gp, test)                                   # physical data declared normalised
    with pytest.raises(ValueError, match="looks like physical amplitudes"):
        run((gp[0] * 10, gen[1]), test)
    with pytest.raises(ValueError, match="looks normalised already"):
        run(gen, physical(test), normalized=False, dataset=CONST)
    with pytest.raises(ValueError, match="data_min/data_max"):
        run(gp, physical(test), normalized=False)       # physical without constants
    with pytest.raises(ValueError, match="normalized=True"):
        run(gen, test, dataset="flatvel-a")
    with pytest.raises(ValueError, match="non-finite"):
        bad = gen[1].copy()
        bad[3, 0, 5, 5] = np.nan
        run((gen[0], bad), test)
    with pytest.raises(ValueError, match="at least 2 samples"):
        run((gen[0][:1], gen[1][:1]), test)
    with pytest.raises(ValueError, match="epochs"):
        run(gen, test, epochs=0)
    with pytest.raises(ValueError, match="lr must be"):
        run(gen, test, lr="fast")
    with pytest.raises(ValueError, match="optimizer keys"):
        run(gen, test, optimizer={"momentum": 0.9})
    with pytest.raises(TypeError, match="expected a"):
        run(gen[0], test)
    with pytest.raises(ValueError, match="unknown config"):
        run(gen, test, config="huge")


def _write_folder(path, seis, vel):
    os.makedirs(path)
    np.save(os.path.join(path, "data1.npy"), seis)
    np.save(os.path.join(path, "model1.npy"), vel)


def test_cli_inversionnet_small(tmp_path):
    # The 'small' config (nt = 250) on records of nt = 1000 (auto-subsampled 4x), physical units.
    from ubdiff.cli_evaluate import main
    n = Normalizer({**CONST, "data_min": -26.95, "data_max": 52.77})   # FlatVel-A's published range
    folders = {}
    for name, count, seed in (("gen", 8, 1), ("real", 4, 2), ("train", 6, 3)):
        s, v = pairs(count, seed, nt=1000)
        folders[name] = str(tmp_path / name)
        _write_folder(folders[name], n.seismic_inverse(s), n.velocity_inverse(v))
    out = str(tmp_path / "report")
    rc = main(["evaluate", "--generated", folders["gen"], "--real", folders["real"], "--out", out,
               "--skip-physics", "--dataset", "flatvel-a", "--inversionnet", "small", "--inv-epochs", "1",
               "--inv-batch-size", "4", "--real-train", folders["train"]])
    assert rc == 0
    rep = json.load(open(os.path.join(out, "report.json")))
    inv = rep["inversionnet"]
    assert set(inv["summary"]) == {"trained on generated", "trained on real (reference)"}
    assert inv["summary"]["trained on generated"]["n_train"] == 8
    assert inv["summary"]["trained on real (reference)"]["n_train"] == 6
    assert inv["protocol"]["config"] == "small" and inv["protocol"]["time_subsample_generated"] == 4
    assert inv["protocol"]["data_min"] == pytest.approx(-26.95)   # --dataset flatvel-a
    assert 0 < inv["summary"]["trained on generated"]["mae"] < 2
    assert len(inv["trained on generated"]["ssim_per_sample"]) == 4
    assert os.path.exists(os.path.join(out, "inversionnet_examples.png"))
    md = open(os.path.join(out, "report.md")).read()
    assert "## inversionnet" in md and "trained on real (reference)" in md
    # default: off, reported as skipped; other sections still there
    out2 = str(tmp_path / "report2")
    assert main(["evaluate", "--generated", folders["gen"], "--real", folders["real"], "--out", out2,
                 "--skip-physics"]) == 0
    rep2 = json.load(open(os.path.join(out2, "report.json")))
    assert "skipped" in rep2["inversionnet"] and "value_statistics" in rep2


def test_open_pairs_folder_is_lazy_and_bounded(tmp_path):
    from ubdiff.metrics.usefulness import open_pairs_folder
    s, v = physical(pairs(6, 1, nt=2 * NT))
    _write_folder(str(tmp_path / "f"), s, v)
    ds = open_pairs_folder(str(tmp_path / "f"))
    assert len(ds) == 6 and ds.seismic([0]).shape == (1, 5, 2 * NT, 70)   # shape taken from the file
    np.testing.assert_array_equal(ds.velocity([5]), v[5:6])
    sub = open_pairs_folder(str(tmp_path / "f"), max_samples=4)
    assert len(sub) == 4
    np.testing.assert_array_equal(sub.seismic([3]), s[3:4])
