"""Build information, thread control and the extension's basic contract."""
import numpy as np
import pytest

import ubdiff
from ubdiff._native import lib


def test_build_info_reports_everything():
    info = ubdiff.build_info()
    for key in ("version", "blas", "openmp", "num_threads", "cuda_compiled", "gpu_present"):
        assert key in info
    assert info["version"] == ubdiff.__version__
    assert "OpenBLAS" in info["blas"]  # a real optimised BLAS is linked
    assert info["openmp"] >= 201107  # OpenMP 3.1 or newer
    assert info["num_threads"] >= 1
    assert isinstance(info["cuda_compiled"], bool)
    assert info["gpu_present"] == (ubdiff.gpu_count() > 0)


def test_default_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert ubdiff._default_threads() == ubdiff.available_cores()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert ubdiff._default_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert ubdiff._default_threads() == ubdiff.available_cores()


def test_set_num_threads_roundtrip_and_errors():
    n0 = ubdiff.get_num_threads()
    try:
        ubdiff.set_num_threads(1)
        assert ubdiff.get_num_threads() == 1
        with pytest.raises(ValueError, match="n must be >= 1"):
            ubdiff.set_num_threads(0)
        with pytest.raises(TypeError):
            ubdiff.set_num_threads(1.5)
    finally:
        ubdiff.set_num_threads(n0)


def test_cuda_compiled_where_nvcc_exists():
    """CI has nvcc: the build must then include the CUDA sources."""
    import shutil, os
    if os.environ.get("UBDIFF_CUDA") == "0":
        pytest.skip("UBDIFF_CUDA=0 forces a CPU-only build")
    if shutil.which("nvcc") is None and not os.path.exists("/usr/local/cuda/bin/nvcc"):
        pytest.skip("no nvcc on this machine")
    assert ubdiff.cuda_compiled()


def test_no_gpu_still_runs_on_cpu():
    # Whatever the build, CPU ops work.
    y = ubdiff.ops.relu(np.array([-1.0, 2.0], np.float32))
    np.testing.assert_array_equal(y, [0.0, 2.0])
    assert lib.cuda_device_count() >= 0
