"""ubdiff.data reading/writing: pairing, split files, memmap reads, normalisation, bad files."""
import os
import pickle

import numpy as np
import pytest

from ubdiff.data import (DataError, OpenFWIDataset, info, normalize_seismic, normalize_velocity,
                         denormalize_seismic, denormalize_velocity, pair_files, read_split_file,
                         unbalanced_split, write_npy)
from ubdiff.data import npyio, openfwi
from ubdiff.data.dataset import official_files

SMALL = (5, 12, 70)   # seismic sample shape used by most tests (real: (5, 1000, 70))


def _write_pair(folder, seis_name, vel_name, n, start, shape=SMALL):
    """Files whose values encode the global sample index: vel = 1500 + i, seis = i."""
    os.makedirs(folder, exist_ok=True)
    idx = np.arange(start, start + n, dtype=np.float32)
    np.save(os.path.join(folder, vel_name), np.broadcast_to(1500 + idx[:, None, None, None],
                                                            (n, 1, 70, 70)).copy())
    seis = np.broadcast_to(idx[:, None, None, None], (n,) + shape).copy()
    seis[:, :, :, 0] += np.arange(shape[1], dtype=np.float32)  # time index marker for subsampling
    np.save(os.path.join(folder, seis_name), seis)


@pytest.fixture
def vel_folder(tmp_path):
    _write_pair(tmp_path, "data1.npy", "model1.npy", 4, 0)
    _write_pair(tmp_path, "data2.npy", "model2.npy", 3, 4)
    _write_pair(tmp_path, "data10.npy", "model10.npy", 2, 7)   # natural order: after 2
    return str(tmp_path)


# --- constants ------------------------------------------------------------------
def test_constants_of_the_ten_families():
    assert len(openfwi.FAMILIES) == 10
    fv = info("FlatVel_A")
    assert (fv.data_min, fv.data_max, fv.label_min, fv.label_max) == (-26.95, 52.77, 1500, 4500)
    assert info("style-b").data_max == 46.01 and info("curvefault-b").data_min == -24.93
    assert len(fv.train_files) == 48 and len(fv.test_files) == 12 and fv.test_files[0] == "model49"
    ff = info("flatfault-a")
    assert len(ff.train_files) == 96 and len(ff.test_files) == 12
    assert "vel2_1_0" in ff.train_files and "vel4_1_35" in ff.test_files
    assert "vel6_1_0" in info("curvefault-b").train_files
    st = info("style-a")
    assert (len(st.train_files), len(st.test_files)) == (120, 14)
    with pytest.raises(ValueError, match="unknown OpenFWI family"):
        info("flatvel-c")


def test_partner_names():
    assert openfwi.partner_name("/a/data3.npy") == "/a/model3.npy"
    assert openfwi.partner_name("model3.npy") == "data3.npy"
    assert openfwi.partner_name("x/seis2_1_0.npy") == "x/vel2_1_0.npy"
    assert openfwi.partner_name("vel8_1_35.npy") == "seis8_1_35.npy"
    with pytest.raises(DataError, match="labels.npy"):
        openfwi.partner_name("labels.npy")


# --- pairing ----------------------------------------------------------------------
def test_pairing_vel_scheme_and_global_indexing(vel_folder):
    ds = OpenFWIDataset.from_folder(vel_folder, seismic_shape=SMALL)
    assert len(ds) == 9
    names = [os.path.basename(p) for p in ds.vel_paths]
    assert names == ["model1.npy", "model2.npy", "model10.npy"]
    for i in range(9):
        s, v = ds[i]
        assert s.shape == SMALL and v.shape == (1, 70, 70)
        assert v[0, 0, 0] == 1500 + i and s[1, 0, 1] == i     # seismic paired with its map
    s, v = ds[-1]
    assert v[0, 0, 0] == 1508


def test_pairing_fault_scheme(tmp_path):
    _write_pair(tmp_path, "seis2_1_0.npy", "vel2_1_0.npy", 3, 0)
    _write_pair(tmp_path, "seis2_1_1.npy", "vel2_1_1.npy", 3, 3)
    pairs = pair_files([str(tmp_path / "seis2_1_1.npy"), str(tmp_path / "vel2_1_0.npy")])
    assert [tuple(os.path.basename(p) for p in q) for q in pairs] == [
        ("seis2_1_1.npy", "vel2_1_1.npy"), ("seis2_1_0.npy", "vel2_1_0.npy")]
    ds = OpenFWIDataset(pairs, seismic_shape=SMALL)
    s, v = ds.batch([0, 3])
    np.testing.assert_array_equal(v[:, 0, 5, 5], [1503, 1500])
    np.testing.assert_array_equal(s[:, 2, 0, 3], [3, 0])


