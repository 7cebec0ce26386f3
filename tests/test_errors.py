"""Bad input never crashes the interpreter: it raises a clear exception."""
import numpy as np
import pytest

from ubdiff._native import lib


def f(*shape):
    return np.zeros(shape, np.float32)


def test_wrong_dtype_names_argument_and_dtype():
    with pytest.raises(TypeError, match=r"inp: expected dtype float32, got .*float64"):
        lib.linear_forward(f(2, 3), np.zeros((2, 4)), f(3, 4), None)


def test_not_an_array():
    with pytest.raises(TypeError, match="weight: expected a numpy.ndarray"):
        lib.linear_forward(f(2, 3), f(2, 4), [[1.0] * 4] * 3, None)


def test_non_contiguous_rejected():
    x = np.zeros((4, 8), np.float32)[:, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        lib.linear_forward(f(4, 3), x, f(3, 4), None)


def test_readonly_output_rejected():
    out = f(2, 3)
    out.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        lib.linear_forward(out, f(2, 4), f(3, 4), None)


@pytest.mark.parametrize("args,msg", [
    ((f(2, 3), f(2, 4, 1), f(3, 4), None), r"inp has shape \(2, 4, 1\), expected \( \*,  \*\)"),
    ((f(2, 3), f(2, 4), f(3, 5), None), r"weight has shape \(3, 5\)"),
    ((f(3, 3), f(2, 4), f(3, 4), None), r"out has shape \(3, 3\), expected \(2, 3\)"),  # batch mismatch
    ((f(2, 3), f(2, 4), f(3, 4), f(4)), r"bias has shape \(4,\), expected \(3,\)"),
    ((f(0, 3), f(0, 4), f(3, 4), None), r"non-empty"),  # zero-size
])
def test_shape_errors(args, msg):
    with pytest.raises(ValueError, match=msg):
        lib.linear_forward(*args)


def test_nan_is_allowed_and_propagates():
    x = np.full((2, 4), np.nan, np.float32)
    out = f(2, 3)
    lib.linear_forward(out, x, np.ones((3, 4), np.float32), None)
    assert np.isnan(out).all()


def test_zero_size_elementwise_and_loss():
    lib.act_forward(f(0), f(0), 0)  # nothing to do, no crash
    with pytest.raises(ValueError, match="empty"):
        lib.l1_forward(f(0), f(0))


def test_wrong_arg_count_is_type_error():
    with pytest.raises(TypeError):
        lib.linear_forward(f(2, 3))
