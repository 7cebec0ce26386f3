"""The flat parameter buffer and its zero-copy named views."""
import gc

import numpy as np
import pytest

from ubdiff._native import lib


def make():
    pb = lib.ParamBuffer()
    assert pb.add("conv.weight", (4, 3, 3, 3)) == 0
    assert pb.add("conv.bias", [4]) == 108
    assert pb.add("fc.weight", (2, 4)) == 112
    return pb


def test_offsets_sizes_and_spec():
    pb = make()
    assert pb.size == 120
    assert pb.spec() == [("conv.weight", (4, 3, 3, 3), 0), ("conv.bias", (4,), 108), ("fc.weight", (2, 4), 112)]


def test_views_are_zero_copy_and_outlive_the_owner_reference():
    pb = make()
    pb.alloc("param")
    flat = pb.flat("param")
    w = pb.view("conv.bias")
    w[:] = 7.0
    assert (flat[108:112] == 7.0).all()
    assert np.shares_memory(w, flat)
    del pb
    gc.collect()
    assert (w == 7.0).all()  # the view keeps the buffer alive


def test_each_buffer_separate():
    pb = make()
    for k in ("param", "grad", "m", "v", "ema"):
        pb.alloc(k)
    pb.flat("grad")[:] = 1
    assert (pb.flat("param") == 0).all() and (pb.flat("grad") == 1).all()


def test_errors():
    pb = make()
    with pytest.raises(ValueError, match="duplicate"):
        pb.add("conv.bias", (4,))
    with pytest.raises(ValueError, match="must be positive"):
        pb.add("bad", (0, 3))
    with pytest.raises(ValueError, match="needs 1..4 dims"):
        pb.add("bad", ())
    with pytest.raises(RuntimeError, match="not allocated"):
        pb.flat("param")
    with pytest.raises(ValueError, match="kind"):
        pb.alloc("adam")
    with pytest.raises(KeyError):
        pb.alloc("param") or pb.view("nope")
    with pytest.raises(RuntimeError, match="after buffers"):
        pb.add("late", (1,))
    with pytest.raises(ValueError, match="no parameters"):
        lib.ParamBuffer().alloc("param")