def test_pairing_openfwi_subfolders(tmp_path):
    # OpenFWI ships Vel families as data/data{i}.npy + model/model{i}.npy
    _write_pair(tmp_path, "data1.npy", "model1.npy", 2, 0)
    os.makedirs(tmp_path / "data"), os.makedirs(tmp_path / "model")
    os.rename(tmp_path / "data1.npy", tmp_path / "data" / "data1.npy")
    os.rename(tmp_path / "model1.npy", tmp_path / "model" / "model1.npy")
    ds = OpenFWIDataset.from_folder(str(tmp_path), seismic_shape=SMALL)
    assert len(ds) == 2 and ds.seis_paths[0].endswith(os.path.join("data", "data1.npy"))


def test_missing_partner_is_named(tmp_path):
    _write_pair(tmp_path, "data1.npy", "model1.npy", 2, 0)
    os.remove(tmp_path / "data1.npy")
    with pytest.raises(DataError, match=r"data1\.npy: missing partner file of .*model1\.npy"):
        OpenFWIDataset.from_folder(str(tmp_path), seismic_shape=SMALL)
    ds = OpenFWIDataset.from_folder(str(tmp_path), velocity_only=True)   # velocity alone is fine
    assert ds[1][0, 0, 0] == 1501


# --- split files ------------------------------------------------------------------
def test_split_file_formats(vel_folder, tmp_path):
    split = os.path.join(vel_folder, "train.txt")
    with open(split, "w") as f:
        f.write("# OpenFWI style: data<TAB>label, then single paths of either kind\n")
        f.write(f"{vel_folder}/data2.npy\t{vel_folder}/model2.npy\n\n")
        f.write("model10.npy\n")          # relative to the split file's folder
        f.write("data1.npy\n")
    ds = OpenFWIDataset.from_split_file(split, seismic_shape=SMALL)
    np.testing.assert_array_equal(ds.velocity(np.arange(9))[:, 0, 0, 0],
                                  1500 + np.array([4, 5, 6, 7, 8, 0, 1, 2, 3]))
    bad = tmp_path / "bad.txt"
    bad.write_text("a.npy\tb.npy\tc.npy\n")
    with pytest.raises(DataError, match=r"bad\.txt:1: expected 1 or 2"):
        read_split_file(str(bad))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n# nothing\n")
    with pytest.raises(DataError, match="empty.txt: split file lists no file"):
        read_split_file(str(empty))
    with pytest.raises(DataError, match="nofile.txt"):
        read_split_file(str(tmp_path / "nofile.txt"))


@pytest.fixture
def published_vel(tmp_path):
    """A miniature FlatVel-A in OpenFWI's layout: 60 file pairs of 2 samples."""
    for i in range(1, 61):
        _write_pair(tmp_path, f"data{i}.npy", f"model{i}.npy", 2, 2 * (i - 1), shape=SMALL)
    return str(tmp_path)


def test_official_split(published_vel):
    tr = official_files(published_vel, "flatvel-a", "train")
    te = official_files(published_vel, "flatvel-a", "test")
    assert len(tr) == 48 and len(te) == 12
    assert [os.path.basename(p) for p in te[0]] == ["data49.npy", "model49.npy"]
    with pytest.raises(ValueError, match="needs the family"):
        OpenFWIDataset.from_folder(published_vel, split="train")
    os.remove(os.path.join(published_vel, "model55.npy"))
    with pytest.raises(DataError, match=r"model55\.npy: missing test file of flatvel-a"):
        official_files(published_vel, "flatvel-a", "test")


# --- memory-mapped reading --------------------------------------------------------
def test_reads_are_memory_mapped(vel_folder, monkeypatch):
    calls = []
    real = np.load

    def spy(*a, **k):
        calls.append(k)
        return real(*a, **k)
    monkeypatch.setattr(np, "load", spy)
    ds = OpenFWIDataset.from_folder(vel_folder, seismic_shape=SMALL)
    # open_npy parses the header itself (no np.load); whatever np.load call there is maps, never unpickles
    assert all(k.get("mmap_mode") == "r" and k.get("allow_pickle") is False for k in calls)
    assert all(isinstance(a, np.memmap) and a.mode == "r" for a in ds._seis + ds._vel)
    s, v = ds[3]
    # the sample comes back as a small in-memory copy, not the file's memmap
    assert not isinstance(s, np.memmap) and s.nbytes == np.prod(SMALL) * 4


