"""CUDA forward modelling against the CPU core (skipped, with the reason, without a GPU)."""
import numpy as np
import pytest
from cuda_util import assert_gpu_matches_cpu, requires_gpu

from ubdiff import physics

pytestmark = requires_gpu


def maps(rng, N, H, W):
    z = np.linspace(0, 1, H)[None, :, None]
    v = 1500 + 2500 * z + rng.uniform(-200, 200, (N, H, W))
    return v[:, None].astype(np.float32)


# The GPU contracts a*b + c into FMAs where the CPU build rounds twice, so the
# two drift apart by float32 rounding per step, ~1e-6 of the peak after a few
# hundred steps (as for the float64 NumPy reference in test_physics.py).
def _close(gpu, cpu, what):
    peak = float(np.abs(cpu).max())
    assert_gpu_matches_cpu(gpu, cpu, atol=3e-5 * peak, rtol=0, what=what)


@pytest.mark.parametrize("N,H,W,nbc,nt,src_x", [(3, 20, 20, 12, 200, (0, 7, 19)), (2, 17, 23, 10, 250, (3, 22))])
def test_forward_model_cuda_vs_cpu(rng, N, H, W, nbc, nt, src_x):
    v = maps(rng, N, H, W)
    kw = dict(nt=nt, nbc=nbc, src_x=src_x)
    _close(physics.forward_model(v, device="cuda", **kw), physics.forward_model(v, device="cpu", **kw),
           "small grids")


def test_forward_model_cuda_openfwi_size(rng):
    v = maps(rng, 2, 70, 70) * 1.1
    _close(physics.forward_model(v, device="cuda"), physics.forward_model(v, device="cpu"), "OpenFWI size")


def test_forward_model_cuda_rejects_unstable():
    v = np.full((2, 1, 10, 10), 3000.0, np.float32)
    v[1, 0, 4, 4] = 6500.0
    from ubdiff._native import lib
    seis = np.empty((2, 1, 10, 10), np.float32)
    with pytest.raises(ValueError, match="map 1 is unstable"):
        lib.forward_model(seis, v[:, 0], [1], [5], [1] * 10, list(range(10)), 15.0, 1e-3, 10.0, 20, "cuda")
