"""Shared CUDA test helpers: skip marker and the CPU-vs-GPU comparison."""
import numpy as np
import pytest

import ubdiff

requires_gpu = pytest.mark.skipif(
    ubdiff.gpu_count() == 0,
    reason=("no CUDA GPU present: the CUDA sources were compiled but cannot run here"
            if ubdiff.cuda_compiled() else "CPU-only build (UBDIFF_CUDA=0 or no nvcc): no CUDA code to run"))


def assert_gpu_matches_cpu(gpu, cpu, atol=1e-5, rtol=1e-4, what=""):
    """|gpu - cpu| <= atol + rtol |cpu| elementwise (shared/DESIGN.md)."""
    gpu, cpu = np.asarray(gpu, np.float64), np.asarray(cpu, np.float64)
    err = np.abs(gpu - cpu) - (atol + rtol * np.abs(cpu))
    assert (err <= 0).all(), f"{what}: max excess {err.max():.3g}"