def _rchar():
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
def test_one_sample_read_does_not_read_the_file(tmp_path):
    # 40 samples of the real seismic shape: 56 MB. Reading one sample must not
    # read() the file (rchar counts bytes of read syscalls; a memmap reads by page faults).
    n = 40
    mm = np.lib.format.open_memmap(tmp_path / "data1.npy", "w+", np.float32, (n, 5, 1000, 70))
    mm[:] = 1.0
    mm.flush()
    del mm
    np.save(tmp_path / "model1.npy", np.full((n, 1, 70, 70), 2000, np.float32))
    ds = OpenFWIDataset.from_folder(str(tmp_path))
    before = _rchar()
    s, v = ds[17]
    read = _rchar() - before
    assert s.shape == (5, 1000, 70) and s[0, 0, 0] == 1.0
    assert read < 1_400_000, f"read {read} bytes for one 1.4 MB sample of a 56 MB file"


def test_temporal_subsampling(vel_folder):
    ds = OpenFWIDataset.from_folder(vel_folder, seismic_shape=SMALL, subsample=5)
    s = ds.seismic([2, 8])
    assert s.shape == (2, 5, 3, 70)                  # ceil(12 / 5)
    np.testing.assert_array_equal(s[0, 0, :, 0], 2 + np.array([0, 5, 10]))
    full = OpenFWIDataset.from_folder(vel_folder, seismic_shape=SMALL).seismic([2, 8])
    np.testing.assert_array_equal(s, full[:, :, ::5, :])
    with pytest.raises(ValueError, match="subsample"):
        OpenFWIDataset.from_folder(vel_folder, seismic_shape=SMALL, subsample=0)


def test_pickles_as_file_list(vel_folder):
    ds = OpenFWIDataset.from_folder(vel_folder, seismic_shape=SMALL, subsample=2)
    blob = pickle.dumps(ds)
    assert len(blob) < 4096                     # paths and options, not the mapped samples
    back = pickle.loads(blob)
    for a, b in zip(back.batch([0, 8]), ds.batch([0, 8])):
        np.testing.assert_array_equal(a, b)
    sub = pickle.loads(pickle.dumps(ds.subset([8, 1])))
    np.testing.assert_array_equal(sub.velocity([0, 1])[:, 0, 0, 0], [1508, 1501])


def test_batch_keeps_requested_order(vel_folder):
    ds = OpenFWIDataset.from_folder(vel_folder, seismic_shape=SMALL)
    idx = np.array([8, 0, 5, 5, 3, 7])
    s, v = ds.batch(idx)
    np.testing.assert_array_equal(v[:, 0, 1, 1], 1500 + idx)
    np.testing.assert_array_equal(s[:, 0, 3, 5], idx)
    np.testing.assert_array_equal(ds[2:5][1][:, 0, 0, 0], [1502, 1503, 1504])
    with pytest.raises(IndexError):
        ds.batch([9])


# --- normalisation --------------------------------------------------------------------
def test_normalisation_formulas_and_round_trip(rng):
    np.testing.assert_allclose(normalize_velocity([1500, 3000, 4500]), [-1, 0, 1], atol=1e-7)
    fv = info("flatvel-a")
    ends = normalize_seismic([fv.data_min, fv.data_max, 0.0], fv.data_min, fv.data_max)
    lo, hi = -np.log1p(26.95), np.log1p(52.77)
    np.testing.assert_allclose(ends, [-1, 1, 2 * (0 - lo) / (hi - lo) - 1], atol=1e-6)
    v = rng.uniform(1500, 4500, (3, 1, 70, 70)).astype(np.float32)
    # float32 storage of y in [-1, 1]: |dy| <= 6e-8 -> |dv| <= 1.5e3 * 6e-8 ~ 1e-4 m/s
    np.testing.assert_allclose(denormalize_velocity(normalize_velocity(v)), v, atol=5e-4, rtol=0)
    x = (rng.standard_normal((2, 5, 50, 70)) * 5).astype(np.float32)
    x[0, 0, 0, :3] = [fv.data_min, fv.data_max, 0.0]
    y = normalize_seismic(x, fv.data_min, fv.data_max)
    assert y.dtype == np.float32 and y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    # float32 y: relative error of expm1(|L|) with |L| <= 4 is <= ~4 * 3e-7 * (hi - lo) / 2
    np.testing.assert_allclose(denormalize_seismic(y, fv.data_min, fv.data_max), x,
                               rtol=1e-5, atol=1e-5)


