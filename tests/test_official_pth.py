"""ubdiff's torch-free reader of torch.save archives (ubdiff/official/pth.py).

tests/data/torch_pickle_fixture.pth was written by PyTorch (tests/make_pth_fixture.py);
the hostile archives below are made with pickle itself, naming torch's globals
through stand-in modules, so no test here needs PyTorch.
"""
import argparse
import collections
import os
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest

from ubdiff.official import pth

FIXTURE = os.path.join(os.path.dirname(__file__), "data", "torch_pickle_fixture.pth")


def expected_tensors():
    """The values tests/make_pth_fixture.py puts under 'tensors' (bfloat16 read as float32)."""
    base = np.arange(12, dtype=np.float64)
    return {"bf16": np.arange(4, dtype=np.float32) - 1.5, "f16": np.array([0.5, -2.0], np.float16),
            "i64_scalar": np.array(7, np.int64), "i32": np.array([1, -2, 3], np.int32),
            "i8": np.array([-3, 4], np.int8), "u8": np.array([200, 1], np.uint8), "bool": np.array([True, False]),
            "strided": base[1::4], "transposed": base.reshape(3, 4).T, "empty": np.zeros((0, 3), np.float32),
            "shared_a": np.arange(4, dtype=np.float32) * 0.5, "shared_b": np.arange(4, dtype=np.float32) * 0.5,
            "parameter": np.full((2, 2), 0.25, np.float32)}


