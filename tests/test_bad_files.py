"""Bad files and bad values: every reader answers with a clear error naming the file, never a hang,
a leaked parser exception or a silently wrong result (issue 9, the Python half).

Families: corrupt/odd .npy files through each of the three readers of data folders; pairing that
would drop or mix files; ubdiff_dataset.json; ubdiff.json and checkpoints (metadata, NaN weights,
tampered configs, files from two runs); non-regular files (FIFO, device, folder) in a subprocess
with a timeout, so a hang fails the test instead of stalling the run; non-finite and complex
inputs of the metrics; UBDiff.decode shapes and seed ranges.
"""
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ubdiff
from ubdiff import UBDiff, checkpoint, metrics
from ubdiff.checkpoint import CheckpointError
from ubdiff.data import DataError, OpenFWIDataset, open_npy, openfwi
from ubdiff.data.dataset import folder_files, official_files
from ubdiff.metrics._io import load_folder
from ubdiff.metrics.usefulness import open_pairs_folder

SMALL = (5, 12, 70)
AE = dict(dim1=4, dim2=4, dim3=8, dim4=8, latent=16, head_width=4, heads=2, mlp_hidden=16, nt=50, max_batch=8)
DIFF = dict(dim=8, dim_mults=(1, 2), groups=4, heads=2, dim_head=8, timesteps=32)
CFG = {"autoencoder": AE, "diffusion": DIFF}


def _pair(folder, i=1, n=3, vel="model", seis="data", shape=SMALL, value=None):
    os.makedirs(folder, exist_ok=True)
    v = np.full((n, 1, 70, 70), 2000.0 + i, np.float32) if value is None else value
    np.save(os.path.join(folder, f"{vel}{i}.npy"), v)
    np.save(os.path.join(folder, f"{seis}{i}.npy"), np.full((n,) + shape, float(i), np.float32))


# ---- .npy files, through every reader ----------------------------------------------------
def _header(arr):
    import io
    b = io.BytesIO()
    np.lib.format.write_array(b, arr)
    raw = b.getvalue()
    hl = int.from_bytes(raw[8:10], "little")
    return raw, raw[10:10 + hl], hl


def _with_header(path, edit):
    raw, hdr, hl = _header(np.zeros((3, 1, 70, 70), np.float32))
    new = edit(hdr)[:hl].ljust(hl, b" ")
    with open(path, "wb") as f:
        f.write(raw[:10] + new + raw[10 + hl:])