def test_dataset_normalize_option(vel_folder):
    inf = {"data_min": -10.0, "data_max": 10.0, "label_min": 1500, "label_max": 4500}
    ds = OpenFWIDataset.from_folder(vel_folder, seismic_shape=SMALL, info=inf, normalize=True)
    raw = OpenFWIDataset.from_folder(vel_folder, seismic_shape=SMALL)
    s, v = ds.batch([1, 6])
    s0, v0 = raw.batch([1, 6])
    np.testing.assert_allclose(v, normalize_velocity(v0), atol=1e-7)
    np.testing.assert_allclose(s, normalize_seismic(s0, -10, 10), atol=1e-7)
    with pytest.raises(ValueError, match="info"):
        OpenFWIDataset.from_folder(vel_folder, normalize=True)


# --- unbalanced split -----------------------------------------------------------------
def test_unbalanced_split_sizes_and_reproducibility(published_vel):
    sp = unbalanced_split(published_vel, "flatvel-a", n_paired=10, seed=3, seismic_shape=SMALL)
    assert len(sp.velocity) == 96 and len(sp.paired) == 10          # 48 train files x 2
    again = unbalanced_split(published_vel, "flatvel-a", n_paired=10, seed=3, seismic_shape=SMALL)
    other = unbalanced_split(published_vel, "flatvel-a", n_paired=10, seed=4, seismic_shape=SMALL)
    np.testing.assert_array_equal(sp.paired_index, again.paired_index)
    assert not np.array_equal(sp.paired_index, other.paired_index)
    assert len(np.unique(sp.paired_index)) == 10 and sp.paired_index.max() < 96
    s, v = sp.paired.batch(np.arange(10))
    np.testing.assert_array_equal(v[:, 0, 0, 0], 1500 + sp.paired_index)   # train = first 96
    np.testing.assert_array_equal(s[:, 0, 1, 1], sp.paired_index)
    assert sp.velocity.batch([95]).shape == (1, 1, 70, 70)
    test = unbalanced_split(published_vel, "flatvel-a", n_paired=5, split="test",
                            seismic_shape=SMALL)
    assert len(test.velocity) == 24 and test.velocity.velocity([0])[0, 0, 0, 0] == 1500 + 96
    with pytest.raises(ValueError, match="n_paired"):
        unbalanced_split(published_vel, "flatvel-a", n_paired=97, seismic_shape=SMALL)
    with pytest.raises(ValueError, match="needs the family"):
        unbalanced_split(published_vel, n_paired=5, seismic_shape=SMALL)


# --- atomic writes ----------------------------------------------------------------------
def test_atomic_write(tmp_path, monkeypatch):
    path = tmp_path / "model1.npy"
    a = np.arange(2 * 4900, dtype=np.float32).reshape(2, 1, 70, 70)
    write_npy(str(path), a)
    np.testing.assert_array_equal(np.load(path), a)
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask      # not mkstemp's 0600

    def broken(f, arr, **k):
        f.write(b"\x93NUMPY partial")
        raise OSError("disk full")
    monkeypatch.setattr(np.lib.format, "write_array", broken)
    with pytest.raises(OSError, match="disk full"):
        write_npy(str(path), a + 1)
    with pytest.raises(OSError):
        write_npy(str(tmp_path / "model2.npy"), a)
    assert sorted(os.listdir(tmp_path)) == ["model1.npy"]     # no partial, no temp file
    np.testing.assert_array_equal(np.load(path), a)            # old content intact


def test_atomic_memmap_writer(tmp_path):
    path = str(tmp_path / "data1.npy")
    with pytest.raises(RuntimeError):
        with npyio.npy_writer(path, (3, 5, 4, 70)) as mm:
            mm[0] = 1
            raise RuntimeError("simulator crashed")
    assert os.listdir(tmp_path) == []
    with npyio.npy_writer(path, (3, 5, 4, 70)) as mm:
        mm[:] = 2
    assert np.load(path).sum() == 2 * 3 * 5 * 4 * 70 and os.listdir(tmp_path) == ["data1.npy"]


