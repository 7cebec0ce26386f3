"""Math modes (csrc/backend.h "Math modes"; ubdiff/_math.py): choosing one, the
CPU being strict float32 in every mode, and on a GPU TF32 products against
strict ones within the error TF32's rounding allows. The cuda tests skip with
the reason printed where no GPU is usable (tests/cuda_util.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import ubdiff
from cuda_util import assert_gpu_matches_cpu, requires_gpu
from test_featnet import TINY, _toy_data
from ubdiff._native import lib
from ubdiff.metrics import featnet as fn


@pytest.fixture(autouse=True)
def keep_mode():
    old = ubdiff.math_mode()
    yield
    ubdiff.set_math_mode(old)


def test_set_and_read_back():
    for m in ubdiff.MATH_MODES:
        ubdiff.set_math_mode(m)
        assert ubdiff.math_mode() == m


@pytest.mark.parametrize("bad", ["bf16", "TF32", "", None, 1])
def test_unknown_mode_names_the_choices(bad):
    with pytest.raises(ValueError, match="fp32"):
        ubdiff.set_math_mode(bad)
    with pytest.raises((ValueError, TypeError)):
        lib.set_math_mode(bad)


def _mode_in_fresh_process(value):
    env = dict(os.environ)
    env.pop("UBDIFF_MATH", None)
    if value is not None:
        env["UBDIFF_MATH"] = value
    out = subprocess.run([sys.executable, "-c", "import ubdiff; print(ubdiff.math_mode())"], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_environment_sets_the_start_value():
    assert _mode_in_fresh_process(None) == "fp32"  # strict by default
    assert _mode_in_fresh_process("tf32-conv") == "tf32-conv"
    assert _mode_in_fresh_process("nonsense") == "fp32"  # an unknown value: the strict default


def _linear(x, w, device="cpu", math=None):
    out = np.empty((x.shape[0], w.shape[0]), np.float32)
    lib.linear_forward_on(out, x, w, device, math)
    return out


def test_linear_forward_on_checks_shapes_and_mode():
    x, w = np.ones((3, 5), np.float32), np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="weight"):
        _linear(x, np.ones((4, 6), np.float32))
    with pytest.raises(ValueError, match="math"):
        _linear(x, w, math="bf8")


def test_cpu_is_strict_fp32_in_every_mode():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(33, 257)).astype(np.float32)
    w = rng.normal(size=(19, 257)).astype(np.float32)
    ref = _linear(x, w, math="fp32")
    np.testing.assert_allclose(ref, x.astype(np.float64) @ w.T.astype(np.float64), rtol=1e-4, atol=1e-4)
    for m in ubdiff.MATH_MODES:
        assert _linear(x, w, math=m).tobytes() == ref.tobytes(), m

    # a model created in each mode: the same bytes on the CPU
    xs, ys = _toy_data(np.random.default_rng(1), n=12)
    outs = []
    for m in ubdiff.MATH_MODES:
        ubdiff.set_math_mode(m)
        net = fn.FeatureNet(TINY, seed=3, device="cpu")
        net.train_step(xs[:6], ys[:6], reg_target=np.ones((6, 2), np.float32), lr=1e-2)
        outs.append(net.features(xs).tobytes())
    assert outs[0] == outs[1] == outs[2]


@requires_gpu
@pytest.mark.parametrize("B,C,OC", [(64, 640, 1024), (128, 1152, 64)])  # decoder / conv-GEMM-like shapes
def test_cuda_tf32_within_rounding_error(B, C, OC):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(B, C)).astype(np.float32)
    w = (rng.normal(size=(OC, C)) / np.sqrt(C)).astype(np.float32)
    exact = x.astype(np.float64) @ w.T.astype(np.float64)
    # strict: float32 accumulation only (K = C terms of size |x||w|)
    bound = np.abs(x).astype(np.float64) @ np.abs(w.T).astype(np.float64)
    assert_gpu_matches_cpu(_linear(x, w, "cuda", "fp32"), _linear(x, w, "cpu"), atol=1e-4, rtol=1e-4,
                           what="fp32")
    # TF32: each operand keeps 10 explicit mantissa bits, so its relative error is below 2^-10 whether the
    # hardware rounds or truncates; a product's below 2^-9 + 2^-20, so |err| <= (2^-9 + float32
    # accumulation) * sum |x||w|: 2^-8 leaves a factor 2 for the accumulation order
    err = np.abs(_linear(x, w, "cuda", "tf32") - exact)
    assert (err <= 2.0 ** -8 * bound).all(), float((err / bound).max())
    # tf32-conv leaves linear layers strict
    assert_gpu_matches_cpu(_linear(x, w, "cuda", "tf32-conv"), _linear(x, w, "cpu"), atol=1e-4, rtol=1e-4,
                           what="tf32-conv linear")
