"""make_dataset: OpenFWI layout, pairing, constants, resume, preview, CLI (fake simulator)."""
import argparse
import json
import os

import numpy as np
import pytest

from ubdiff.cli_data import register
from ubdiff.data import DataError, OpenFWIDataset, generate_velocity, load_info, unbalanced_split
from ubdiff.data import make_dataset

NT = 16


def fake_simulate(vel, *, freq=15.0, nt=1000, dt=1e-3, calls=None):
    """Cheap deterministic stand-in of forward_model: (k,1,70,70) -> (k,5,nt,70)."""
    if calls is not None:
        calls.append(len(vel))
    t = np.arange(nt, dtype=np.float32)[None, None, :, None]
    shot = np.arange(5, dtype=np.float32)[None, :, None, None]
    top = (vel[:, :, 0:1, :] - 3000.0) / 100.0                  # (k, 1, 1, 70)
    return (top * np.cos(0.3 * t * (shot + 1) * freq / 15.0)).astype(np.float32)


def counting(calls, fail_at=None):
    def sim(vel, **kw):
        if fail_at is not None and len(calls) == fail_at:
            raise RuntimeError("simulated crash")
        return fake_simulate(vel, calls=calls, **kw)
    return sim


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("ds"))
    meta = make_dataset("flatvel-a", 1100, 620, out, seed=7, simulate=fake_simulate, nt=NT,
                        progress=False, chunk=200)
    return out, meta


