"""Checkpoint files: round trip, atomicity, clear errors on bad files."""
import os

import numpy as np
import pytest

from ubdiff import checkpoint as ck


def _tensors(rng):
    return {"a.weight": rng.standard_normal((3, 4)).astype(np.float32), "a.bias": np.zeros(3, np.float32)}


def test_round_trip(tmp_path, rng):
    t = _tensors(rng)
    p = tmp_path / "m.safetensors"
    ck.save(str(p), t, {"kind": "demo", "step": 7, "config": {"width": 3}})
    got, meta = ck.load(str(p), expected={k: v.shape for k, v in t.items()}, kind="demo")
    for k in t:
        np.testing.assert_array_equal(got[k], t[k])
    assert meta["step"] == 7 and meta["config"] == {"width": 3} and meta["format"] == ck.FORMAT_VERSION
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")] == []


def test_failed_write_leaves_no_file(tmp_path, rng):
    p = tmp_path / "m.safetensors"
    bad = {"x": np.zeros(2, np.float64)}
    with pytest.raises(TypeError, match="float32"):
        ck.save(str(p), bad, {"kind": "demo"})
    assert not p.exists() and os.listdir(tmp_path) == []


def test_errors(tmp_path, rng):
    t = _tensors(rng)
    p = tmp_path / "m.safetensors"
    ck.save(str(p), t, {"kind": "demo"})
    with pytest.raises(ck.CheckpointError, match="expected 'other'"):
        ck.load(str(p), kind="other")
    with pytest.raises(ck.CheckpointError, match="'a.gamma' is missing"):
        ck.load(str(p), expected={"a.gamma": (3,)})
    with pytest.raises(ck.CheckpointError, match=r"shape \(3, 4\), expected \(4, 3\)"):
        ck.load(str(p), expected={"a.weight": (4, 3)})
    # truncated
    raw = p.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(raw[: len(raw) - 20])
    with pytest.raises(ck.CheckpointError, match="truncated|not a readable"):
        ck.load(str(tmp_path / "trunc.safetensors"))
    # foreign: safetensors without our metadata, and not safetensors at all
    from safetensors.numpy import save_file
    save_file({"w": np.zeros(2, np.float32)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ck.CheckpointError, match="not written by ubdiff"):
        ck.load(str(tmp_path / "foreign.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"hello world, not a checkpoint")
    with pytest.raises(ck.CheckpointError, match="not a readable"):
        ck.load(str(tmp_path / "junk.safetensors"))
    with pytest.raises(ck.CheckpointError, match="no such"):
        ck.load(str(tmp_path / "missing.safetensors"))