# --- bad files --------------------------------------------------------------------------
def _bad(tmp_path, case):
    """Make a dataset folder whose model1.npy or data1.npy is broken as ``case`` says."""
    _write_pair(tmp_path, "data1.npy", "model1.npy", 3, 0)
    vel, seis = tmp_path / "model1.npy", tmp_path / "data1.npy"
    if case == "shape":
        np.save(vel, np.zeros((3, 1, 70, 69), np.float32))
        return vel, "shape"
    if case == "dtype":
        np.save(seis, np.zeros((3,) + SMALL, np.float64))
        return seis, "float32"
    if case == "byteswapped":
        np.save(vel, np.zeros((3, 1, 70, 70), ">f4"))
        return vel, "float32"
    if case == "fortran":
        np.save(vel, np.asfortranarray(np.zeros((3, 1, 70, 70), np.float32)))
        return vel, "Fortran"
    if case == "truncated":
        data = seis.read_bytes()
        seis.write_bytes(data[: len(data) - 1000])
        return seis, "unreadable"
    if case == "object":
        np.save(vel, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        return vel, "unreadable"
    if case == "pickle":
        with open(vel, "wb") as f:
            pickle.dump({"velocity": [1, 2]}, f)
        return vel, "unreadable"
    if case == "empty_file":
        seis.write_bytes(b"")
        return seis, "unreadable"
    if case == "npz":
        np.savez(str(vel) + ".npz", v=np.zeros((3, 1, 70, 70), np.float32))
        os.replace(str(vel) + ".npz", vel)
        return vel, "not a single .npy"
    if case == "no_samples":
        np.save(vel, np.zeros((0, 1, 70, 70), np.float32))
        return vel, "no sample"
    if case == "longer_seismic":
        np.save(seis, np.zeros((4,) + SMALL, np.float32))
        return seis, "4 seismic samples but only 3"
    if case == "missing_partner":
        os.remove(seis)
        return seis, "missing partner"
    raise AssertionError(case)


BAD_CASES = ["shape", "dtype", "byteswapped", "fortran", "truncated", "object", "pickle",
             "npz", "empty_file", "no_samples", "longer_seismic", "missing_partner"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_file_is_named(tmp_path, case):
    path, why = _bad(tmp_path, case)
    with pytest.raises(DataError, match=why) as e:
        OpenFWIDataset.from_folder(str(tmp_path), seismic_shape=SMALL)
    assert str(path) in str(e.value)
    assert isinstance(e.value, ValueError)


def test_nan_inf_detection(tmp_path):
    _write_pair(tmp_path, "data1.npy", "model1.npy", 6, 0)
    s = np.load(tmp_path / "data1.npy")
    s[4, 2, 3, 1] = np.nan
    np.save(tmp_path / "data1.npy", s)
    v = np.load(tmp_path / "model1.npy")
    v[2, 0, 9, 9] = np.inf
    np.save(tmp_path / "model1.npy", v)
    ds = OpenFWIDataset.from_folder(str(tmp_path), seismic_shape=SMALL)   # default: check on read
    ds.batch([0, 1, 3])                                                   # clean samples read fine
    with pytest.raises(DataError, match=r"data1\.npy: non-finite value \(NaN/Inf\) in sample 4"):
        ds.seismic([1, 4])
    with pytest.raises(DataError, match=r"model1\.npy: non-finite .* sample 2"):
        ds.velocity([5, 2])
    with pytest.raises(DataError, match=r"model1\.npy: non-finite .* sample 2"):
        OpenFWIDataset.from_folder(str(tmp_path), seismic_shape=SMALL, check_finite="open")
    off = OpenFWIDataset.from_folder(str(tmp_path), seismic_shape=SMALL, check_finite="off")
    assert np.isnan(off.seismic([4])).any()


def test_chunked_finite_scan(tmp_path):
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, (50, 5, 10, 70))
    mm[:] = 0
    mm[37, 4, 9, 69] = np.inf
    mm.flush()
    arr = np.load(tmp_path / "x.npy", mmap_mode="r")
    # chunk of 3 samples per block: the scan never holds more than 3 samples in memory
    with pytest.raises(DataError, match="sample 37"):
        npyio.check_finite(arr, "x.npy", chunk_bytes=3 * 5 * 10 * 70 * 4)
    assert npyio.min_max(arr, chunk_bytes=4 * 3500) == (0.0, np.inf)
