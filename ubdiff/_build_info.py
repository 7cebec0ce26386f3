"""ubdiff.build_info(): what this installation was built with and can use."""
from ._native import lib
from ._threads import get_num_threads


def cuda_compiled() -> bool:
    """True when the extension was built with its CUDA sources."""
    return bool(lib.CUDA_COMPILED)


def gpu_count() -> int:
    """Number of usable CUDA GPUs (0 without a CUDA build, a driver, or a GPU)."""
    return int(lib.cuda_device_count())


def build_info() -> dict:
    """Version, BLAS, OpenMP threads, CUDA compiled yes/no, NCCL compiled yes/no, GPU present yes/no."""
    from . import __version__

    cc = lib.compiler_info()
    info = {
        "version": __version__,
        "blas": lib.blas_info(),
        "openmp": cc["openmp"],
        "compiler": cc["cc"],
        "num_threads": get_num_threads(),
        "cuda_compiled": cuda_compiled(),
        "gpu_present": gpu_count() > 0,
        "gpus": [],
    }
    nccl, nccl_version = lib.nccl_compiled()
    info["nccl_compiled"] = bool(nccl)   # data-parallel GPUs (ubdiff/distributed/nccl.py)
    if nccl:
        info["nccl_version"] = int(nccl_version)
    if info["cuda_compiled"]:
        info["cuda_runtime"] = lib.cuda_runtime_version()
    for d in range(gpu_count()):
        info["gpus"].append(lib.cuda_device_name(d))
    return info
