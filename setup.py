"""Build of the ubdiff._ubdiff extension.

C core (csrc/*.c, csrc/cpu/*.c) + CPython binding (csrc/python/*.c), compiled
with -O3 and OpenMP and linked against the OpenBLAS of the `scipy-openblas32`
wheel (symbols prefixed `scipy_`).  When nvcc is found (or UBDIFF_CUDA=1) the
CUDA sources csrc/cuda/*.cu are compiled too and linked with cudart, cuBLAS
and cuRAND; UBDIFF_CUDA=0 forces a CPU-only build.

Environment switches:
  UBDIFF_CUDA=0|1        force CUDA off / on (default: on when nvcc is found)
  UBDIFF_NATIVE=0        do not pass -march=native (portable binaries)
  UBDIFF_CUDA_ARCH="80;90"  compute capabilities to build for
  UBDIFF_BUILD_JOBS=N    nvcc processes at once (default: the cores this process may use)
  UBDIFF_NCCL=0|1        force NCCL off / on in a CUDA build (default: on when nccl.h is found in the
                         CUDA toolkit or the nvidia-nccl wheel: csrc/cuda/nccl_comm.cu, data-parallel GPUs)
"""
import concurrent.futures
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def _blas():
    """Include dir, lib dir and library name of the BLAS to link."""
    import scipy_openblas32 as sob
    return sob.get_include_dir(), sob.get_lib_dir(), sob.get_library()


def _find_nvcc():
    flag = os.environ.get("UBDIFF_CUDA")
    if flag == "0":
        return None
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        for cand in ("/usr/local/cuda/bin/nvcc",):
            if os.path.exists(cand):
                nvcc = cand
    if nvcc is None and flag == "1":
        raise RuntimeError("UBDIFF_CUDA=1 but nvcc was not found on PATH")
    return nvcc


NVCC = _find_nvcc()
CUDA_HOME = os.path.dirname(os.path.dirname(NVCC)) if NVCC else None


def _find_nccl():
    """(include dir, lib dir, library file name) of NCCL for a CUDA build, or None: the CUDA
    toolkit's (include/, lib64/) first, then the nvidia-nccl wheel's (nvidia/nccl/)."""
    flag = os.environ.get("UBDIFF_NCCL")
    if not NVCC or flag == "0":
        if flag == "1":
            raise RuntimeError("UBDIFF_NCCL=1 needs a CUDA build (nvcc)")
        return None
    cands = [(os.path.join(CUDA_HOME, "include"), os.path.join(CUDA_HOME, d)) for d in ("lib64", "lib")]
    try:
        import importlib.util
        spec = importlib.util.find_spec("nvidia.nccl")
        for root in (spec.submodule_search_locations or []) if spec else []:
            cands.append((os.path.join(root, "include"), os.path.join(root, "lib")))
    except ImportError:
        pass
    for inc, lib in cands:
        if not os.path.exists(os.path.join(inc, "nccl.h")):
            continue
        for name in ("libnccl.so", "libnccl.so.2"):
            if os.path.exists(os.path.join(lib, name)):
                return inc, lib, name
    if flag == "1":
        raise RuntimeError("UBDIFF_NCCL=1 but nccl.h and libnccl were not found (CUDA toolkit or nvidia-nccl wheel)")
    return None


NCCL = _find_nccl()