NPY_CASES = {
    # corrupt headers: before, numpy's header parser leaked tokenize.TokenError / SyntaxError
    "header_unbalanced": (lambda p: _with_header(p, lambda h: h.replace(b"(3, 1, 70, 70)", b"(3, 1, 70, 70 ")),
                          "corrupt .npy header"),
    "header_open_string": (lambda p: _with_header(p, lambda h: h.replace(b"'descr'", b"'descr ")),
                           "corrupt .npy header"),
    "header_garbage": (lambda p: _with_header(p, lambda h: bytes(range(1, 256))), "corrupt .npy header"),
    "header_code": (lambda p: _with_header(p, lambda h: h.replace(b"(3, 1, 70, 70)", b"__import__('os')")),
                    "corrupt .npy header"),
    "header_negative_shape": (lambda p: _with_header(p, lambda h: h.replace(b"(3, 1, 70, 70)", b"(-3, 1, 70, 70)")),
                              "corrupt .npy header"),
    "header_no_descr": (lambda p: _with_header(p, lambda h: h.replace(b"'descr': '<f4', ", b"")),
                        "corrupt .npy header"),
    "header_huge_shape": (lambda p: _with_header(p, lambda h: h.replace(b"(3, 1, 70, 70)", b"(10**30, 1, 70, 70)")),
                          "unreadable"),
    "header_length_past_end": (lambda p: open(p, "wb").write(b"\x93NUMPY\x01\x00\xff\xff{'descr'"), "corrupt .npy"),
    "magic_only": (lambda p: open(p, "wb").write(b"\x93NUMPY"), "not a .npy file"),
    "bad_version": (lambda p: open(p, "wb").write(b"\x93NUMPY\x09\x09" + b" " * 100), "unsupported .npy format"),
    "empty": (lambda p: open(p, "wb").close(), "empty file"),
    "truncated": (lambda p: open(p, "wb").write(_header(np.zeros((3, 1, 70, 70), np.float32))[0][:-100]),
                  "truncated"),
    "pickle": (lambda p: pickle.dump({"velocity": [1, 2]}, open(p, "wb")), "pickles are refused"),
    "object": (lambda p: np.save(p, np.array([{"a": 1}, None, 3], dtype=object), allow_pickle=True),
               "Python objects"),
    "npz": (lambda p: (np.savez(p + ".npz", v=np.zeros((3, 1, 70, 70), np.float32)), os.replace(p + ".npz", p)),
            "npz archive"),
    "complex": (lambda p: np.save(p, np.zeros((3, 1, 70, 70), np.complex64)), "dtype <c8"),
    "int32": (lambda p: np.save(p, np.zeros((3, 1, 70, 70), np.int32)), "dtype <i4"),
    "three_d": (lambda p: np.save(p, np.zeros((3, 70, 70), np.float32)), "shape"),
    "no_samples": (lambda p: np.save(p, np.zeros((0, 1, 70, 70), np.float32)), "no sample"),
    "zero_width": (lambda p: np.save(p, np.zeros((3, 1, 70, 0), np.float32)), "shape|no data"),
}
READERS = {
    "dataset": lambda f: OpenFWIDataset.from_folder(f, seismic_shape=SMALL),
    "metrics_load_folder": lambda f: load_folder(f),
    "open_pairs_folder": lambda f: open_pairs_folder(f),
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("case", sorted(NPY_CASES))
def test_bad_npy_is_a_clean_error_naming_the_file(tmp_path, case, reader):
    _pair(tmp_path)
    path = str(tmp_path / "model1.npy")
    make, why = NPY_CASES[case]
    make(path)
    with pytest.raises(DataError, match=why) as e:
        READERS[reader](str(tmp_path))
    assert path in str(e.value)


def test_nan_and_byte_order_in_the_metrics_loader(tmp_path):
    _pair(tmp_path)
    v = np.full((3, 1, 70, 70), 2001.0, np.float32)
    np.save(tmp_path / "model1.npy", v.astype(">f4"))          # other byte order: converted, not garbage
    np.testing.assert_array_equal(load_folder(str(tmp_path))["velocity"], v)
    np.save(tmp_path / "model1.npy", v.astype(np.float64))     # float64: converted
    np.testing.assert_array_equal(load_folder(str(tmp_path))["velocity"], v)
    v[2, 0, 5, 5] = np.nan
    np.save(tmp_path / "model1.npy", v)
    with pytest.raises(DataError, match=r"model1\.npy: non-finite value \(NaN/Inf\) in sample 2"):
        load_folder(str(tmp_path))


# ---- pairing never drops or mixes files ----------------------------------------------------
def test_two_velocity_schemes_with_one_suffix_are_not_collapsed(tmp_path):
    _pair(tmp_path, 1)                               # model1 + data1
    np.save(tmp_path / "vel1.npy", np.zeros((3, 1, 70, 70), np.float32))   # vel1 pairs with seis1: absent
    with pytest.raises(DataError, match=r"without a partner: vel1\.npy"):
        load_folder(str(tmp_path))
    with pytest.raises(DataError, match=r"seis1\.npy: missing partner file of .*vel1\.npy"):
        folder_files(str(tmp_path))
    np.save(tmp_path / "seis1.npy", np.full((3,) + SMALL, 7.0, np.float32))
    d = load_folder(str(tmp_path))                   # both pairs, each with its own partner
    assert len(d["velocity"]) == 6 and sorted(set(d["seismic"][:, 0, 0, 0])) == [1.0, 7.0]
    assert len(OpenFWIDataset.from_folder(str(tmp_path), seismic_shape=SMALL)) == 6


def test_cross_scheme_files_are_named(tmp_path):
    np.save(tmp_path / "model1.npy", np.zeros((3, 1, 70, 70), np.float32))
    np.save(tmp_path / "seis1.npy", np.zeros((3,) + SMALL, np.float32))
    with pytest.raises(DataError, match=r"without a partner: model1\.npy, seis1\.npy"):
        load_folder(str(tmp_path))
    with pytest.raises(DataError, match=r"data1\.npy: missing partner"):
        folder_files(str(tmp_path))


def test_same_basename_in_two_subfolders(tmp_path):
    _pair(tmp_path / "train", 1, value=np.full((3, 1, 70, 70), 2000.0, np.float32))
    _pair(tmp_path / "test", 1, value=np.full((3, 1, 70, 70), 3000.0, np.float32))
    ds = OpenFWIDataset.from_folder(str(tmp_path), seismic_shape=SMALL)   # both, none shadowed
    assert len(ds) == 6 and sorted(set(ds.velocity(np.arange(6))[:, 0, 0, 0])) == [2000.0, 3000.0]
    with pytest.raises(DataError, match=r"model1\.npy is ambiguous.*test/model1\.npy.*train/model1\.npy"):
        official_files(str(tmp_path), "flatvel-a", "train")


def test_orphan_seismic_file_is_named(tmp_path):
    _pair(tmp_path, 1)
    np.save(tmp_path / "data2.npy", np.zeros((3,) + SMALL, np.float32))
    with pytest.raises(DataError, match=r"seismic files without a velocity partner: data2\.npy"):
        OpenFWIDataset.from_folder(str(tmp_path), seismic_shape=SMALL)
    assert len(OpenFWIDataset.from_folder(str(tmp_path), velocity_only=True)) == 3   # velocity only: fine


def test_pair_with_different_sample_counts_is_named(tmp_path):
    _pair(tmp_path, 1, n=3)
    _pair(tmp_path, 2, n=2)
    np.save(tmp_path / "data1.npy", np.zeros((2,) + SMALL, np.float32))    # 3 maps, 2 records
    np.save(tmp_path / "data2.npy", np.zeros((3,) + SMALL, np.float32))    # 2 maps, 3 records: totals agree
    with pytest.raises(DataError, match=r"model1\.npy: holds 3 velocity maps but its partner .*data1\.npy holds 2"):
        load_folder(str(tmp_path))


# ---- ubdiff_dataset.json ---------------------------------------------------------------
def _made(folder):
    from test_interrupt import fake_simulate
    from ubdiff.data import make_dataset
    make_dataset("flatvel-a", 5, 3, str(folder), simulate=fake_simulate, nt=8, file_size=2, preview=False,
                 progress=False)
    return os.path.join(str(folder), openfwi.META_NAME)


def _edit(path, fn):
    with open(path) as f:
        meta = json.load(f)
    fn(meta)
    with open(path, "w") as f:
        json.dump(meta, f)


META_CASES = {
    **{f"missing_{k}": (lambda m, k=k: m.pop(k), f"missing key '{k}'") for k in openfwi.META_KEYS},
    "path_parent": (lambda m: m["velocity_files"].__setitem__(0, "../model1.npy"), "only plain file names"),
    "path_absolute": (lambda m: m["velocity_files"].__setitem__(0, "/etc/model1.npy"), "only plain file names"),
    "path_subfolder": (lambda m: m["seismic_files"].__setitem__(0, "sub/data1.npy"), "only plain file names"),
    "path_hidden": (lambda m: m["velocity_files"].__setitem__(0, ".model1.npy"), "only plain file names"),
    "wrong_kind": (lambda m: m["velocity_files"].__setitem__(0, "data1.npy"), "not a velocity file name"),
    "mispaired": (lambda m: m["seismic_files"].reverse(), "partner of 'model1.npy' is 'data1.npy'"),
    "duplicate": (lambda m: m["velocity_files"].__setitem__(1, "model1.npy"), "lists a file twice"),
    "shape_type": (lambda m: m.__setitem__("seismic_shape", [5, "8", 70]), "seismic_shape"),
    "shape_len": (lambda m: m.__setitem__("seismic_shape", [5, 8]), "seismic_shape"),
    "nan_constant": (lambda m: m.__setitem__("data_min", float("nan")), "finite numbers"),
    "labels_reversed": (lambda m: m.__setitem__("label_min", 5000.0), "must be below 'label_max'"),
    "complete_string": (lambda m: m.__setitem__("complete", "yes"), "true or false"),
    "file_size_zero": (lambda m: m.__setitem__("file_size", 0), "file_size"),
    "counts_length": (lambda m: m.__setitem__("file_counts", [2, 2]), "file_counts"),
    "counts_wrong": (lambda m: m.__setitem__("file_counts", [2, 1, 1]), r"model2\.npy: holds 2 samples"),
    "incomplete": (lambda m: m.__setitem__("complete", False), "dataset incomplete"),
    "stats_garbage": (lambda m: m.__setitem__("file_stats", {"data1.npy": "x"}), "file_stats"),
}


@pytest.fixture(scope="module")
def made_dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("made")
    _made(folder)
    return str(folder)


@pytest.mark.parametrize("case", sorted(META_CASES))
def test_dataset_meta_is_validated(tmp_path, made_dataset, case):
    folder = str(tmp_path / "ds")
    shutil.copytree(made_dataset, folder)
    path = os.path.join(folder, openfwi.META_NAME)
    fn, why = META_CASES[case]
    _edit(path, fn)
    readers = (OpenFWIDataset.from_folder, load_folder) + (() if case == "counts_wrong" else (openfwi.load_info,))
    for read in readers:   # (load_info reads the constants only, not the files whose counts are wrong)
        with pytest.raises(DataError, match=why) as e:
            read(folder)
        assert openfwi.META_NAME in str(e.value) or case == "counts_wrong"


@pytest.mark.parametrize("content,why", [(b'{"format": "ubdiff-openfwi-1", "family"', "not valid JSON"),
                                         (b"[1, 2, 3]", "must hold a JSON object"),
                                         (b"\xff\xfe\x00garbage", "not UTF-8"),
                                         (b"[" * 100000, "not valid JSON|nested too deeply"),
                                         (b"", "not valid JSON")])
def test_corrupt_dataset_meta(tmp_path, made_dataset, content, why):
    folder = str(tmp_path / "ds")
    shutil.copytree(made_dataset, folder)
    with open(os.path.join(folder, openfwi.META_NAME), "wb") as f:
        f.write(content)
    with pytest.raises(DataError, match=why) as e:
        OpenFWIDataset.from_folder(folder)
    assert os.path.join(folder, openfwi.META_NAME) in str(e.value)


def test_partial_reads_only_finished_files(tmp_path, made_dataset):
    folder = str(tmp_path / "ds")
    shutil.copytree(made_dataset, folder)
    full = OpenFWIDataset.from_folder(folder)[:]
    os.remove(os.path.join(folder, "data2.npy"))      # as if make_dataset were still simulating data2
    _edit(os.path.join(folder, openfwi.META_NAME),
          lambda m: (m.__setitem__("complete", False), m["file_stats"].pop("data2.npy")))
    with pytest.raises(DataError, match="incomplete"):
        OpenFWIDataset.from_folder(folder)
    s, v = OpenFWIDataset.from_folder(folder, partial=True)[:]
    np.testing.assert_array_equal(s, full[0][:2])
    np.testing.assert_array_equal(v, full[1][:2])


# ---- ubdiff.json and checkpoints --------------------------------------------------------
@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    old = ubdiff.get_num_threads()
    ubdiff.set_num_threads(1)
    m = UBDiff(CFG, seed=0)
    m.set_constants("flatvel-a")
    run = str(tmp_path_factory.mktemp("run") / "run")
    m.save(run)
    other = UBDiff(CFG, seed=1)
    other_run = str(tmp_path_factory.mktemp("other") / "run")
    other.save(other_run)
    yield run, other_run
    ubdiff.set_num_threads(old)


def _copy(run, tmp_path):
    dst = str(tmp_path / "run")
    shutil.copytree(run, dst)
    return dst


STATE_CASES = {
    "truncated": (lambda p: open(p, "w").write('{"format": "ubdiff-pipeline-1", "conf'), "not valid JSON"),
    "list": (lambda p: open(p, "w").write("[]"), "JSON object"),
    "binary": (lambda p: open(p, "wb").write(b"\x00\xff" * 10), "not UTF-8|not valid JSON"),
    "format": (lambda p: _edit(p, lambda m: m.__setitem__("format", "x")), "format 'x'"),
    **{f"missing_{k}": (lambda p, k=k: _edit(p, lambda m: m.pop(k)), f"missing key '{k}'")
       for k in ("config", "seed", "constants", "state", "history")},
    "seed_2_64": (lambda p: _edit(p, lambda m: m.__setitem__("seed", 2 ** 64)), r"0\.\.2\*\*64-1"),
    "seed_negative": (lambda p: _edit(p, lambda m: m.__setitem__("seed", -1)), r"0\.\.2\*\*64-1"),
    "config_garbage": (lambda p: _edit(p, lambda m: m.__setitem__("config", {"autoencoder": 3})), "'config'"),
    "config_unknown_key": (lambda p: _edit(p, lambda m: m["config"]["autoencoder"].__setitem__("dim9", 4)),
                           "bad 'config'"),
    "config_other": (lambda p: _edit(p, lambda m: m["config"]["autoencoder"].__setitem__("dim1", 8)),
                     "differs from the one in"),
    "constants_nan": (lambda p: _edit(p, lambda m: m["constants"].__setitem__("label_min", float("nan"))),
                      "label_min < label_max"),
    "constants_missing": (lambda p: _edit(p, lambda m: m["constants"].pop("data_max")), "'constants' must hold"),
    "epoch_negative": (lambda p: _edit(p, lambda m: m["state"]["step1"].__setitem__("epoch", -1)), "'step1'"),
    "history_type": (lambda p: _edit(p, lambda m: m.__setitem__("history", {"step1": 3})), "'history'"),
    "max_batch": (lambda p: _edit(p, lambda m: m.__setitem__("diffusion_max_batch", 10 ** 9)), "diffusion_max_batch"),
    "save_id": (lambda p: _edit(p, lambda m: m.__setitem__("save_id", "0000")), "mix of two runs"),
}


@pytest.mark.parametrize("case", sorted(STATE_CASES))
def test_bad_state_file(tmp_path, saved_run, case):
    run = _copy(saved_run[0], tmp_path)
    fn, why = STATE_CASES[case]
    fn(os.path.join(run, "ubdiff.json"))
    with pytest.raises(CheckpointError, match=why) as e:
        UBDiff.load(run)
    assert run in str(e.value)


def test_files_of_two_runs_are_refused(tmp_path, saved_run):
    run, other = saved_run
    mixed = _copy(run, tmp_path)
    shutil.copy(os.path.join(other, "autoencoder.safetensors"), mixed)   # a new autoencoder beside an old state
    with pytest.raises(CheckpointError, match=r"autoencoder\.safetensors: belongs to another save"):
        UBDiff.load(mixed)
    _edit(os.path.join(mixed, "ubdiff.json"), lambda m: m.pop("save_id"))   # an older run, without save ids:
    shutil.copytree(run, str(tmp_path / "cfg"))                             # a checkpoint of another config
    from ubdiff.models.autoencoder import CoLatentAutoencoder
    CoLatentAutoencoder(dict(AE, dim1=8)).save(str(tmp_path / "cfg" / "autoencoder.safetensors"))
    _edit(str(tmp_path / "cfg" / "ubdiff.json"), lambda m: m.pop("save_id"))
    with pytest.raises(CheckpointError, match="differs from the one in"):
        UBDiff.load(str(tmp_path / "cfg"))


def _rewrite(path, tensors=None, meta=None):
    """Rewrite a checkpoint with changed tensors / metadata (a damaged or tampered file)."""
    from safetensors import safe_open
    from safetensors.numpy import save_file
    with safe_open(path, framework="numpy") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
        info = json.loads(f.metadata()[checkpoint.META_KEY])
    if tensors:
        tensors(t)
    if meta:
        meta(info)
    save_file(t, path, metadata={checkpoint.META_KEY: json.dumps(info)})


def _poison(t, name):
    t[name] = t[name].copy()
    t[name].flat[0] = np.nan


CKPT_CASES = {
    "nan_weight": ("autoencoder", dict(tensors=lambda t: _poison(t, "fc_s.weight")), r"'fc_s\.weight' holds NaN"),
    "nan_adam": ("autoencoder", dict(tensors=lambda t: _poison(t, "optimizer.v")), r"'optimizer\.v' holds NaN"),
    "inf_ema": ("diffusion", dict(tensors=lambda t: t.__setitem__("ema.final_conv.bias",
                                                                  np.full(1, np.inf, np.float32))), "holds NaN or Inf"),
    "meta_list": ("diffusion", dict(meta=lambda m: (m.clear(), m.__setitem__("kind", None))), "format None"),
    "format_2": ("autoencoder", dict(meta=lambda m: m.__setitem__("format", 2)), "format 2"),
    "ae_dim_other": ("autoencoder", dict(meta=lambda m: m["config"].__setitem__("dim1", 64)), "its config needs"),
    "ae_dim_huge": ("autoencoder", dict(meta=lambda m: m["config"].__setitem__("dim1", 100000)),
                    "bad co_latent_autoencoder config"),
    "ae_int_range": ("autoencoder", dict(meta=lambda m: m["config"].__setitem__("dim2", 2 ** 40)), "out of range"),
    "ae_string": ("autoencoder", dict(meta=lambda m: m["config"].__setitem__("nt", "50")), "bad co_latent"),
    "ae_max_batch": ("autoencoder", dict(meta=lambda m: m["config"].__setitem__("max_batch", 10 ** 9)), "max_batch"),
    "ae_nested": ("autoencoder", dict(meta=lambda m: m["config"].__setitem__("depth", {"a": 1})), "holds a dict"),
    "diff_dim_huge": ("diffusion", dict(meta=lambda m: m["config"].__setitem__("dim", 4096)), "its config needs"),
    "diff_levels": ("diffusion", dict(meta=lambda m: m["config"].__setitem__("dim_mults", [1, 2, 4, 8])),
                    "U-Net levels"),
    "diff_heads": ("diffusion", dict(meta=lambda m: m["config"].__setitem__("heads", 64)), "its config needs"),
    "diff_seq_len": ("diffusion", dict(meta=lambda m: m["config"].__setitem__("seq_len", 2 ** 30)), "seq_len"),
    "diff_seed": ("diffusion", dict(meta=lambda m: m.__setitem__("seed", 2 ** 64)), "'seed'"),
    "diff_step": ("diffusion", dict(meta=lambda m: m.__setitem__("step", -5)), "'step'"),
    "ae_steps": ("autoencoder", dict(meta=lambda m: m["steps"].__setitem__("encoder", "x")), "'steps'"),
    "missing_tensor": ("autoencoder", dict(tensors=lambda t: t.pop("fc_s.weight")), r"'fc_s\.weight' is missing"),
}


@pytest.mark.parametrize("case", sorted(CKPT_CASES))
def test_bad_checkpoint(tmp_path, saved_run, case, monkeypatch):
    run = _copy(saved_run[0], tmp_path)
    which, edits, why = CKPT_CASES[case]
    path = os.path.join(run, f"{which}.safetensors")
    _rewrite(path, **edits)
    from ubdiff.models import autoencoder, diffusion
    made = []   # a tampered config must fail before a model of its size is allocated
    for mod, cls in ((autoencoder, "CoLatentAutoencoder"), (diffusion, "LatentDiffusion")):
        real = getattr(mod, cls).__init__
        monkeypatch.setattr(getattr(mod, cls), "__init__",
                            lambda self, *a, _r=real, **k: (made.append(a), _r(self, *a, **k))[1])
    with pytest.raises(CheckpointError, match=why) as e:
        UBDiff.load(run)
    assert path in str(e.value)
    if "config" in str(edits) or case.startswith(("ae_", "diff_")):
        assert made == []


def test_other_model_kinds_check_their_config_before_allocating(tmp_path):
    from ubdiff.metrics.featnet import FeatureNet, load_reference
    from ubdiff.models import InversionNet
    inv = str(tmp_path / "inv.safetensors")
    InversionNet("small", max_batch=2).save(inv)
    _rewrite(inv, meta=lambda m: m["config"].__setitem__("dims", [8, 16, 32, 64, 4096]))
    with pytest.raises(CheckpointError, match="its config needs"):
        InversionNet.load(inv)
    fn = str(tmp_path / "feat.safetensors")
    load_reference("velocity").save(fn)
    _rewrite(fn, meta=lambda m: m["config"]["blocks"][0].__setitem__(0, 4096))
    with pytest.raises(CheckpointError, match="its config needs"):
        FeatureNet.load(fn)


# ---- non-regular files: must be refused, never block (subprocess with a timeout) ----------
def test_fifos_devices_and_folders_are_refused_without_hanging(tmp_path, saved_run):
    run = _copy(saved_run[0], tmp_path)
    code = textwrap.dedent(f"""
        import os, shutil, sys, json
        import numpy as np
        from ubdiff import UBDiff
        from ubdiff.checkpoint import CheckpointError
        from ubdiff.data import DataError, OpenFWIDataset, read_split_file, openfwi
        from ubdiff.metrics._io import load_folder
        from ubdiff.models.autoencoder import CoLatentAutoencoder
        tmp, run = {str(tmp_path)!r}, {run!r}
        def pair(d):
            os.makedirs(d)
            np.save(os.path.join(d, "data1.npy"), np.zeros((2, 5, 12, 70), np.float32))
        results = []
        def check(name, fn, err):
            try:
                fn()
                results.append((name, "no error"))
            except err as e:
                results.append((name, "ok" if ("FIFO" in str(e) or "device" in str(e) or "folder" in str(e))
                                else "other: " + str(e)))
            except Exception as e:
                results.append((name, f"{{type(e).__name__}}: {{e}}"))
        for kind in ("fifo", "device", "folder"):
            d = os.path.join(tmp, kind)
            pair(d)
            target = os.path.join(d, "model1.npy")
            {{"fifo": os.mkfifo, "device": lambda p: os.symlink("/dev/zero", p), "folder": os.mkdir}}[kind](target)
            check(kind + " npy dataset", lambda: OpenFWIDataset.from_folder(d, seismic_shape=(5, 12, 70)), DataError)
            check(kind + " npy metrics", lambda: load_folder(d), DataError)
        meta_dir = os.path.join(tmp, "meta")
        pair(meta_dir)
        os.mkfifo(os.path.join(meta_dir, openfwi.META_NAME))
        check("fifo dataset json", lambda: OpenFWIDataset.from_folder(meta_dir), DataError)
        split = os.path.join(tmp, "split.txt")
        os.mkfifo(split)
        check("fifo split file", lambda: read_split_file(split), DataError)
        os.remove(os.path.join(run, "ubdiff.json"))
        os.mkfifo(os.path.join(run, "ubdiff.json"))
        check("fifo ubdiff.json", lambda: UBDiff.load(run), CheckpointError)
        os.remove(os.path.join(run, "ubdiff.json"))
        shutil.copy(os.path.join(run, "autoencoder.safetensors"), os.path.join(tmp, "keep.safetensors"))
        os.remove(os.path.join(run, "autoencoder.safetensors"))
        os.mkfifo(os.path.join(run, "autoencoder.safetensors"))
        check("fifo checkpoint", lambda: CoLatentAutoencoder.load(os.path.join(run, "autoencoder.safetensors")),
              CheckpointError)
        print(json.dumps(results))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    results = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(results) == 10 and all(r == "ok" for _, r in results), results


# ---- metrics reject non-finite and complex inputs, naming the argument ---------------------
def _feat(x):
    return np.asarray(x, np.float64).reshape(len(x), -1)[:, :4]


def _vel(rng, n=6):
    return (1500 + 3000 * rng.random((n, 1, 70, 70))).astype(np.float32)


def _nan_at(a, i):
    a = a.copy()
    a[i].flat[0] = np.nan
    return a


METRIC_CASES = {
    "fid_generated": (lambda v, s: metrics.fid(v, _nan_at(v, 3), features=_feat), r"generated: .* sample 3"),
    "fid_real": (lambda v, s: metrics.fid(_nan_at(v, 1), v, features=_feat), r"real: .* sample 1"),
    "fid_default_network": (lambda v, s: metrics.fid(v, np.full_like(v, np.nan)), r"generated: .* sample 0"),
    "kid_generated": (lambda v, s: metrics.kid(v, _nan_at(v, 4), features=_feat, subset_size=3, subsets=2),
                      r"generated: .* sample 4"),
    "ssim_pred": (lambda v, s: metrics.ssim(_nan_at(v, 2), v, normalized=False), r"pred: .* sample 2"),
    "ssim_true": (lambda v, s: metrics.ssim(v, _nan_at(v, 0), normalized=False), r"true: .* sample 0"),
    "mae_inf": (lambda v, s: metrics.mae(v * np.inf, v, normalized=False), "pred: non-finite"),
    "mse_true": (lambda v, s: metrics.mse(v, _nan_at(v, 5), normalized=False), r"true: .* sample 5"),
    "physics_velocity": (lambda v, s: metrics.physics_consistency(_nan_at(v, 1), s, simulate=lambda x: s[:len(x)]),
                         r"velocity: .* sample 1"),
    "physics_seismic": (lambda v, s: metrics.physics_consistency(v, _nan_at(s, 2), simulate=lambda x: s[:len(x)]),
                        r"seismic: .* sample 2"),
    "physics_simulation": (lambda v, s: metrics.physics_consistency(v, s, simulate=lambda x: s[:len(x)] * np.nan),
                           "simulate"),
    "usefulness_generated": (lambda v, s: metrics.inversion_usefulness((_nan_at(s, 0), v), (s, v), normalized=False,
                                                                       dataset="flatvel-a", epochs=1, batch_size=2,
                                                                       progress=False),
                             "generated: non-finite"),
    "usefulness_test": (lambda v, s: metrics.inversion_usefulness((s, v), (s, _nan_at(v, 0)), normalized=False,
                                                                  dataset="flatvel-a", epochs=1, batch_size=2,
                                                                  progress=False),
                        "real_test: non-finite"),
    "mmd2": (lambda v, s: metrics.mmd2(_feat(v), _nan_at(_feat(v), 2)), r"y: features contain NaN"),
    "frechet": (lambda v, s: metrics.frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2)),
                "NaN or Inf"),
    "ssim_complex": (lambda v, s: metrics.ssim(v.astype(np.complex64), v, normalized=False), "pred: must be a real"),
    "fid_complex": (lambda v, s: metrics.fid(v, v.astype(np.complex64), features=_feat), "generated: must be a real"),
    "physics_complex": (lambda v, s: metrics.physics_consistency(v, s.astype(np.complex64),
                                                                 simulate=lambda x: s[:len(x)]),
                        "seismic: must be a real"),
    "usefulness_complex": (lambda v, s: metrics.inversion_usefulness((s.astype(np.complex64), v), (s, v),
                                                                     normalized=False, dataset="flatvel-a",
                                                                     progress=False),
                           "generated: seismic must be a real"),
}


@pytest.mark.parametrize("case", sorted(METRIC_CASES))
def test_metrics_reject_bad_values(rng, case):
    v = _vel(rng)
    s = rng.standard_normal((6, 5, 250, 70)).astype(np.float32)
    fn, why = METRIC_CASES[case]
    with pytest.raises((ValueError, TypeError), match=why):
        fn(v, s)


# ---- UBDiff: decode shapes, seeds ----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    m = UBDiff(CFG, seed=0)
    m.set_constants("flatvel-a")
    return m


@pytest.mark.parametrize("shape", [(1, 2, 16), (2, 16, 1), (16,), (1, 1, 15), (0, 16), (1, 1, 1, 16)])
def test_decode_refuses_latents_of_the_wrong_shape(tiny, shape):
    with pytest.raises(ValueError, match=r"z must have shape \(n, 16\) or \(n, 1, 16\)"):
        tiny.decode(np.zeros(shape, np.float32))


def test_decode_refuses_non_finite_latents(tiny):
    z = np.zeros((3, 1, 16), np.float32)
    z[1, 0, 4] = np.nan
    with pytest.raises(ValueError, match=r"z holds NaN or Inf \(latent 1\)"):
        tiny.decode(z)
    with pytest.raises(TypeError, match="real array"):
        tiny.decode(z.astype(np.complex64))
    v, s = tiny.decode(np.zeros((2, 16)))     # both accepted shapes give the same pairs
    v1, s1 = tiny.decode(np.zeros((2, 1, 16)))
    np.testing.assert_array_equal(v, v1)


@pytest.mark.parametrize("seed", [2 ** 64, -1, 1.5, True, "0", 2 ** 80])
def test_seeds_out_of_range_raise(tiny, seed, tmp_path):
    with pytest.raises(ValueError, match=r"seed must be an int in 0\.\.2\*\*64-1"):
        UBDiff(CFG, seed=seed)
    with pytest.raises(ValueError, match=r"seed must be an int in 0\.\.2\*\*64-1"):
        tiny.sample_latents(1, seed=seed, sampler="ddim", steps=1)
    with pytest.raises(ValueError, match=r"seed must be an int in 0\.\.2\*\*64-1"):
        tiny.generate(1, str(tmp_path / "g"), seed=seed, progress=False)
    assert not os.path.exists(tmp_path / "g")


def test_largest_seed_is_accepted_and_distinct(tiny):
    top = UBDiff(CFG, seed=2 ** 64 - 1)
    assert not np.array_equal(top.autoencoder.flat("param"), UBDiff(CFG, seed=0).autoencoder.flat("param"))
    a = tiny.sample_latents(1, seed=2 ** 64 - 1, sampler="ddim", steps=1)
    b = tiny.sample_latents(1, seed=0, sampler="ddim", steps=1)
    assert not np.array_equal(a, b)


def test_generate_refuses_to_overwrite_foreign_data(tiny, tmp_path):
    _pair(tmp_path / "mine", 1)
    with pytest.raises(DataError, match="not written by UBDiff.generate"):
        tiny.generate(2, str(tmp_path / "mine"), sampler="ddim", steps=1, progress=False)
    assert sorted(os.listdir(tmp_path / "mine")) == ["data1.npy", "model1.npy"]


def test_cli_reports_a_bad_file_as_an_error_not_a_traceback(tmp_path, capsys):
    from ubdiff.__main__ import main
    _pair(tmp_path / "gen", 1)
    _pair(tmp_path / "real", 1)
    NPY_CASES["header_unbalanced"][0](str(tmp_path / "gen" / "model1.npy"))
    rc = main(["evaluate", "--generated", str(tmp_path / "gen"), "--real", str(tmp_path / "real"),
               "--out", str(tmp_path / "rep"), "--skip-fid", "--skip-physics"])
    err = capsys.readouterr().err
    assert rc == 1 and "ubdiff evaluate: error:" in err and str(tmp_path / "gen" / "model1.npy") in err
