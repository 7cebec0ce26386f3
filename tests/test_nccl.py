"""NCCL for data-parallel GPUs (csrc/cuda/nccl_comm.cu, ubdiff/distributed/nccl.py).

Here (no GPU) only what a build can show: NCCL is compiled in exactly when the build found
nccl.h, build_info says so, and without a GPU (or without NCCL) every entry fails with a
clean error rather than a crash. With one GPU: a communicator of one rank sums and
broadcasts a GPU InversionNet's buffers as the identity. Two ranks on two GPUs: skipped with the reason printed (not run by the project)."""
import os

import numpy as np
import pytest

import ubdiff
from ubdiff._native import lib
from ubdiff.distributed import comm as comm_mod
from ubdiff.distributed.nccl import NCCLComm, nccl_compiled, nccl_version
from ubdiff.models import InversionNet

from cuda_util import requires_gpu

requires_nccl = pytest.mark.skipif(not nccl_compiled(), reason="this build has no NCCL (nccl.h not found at build "
                                                               "time, or a CPU-only build)")


def test_build_info_reports_nccl():
    info = ubdiff.build_info()
    assert info["nccl_compiled"] is nccl_compiled()
    if info["nccl_compiled"]:
        assert info["cuda_compiled"] and info["nccl_version"] == nccl_version() > 20000
    else:
        assert "nccl_version" not in info and nccl_version() == 0


def test_nccl_compiled_where_the_build_found_it():
    """setup.py compiles NCCL in when nvcc and nccl.h (toolkit or wheel) are there: check that
    this build's answer is the one its own finder gives now (same machine, same environment)."""
    if not ubdiff.cuda_compiled():
        assert not nccl_compiled()
        return
    if os.environ.get("UBDIFF_NCCL") == "0":
        pytest.skip("UBDIFF_NCCL=0 in the environment")
    import shutil
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    home = os.path.dirname(os.path.dirname(nvcc))
    found = os.path.exists(os.path.join(home, "include", "nccl.h"))
    if found:
        assert nccl_compiled(), f"nccl.h is in {home}/include but this build has no NCCL"


def test_without_nccl_the_gpu_path_names_it(monkeypatch):
    if nccl_compiled():
        pytest.skip("NCCL is compiled in")
    with pytest.raises(RuntimeError, match="built without NCCL"):
        lib.nccl_unique_id()
    with pytest.raises(RuntimeError, match="needs NCCL"):
        NCCLComm(comm_mod.Comm())


@requires_nccl
def test_without_a_gpu_nccl_fails_cleanly():
    if ubdiff.gpu_count() > 0:
        pytest.skip("a GPU is present")
    uid = lib.nccl_unique_id()   # bootstrap only: no GPU needed
    assert isinstance(uid, bytes) and len(uid) == 128
    with pytest.raises(RuntimeError):
        lib.nccl_comm_create(uid, 1, 0, -1)
    with pytest.raises(ValueError, match="128 bytes"):
        lib.nccl_comm_create(b"short", 1, 0, 0)


def test_allreduce_refuses_a_cpu_model_and_a_bad_handle():
    net = InversionNet("small", seed=0, max_batch=2, device="cpu")
    with pytest.raises((TypeError, ValueError)):
        lib.invnet_allreduce(net._h, "grad", object())


@requires_gpu
@requires_nccl
def test_one_rank_communicator_on_a_gpu_is_the_identity():
    """A NCCL communicator of one rank: the sum over ranks and the broadcast from rank 0 leave
    a GPU InversionNet's buffers as they are (bit for bit), and a range outside is refused."""
    net = InversionNet("small", seed=0, max_batch=2, device="cuda")
    before = {k: net.get_tensor(None, k).copy() for k in ("param", "stats")}
    nc = NCCLComm(comm_mod.Comm())
    assert nc.size == 1 and "NCCL" in nc.backend
    net.device_collective("param", nc)
    net.device_collective("stats", nc, root=0)
    for k, v in before.items():
        assert np.array_equal(net.get_tensor(None, k), v), k
    with pytest.raises(ValueError, match="not within"):
        lib.invnet_allreduce(net._h, "param", nc.handle, 0, 10**12)



def test_import_does_not_load_libnccl():
    """libnccl is opened at the first communicator, not at import: a linked-in NCCL (the CUDA
    toolkit's 2.28) was loaded by `import ubdiff`, and a later `import torch` bound its own
    libnccl.so.2 to it and failed (undefined symbol ncclCommResume)."""
    import subprocess
    import sys
    code = ("import ubdiff; ubdiff.build_info(); "
            "print(any('libnccl' in l for l in open('/proc/self/maps')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False", "import ubdiff mapped libnccl"


def test_torch_imports_after_ubdiff():
    import importlib.util
    import subprocess
    import sys
    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed (an optional cross-check of `import ubdiff; import torch`)")
    out = subprocess.run([sys.executable, "-c", "import ubdiff; ubdiff.build_info(); import torch"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