def test_reads_what_pytorch_wrote():
    obj = pth.load_numpy(FIXTURE)
    assert sorted(obj) == ["args", "ema", "epoch", "lr_scheduler", "model", "optimizer", "scaler", "step", "tensors"]
    for k, want in expected_tensors().items():
        got = obj["tensors"][k]
        assert got.dtype == want.dtype and got.shape == want.shape and np.array_equal(got, want), k
        assert got.flags.c_contiguous and got.flags.writeable
    # one storage under two keys stays one array, as after torch.load
    assert np.shares_memory(obj["tensors"]["shared_a"], obj["tensors"]["shared_b"])
    sd = obj["model"]
    assert isinstance(sd, collections.OrderedDict) and list(sd) == [
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert np.array_equal(sd["0.weight"], np.arange(18, dtype=np.float32).reshape(3, 2, 3, 1) / 8)
    assert sd["1.num_batches_tracked"].shape == () and sd["1.num_batches_tracked"].dtype == np.int64
    assert int(sd["1.num_batches_tracked"]) == 7
    assert isinstance(obj["args"], argparse.Namespace) and obj["args"].dataset == "flatvel-a"
    assert obj["args"].lr_milestones == [10, 20] and obj["args"].resume is None
    group = obj["optimizer"]["param_groups"][0]
    assert group["betas"] == (0.9, 0.999) and group["params"] == [0, 1, 2, 3]
    st = obj["optimizer"]["state"][0]
    assert st["exp_avg"].shape == (3, 2, 3, 1) and float(st["step"]) == 1.0
    assert obj["lr_scheduler"]["milestones"] == collections.Counter({10: 1, 20: 1})
    assert (obj["epoch"], obj["step"], obj["scaler"]) == (2, 12, None)
    assert obj["ema"]["initted"].dtype == np.float32 and obj["ema"]["step"].dtype == np.int64


def test_read_pth_without_torch_uses_this_reader():
    try:
        import torch  # noqa: F401
        pytest.skip("PyTorch is installed: read_pth would use it (compared in test_official_torch.py)")
    except ImportError:
        pass
    a = pth.read_pth(FIXTURE)
    assert np.array_equal(a["tensors"]["strided"], expected_tensors()["strided"])
    with pytest.raises(ImportError, match="needs PyTorch"):
        pth.read_pth(FIXTURE, trust=True)
    with pytest.raises(ImportError, match="not installed"):
        pth.read_pth(FIXTURE, use_torch=True)


# ---- hostile or broken archives ---------------------------------------------------------
def _zip(path, pickled: bytes, storages=None, root="archive"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{root}/data.pkl", pickled)
        for key, raw in (storages or {}).items():
            z.writestr(f"{root}/data/{key}", raw)
    return str(path)


class _Run:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_code_in_the_pickle(tmp_path):
    marker = tmp_path / "ran"
    path = _zip(tmp_path / "evil.pth", pickle.dumps({"model": _Run(marker)}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="not on ubdiff's allow-list"):
        pth.load_numpy(path)
    assert not marker.exists()
    path = _zip(tmp_path / "evil2.pth", pickle.dumps(eval, protocol=2))   # written as __builtin__.eval
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval is not"):
        pth.load_numpy(path)
    path = _zip(tmp_path / "set.pth", pickle.dumps({"s": {1, 2}, "f": frozenset([3])}, protocol=2))
    assert pth.load_numpy(path) == {"s": {1, 2}, "f": frozenset([3])}   # __builtin__.set is allowed


@pytest.fixture
def fake_torch(monkeypatch):
    """Stand-ins named torch.FloatStorage and torch._utils._rebuild_tensor_v2, so that
    pickle writes the globals torch.save writes; returns a dumps(obj) -> (bytes, storages)."""
    torch_mod, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    class FloatStorage:
        pass
    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while pickling")
    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    torch_mod.FloatStorage, utils._rebuild_tensor_v2, torch_mod._utils = FloatStorage, _rebuild_tensor_v2, utils
    monkeypatch.setitem(sys.modules, "torch", torch_mod)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Tensor:
        def __init__(self, data, offset, size, stride, numel=None):
            self.data, self.args = data, (offset, size, stride)
            self.numel = len(data) if numel is None else numel

        def __reduce__(self):
            return (_rebuild_tensor_v2, (_Storage(self), *self.args, False, collections.OrderedDict()))

    class _Storage:
        def __init__(self, t):
            self.t = t

    def dumps(obj):
        import io
        storages, buf = {}, io.BytesIO()

        class P(pickle.Pickler):
            def persistent_id(self, o):
                if isinstance(o, _Storage):
                    key = str(len(storages))
                    storages[key] = np.asarray(o.t.data, "<f4").tobytes()
                    return ("storage", FloatStorage, key, "cpu", o.t.numel)
                return None
        P(buf, protocol=2).dump(obj)
        return buf.getvalue(), storages
    return Tensor, dumps


def test_stand_in_archive_reads_like_torch(fake_torch, tmp_path):
    Tensor, dumps = fake_torch
    data, st = dumps({"w": Tensor([0, 1, 2, 3, 4, 5], 1, (2, 2), (3, 1))})
    got = pth.load_numpy(_zip(tmp_path / "ok.pth", data, st))
    assert np.array_equal(got["w"], np.array([[1, 2], [4, 5]], np.float32))


@pytest.mark.parametrize("case, message", [
    ("past_the_end", "reaches past its storage"),
    ("negative_stride", "bad tensor geometry"),
    ("short_storage", "bytes in the archive, expected"),
    ("missing_storage", "missing from the archive"),
])
def test_refuses_broken_tensors(fake_torch, tmp_path, case, message):
    Tensor, dumps = fake_torch
    t = {"past_the_end": Tensor([0, 1, 2, 3], 1, (2, 2), (2, 1)),
         "negative_stride": Tensor([0, 1, 2, 3], 3, (4,), (-1,)),
         "short_storage": Tensor([0, 1], 0, (4,), (1,), numel=4),
         "missing_storage": Tensor([0, 1], 0, (2,), (1,))}[case]
    data, st = dumps({"w": t})
    if case == "missing_storage":
        st = {}
    with pytest.raises(pickle.UnpicklingError, match=message):
        pth.load_numpy(_zip(tmp_path / "bad.pth", data, st))


def test_not_a_torch_archive(tmp_path):
    raw = tmp_path / "legacy.pth"
    raw.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="not a zip archive.*before 1.6"):
        pth.load_numpy(str(raw))
    z = tmp_path / "other.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="not a torch.save archive"):
        pth.load_numpy(str(z))
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        pth.read_pth(str(tmp_path / "absent.pth"))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_fifo_is_refused_not_waited_on(tmp_path, suffix):
    # a named pipe under a checkpoint's name would block a plain open() until a writer comes
    from ubdiff.official.convert import read
    fifo = tmp_path / ("ckpt" + suffix)
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="must be a regular file, got a FIFO"):
        read(str(fifo))