def test_layout_and_pairing(made):
    out, meta = made
    assert sorted(os.listdir(out)) == ["data1.npy", "data2.npy", "model1.npy", "model2.npy",
                                       "model3.npy", "preview.png", "ubdiff_dataset.json"]
    shapes = {f: np.load(os.path.join(out, f), mmap_mode="r").shape
              for f in os.listdir(out) if f.endswith(".npy")}
    assert shapes == {"model1.npy": (500, 1, 70, 70), "model2.npy": (500, 1, 70, 70),
                      "model3.npy": (100, 1, 70, 70), "data1.npy": (500, 5, NT, 70),
                      "data2.npy": (120, 5, NT, 70)}
    for i in (1, 2):   # data{i}[j] is the simulation of model{i}[j]
        v = np.load(os.path.join(out, f"model{i}.npy"))
        s = np.load(os.path.join(out, f"data{i}.npy"))
        np.testing.assert_array_equal(s, fake_simulate(v[:len(s)], nt=NT))
    # velocity file i is reproducible on its own
    np.testing.assert_array_equal(np.load(os.path.join(out, "model3.npy")),
                                  generate_velocity("flatvel-a", 100, seed=[7, 3]))
    with open(os.path.join(out, "preview.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]


def test_constants_json(made):
    out, meta = made
    with open(os.path.join(out, "ubdiff_dataset.json")) as f:
        js = json.load(f)
    assert js == json.loads(json.dumps(meta)) and js["complete"] is True
    allseis = np.concatenate([np.load(os.path.join(out, f"data{i}.npy")).ravel() for i in (1, 2)])
    assert js["data_min"] == float(allseis.min()) and js["data_max"] == float(allseis.max())
    assert (js["label_min"], js["label_max"]) == (1500.0, 4500.0)
    assert js["seismic_shape"] == [5, NT, 70] and js["paired_counts"] == [500, 120]
    inf = load_info(out)
    assert (inf.data_min, inf.data_max) == (js["data_min"], js["data_max"])


def test_reading_a_made_dataset(made):
    out, _ = made
    ds = OpenFWIDataset.from_folder(out, normalize=True)   # constants from the JSON
    assert len(ds) == 620
    s, v = ds.batch([0, 619])
    assert s.shape == (2, 5, NT, 70) and s.min() >= -1 and s.max() <= 1
    vel = OpenFWIDataset.from_folder(out, velocity_only=True)
    assert len(vel) == 1100
    sp = unbalanced_split(out, n_paired=100, seed=1)   # 'auto': all files of a made dataset
    assert len(sp.velocity) == 1100 and len(sp.paired) == 100 and sp.paired_index.max() < 620


def test_resume_after_crash(tmp_path):
    out = str(tmp_path / "ds")
    calls = []
    with pytest.raises(RuntimeError, match="simulated crash"):
        # chunk 100: data1 takes calls 0-4, the crash hits data2's first chunk
        make_dataset("curvevel-a", 700, 650, out, seed=3, simulate=counting(calls, fail_at=5),
                     nt=NT, progress=False, chunk=100)
    assert sorted(f for f in os.listdir(out)) == ["data1.npy", "model1.npy", "model2.npy",
                                                  "ubdiff_dataset.json"]   # no partial data2
    with open(os.path.join(out, "ubdiff_dataset.json")) as f:
        assert json.load(f)["complete"] is False
    kept = {f: os.stat(os.path.join(out, f)).st_mtime_ns for f in ("data1.npy", "model1.npy")}
    calls2 = []
    meta = make_dataset("curvevel-a", 700, 650, out, seed=3, simulate=counting(calls2), nt=NT,
                        progress=False, chunk=100, preview=False)
    assert calls2 == [100, 50]                       # only data2's 150 maps simulated
    assert all(os.stat(os.path.join(out, f)).st_mtime_ns == t for f, t in kept.items())
    ref = str(tmp_path / "ref")                      # same as a run that never crashed
    meta_ref = make_dataset("curvevel-a", 700, 650, ref, seed=3, simulate=fake_simulate, nt=NT,
                            progress=False, chunk=100, preview=False)
    for f in ("model1.npy", "model2.npy", "data1.npy", "data2.npy"):
        np.testing.assert_array_equal(np.load(os.path.join(out, f)), np.load(os.path.join(ref, f)))
    assert (meta["data_min"], meta["data_max"]) == (meta_ref["data_min"], meta_ref["data_max"])
    calls3 = []                                      # a third run has nothing left to do
    make_dataset("curvevel-a", 700, 650, out, seed=3, simulate=counting(calls3), nt=NT,
                 progress=False, chunk=100, preview=False)
    assert calls3 == []


def test_stats_recomputed_for_kept_files_without_stats(tmp_path):
    out = str(tmp_path)
    meta = make_dataset("flatvel-a", 30, 30, out, simulate=fake_simulate, nt=NT, progress=False,
                        preview=False)
    with open(os.path.join(out, "ubdiff_dataset.json")) as f:
        js = json.load(f)
    js["file_stats"] = {}
    with open(os.path.join(out, "ubdiff_dataset.json"), "w") as f:
        json.dump(js, f)
    meta2 = make_dataset("flatvel-a", 30, 30, out, simulate=counting([], fail_at=0), nt=NT,
                         progress=False, preview=False)
    assert (meta2["data_min"], meta2["data_max"]) == (meta["data_min"], meta["data_max"])


def test_refuses_a_different_dataset_in_the_same_folder(tmp_path):
    make_dataset("flatvel-a", 10, 5, str(tmp_path), simulate=fake_simulate, nt=NT, progress=False,
                 preview=False)
    with pytest.raises(DataError, match=r"ubdiff_dataset\.json: folder holds a different dataset"
                                        r" \(seed differ\)"):
        make_dataset("flatvel-a", 10, 5, str(tmp_path), seed=1, simulate=fake_simulate, nt=NT,
                     progress=False)


def test_bad_simulator_output_names_the_file(tmp_path):
    def nan_sim(vel, **kw):
        out = fake_simulate(vel, **kw)
        out[0, 0, 0, 0] = np.nan
        return out
    with pytest.raises(DataError, match=r"data1\.npy: simulator returned NaN/Inf"):
        make_dataset("flatvel-a", 5, 5, str(tmp_path), simulate=nan_sim, nt=NT, progress=False)
    assert "data1.npy" not in os.listdir(tmp_path)
    with pytest.raises(DataError, match=r"data1\.npy: simulator returned shape"):
        make_dataset("flatvel-a", 5, 5, str(tmp_path), simulate=lambda v, **k: np.zeros((5, 7)),
                     nt=NT, progress=False)


def test_argument_checks(tmp_path):
    with pytest.raises(ValueError, match="paired <= maps"):
        make_dataset("flatvel-a", 5, 6, str(tmp_path), simulate=fake_simulate)
    with pytest.raises(ValueError, match="maps >= 1"):
        make_dataset("flatvel-a", 0, 0, str(tmp_path), simulate=fake_simulate)
    with pytest.raises(ValueError, match="unknown OpenFWI family"):
        make_dataset("flatvel-z", 5, 1, str(tmp_path), simulate=fake_simulate)


def test_velocity_only_dataset_needs_no_simulator(tmp_path):
    meta = make_dataset("style-b", 3, 0, str(tmp_path), progress=False)
    assert meta["seismic_files"] == [] and meta["data_min"] is None
    assert os.path.exists(tmp_path / "preview.png")


def _parser():
    p = argparse.ArgumentParser(prog="ubdiff")
    register(p.add_subparsers(dest="command"))
    return p


def test_cli(tmp_path, capsys):
    p = _parser()
    with pytest.raises(SystemExit):
        p.parse_args(["make-dataset", "--help"])
    text = capsys.readouterr().out
    for word in ("--family", "--maps", "--paired", "--out", "--seed", "--freq", "--nt", "--dt",
                 "flatvel-a", "Resumable", "m/s"):
        assert word in text
    args = p.parse_args(["make-dataset", "--family", "curvefault-b", "--maps", "4", "--paired",
                         "0", "--out", str(tmp_path), "--seed", "2", "--quiet"])
    assert args.func(args) == 0
    assert "4 velocity maps in 1 file(s)" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(tmp_path / "model1.npy"),
                                  generate_velocity("curvefault-b", 4, seed=[2, 1]))
    with pytest.raises(SystemExit):
        p.parse_args(["make-dataset", "--family", "nope", "--maps", "1", "--paired", "0",
                      "--out", "x"])


def test_with_the_real_simulator(tmp_path):
    meta = make_dataset("flatvel-a", 2, 2, str(tmp_path), seed=0, nt=200, progress=False)
    s = np.load(tmp_path / "data1.npy")
    assert s.shape == (2, 5, 200, 70) and s.dtype == np.float32 and np.isfinite(s).all()
    assert meta["data_min"] < 0 < meta["data_max"] and np.abs(s).max() > 0
    assert meta["simulator"].startswith("ubdiff.physics")


def test_real_seismic_range_near_published_constants(tmp_path):
    """Spec check: forward-modelled FlatVel-A maps span about OpenFWI's data_min/data_max.

    The extremes are the direct wave beside the source, so they depend on the
    simulator matching OpenFWI's source scaling; 20 maps see most of the range.
    """
    meta = make_dataset("flatvel-a", 20, 20, str(tmp_path), seed=0, progress=False, preview=False)
    # published: -26.95 / 52.77 over 30k maps; 25 % allows for the smaller sample
    assert meta["data_min"] == pytest.approx(-26.95, rel=0.25)
    assert meta["data_max"] == pytest.approx(52.77, rel=0.25)


def test_missing_physics_is_explained(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "ubdiff.physics", None)   # import of it fails
    with pytest.raises(ImportError, match="pass simulate=... or paired=0"):
        make_dataset("flatvel-a", 2, 1, str(tmp_path), progress=False)


def test_device_reaches_the_simulator(tmp_path):
    """device= goes to ubdiff.physics.forward_model (and --device on the command line)."""
    from ubdiff import physics
    make_dataset("flatvel-a", 2, 2, str(tmp_path / "a"), nt=60, progress=False, preview=False, device="cpu")
    vel = np.load(tmp_path / "a" / "model1.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "a" / "data1.npy"),
                                  physics.forward_model(vel, nt=60, device="cpu"))
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'auto'"):
        make_dataset("flatvel-a", 2, 2, str(tmp_path / "b"), nt=60, progress=False, preview=False,
                     device="tpu")
    args = _parser().parse_args(["make-dataset", "--family", "flatvel-a", "--maps", "2", "--paired", "0",
                                 "--out", str(tmp_path / "c"), "--device", "cpu"])
    assert args.device == "cpu"