class BuildExtWithCuda(build_ext):
    """build_ext that first compiles csrc/cuda/*.cu with nvcc into objects,
    and fails when the linked extension leaves a ubd_* symbol undefined."""

    def build_extension(self, ext):
        if NVCC:
            ext.extra_objects = list(ext.extra_objects or []) + self._compile_cuda()
        super().build_extension(ext)
        self._check_defined(self.get_ext_fullpath(ext.name))

    @staticmethod
    def _check_defined(so):
        """An extension module may link with undefined symbols (Python's own are
        resolved at import), so an op of the backend table (csrc/backend.h)
        without its CPU or CUDA twin would only fail at import. nm finds it here."""
        nm = shutil.which("nm")
        if nm is None:
            print("warning: nm not found, cannot check the extension for undefined ubd_* symbols", flush=True)
            return
        out = subprocess.run([nm, "-D", "--undefined-only", so], capture_output=True, text=True, check=True).stdout
        missing = sorted({line.split()[-1] for line in out.splitlines() if line.split()[-1].startswith("ubd_")})
        if missing:
            raise RuntimeError(f"{so} references undefined symbols (an op of the backend table without its "
                               f"CPU or CUDA definition?): {', '.join(missing)}")

    def _compile_cuda(self):
        archs = os.environ.get("UBDIFF_CUDA_ARCH", "80;90").split(";")
        gencode = []
        for a in archs:
            gencode += ["-gencode", f"arch=compute_{a},code=sm_{a}"]
        gencode += ["-gencode", f"arch=compute_{archs[-1]},code=compute_{archs[-1]}"]
        objdir = os.path.join(self.build_temp, "cuda")
        os.makedirs(objdir, exist_ok=True)
        objs, cmds = [], []
        for src in sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu"))):
            obj = os.path.join(objdir, os.path.basename(src) + ".o")
            deps = [src] + glob.glob("csrc/*.h") + glob.glob("csrc/cpu/*.h") + glob.glob("csrc/cuda/*.cuh")
            if not os.path.exists(obj) or max(map(os.path.getmtime, deps)) > os.path.getmtime(obj):
                # -DUBDIFF_WITH_CUDA: the CUDA prototypes of backend.h, so nvcc checks
                # every definition against the op list
                nccl = (["-DUBDIFF_WITH_NCCL=1", f"-I{NCCL[0]}",
                         f'-DUBDIFF_NCCL_LIB="{os.path.join(NCCL[1], NCCL[2])}"'] if NCCL else [])
                cmds.append([NVCC, "-c", src, "-o", obj, "-O3", "-std=c++17", "-DUBDIFF_WITH_CUDA=1", *nccl,
                             "-Xcompiler", "-fPIC", "-Xcompiler", "-Wall", "-Icsrc", *gencode])
            objs.append(obj)
        # the .cu files are independent: UBDIFF_BUILD_JOBS nvcc processes at once (default: the cores)
        jobs = max(1, int(os.environ.get("UBDIFF_BUILD_JOBS", "0") or 0) or len(os.sched_getaffinity(0)))

        def run(cmd):
            print(" ".join(cmd), flush=True)
            subprocess.check_call(cmd)

        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            list(pool.map(run, cmds))  # re-raises the first failure
        return objs


blas_inc, blas_lib, blas_name = _blas()
sources = sorted(glob.glob("csrc/*.c") + glob.glob("csrc/cpu/*.c") + glob.glob("csrc/models/*.c")
                 + glob.glob("csrc/python/*.c"))
# Implicit declarations are errors: a call to a function that a merge removed
# would otherwise build and fail only at import ("undefined symbol").
cflags = ["-std=c11", "-O3", "-fopenmp", "-Wall", "-Wno-unused-function",
          "-Werror=implicit-function-declaration", "-Werror=incompatible-pointer-types",
          "-fno-strict-aliasing", "-DBLAS_SYMBOL_PREFIX=scipy_"]
if os.environ.get("UBDIFF_NATIVE", "1") != "0":
    cflags.append("-march=native")
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_20_API_VERSION")]
libs = [blas_name, "m"]
lib_dirs = [blas_lib]
# $ORIGIN/../scipy_openblas32/lib finds the wheel's OpenBLAS in a normal
# install; ubdiff/__init__.py also preloads it (editable installs).
rpath = ["$ORIGIN/../scipy_openblas32/lib", blas_lib]
if NVCC:
    macros.append(("UBDIFF_WITH_CUDA", "1"))
    cuda_lib = os.path.join(CUDA_HOME, "lib64")
    lib_dirs.append(cuda_lib)
    libs += ["cudart", "cublas", "curand", "stdc++"]
    rpath.append(cuda_lib)
if NCCL:   # csrc/cuda/nccl_comm.cu (and an empty csrc/nccl_stub.c)
    # not linked: nccl_comm.cu opens libnccl.so.2 at the first communicator (an NCCL linked in
    # was loaded at `import ubdiff` and broke a later `import torch` that needs a newer one)
    macros.append(("UBDIFF_WITH_NCCL", "1"))
    libs.append("dl")

ext = Extension(
    "ubdiff._ubdiff",
    sources=sources,
    include_dirs=["csrc", np.get_include(), blas_inc],
    define_macros=macros,
    extra_compile_args=cflags,
    extra_link_args=["-fopenmp"] + [f"-Wl,-rpath,{r}" for r in rpath],
    libraries=libs,
    library_dirs=lib_dirs,
    depends=glob.glob("csrc/**/*.h", recursive=True),
)

setup(ext_modules=[ext], cmdclass={"build_ext": BuildExtWithCuda})
