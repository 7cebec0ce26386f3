#!/usr/bin/env bash
# fetch_gpu_wheels.sh — download, on a machine with internet, the wheels that
# benchmarks/gpu_check.sh installs on a GPU machine without it (Python 3.12,
# x86-64 manylinux) into .whl/ (ignored by git; carried to the GPU machine).
#
# The GPU image has numpy, setuptools, scipy, safetensors, tqdm, matplotlib,
# pytest and PyTorch (/work/.library/device/KINDS.md); the one build and run
# dependency it lacks is scipy-openblas32, the OpenBLAS the C core links; and
# setuptools as new as pyproject.toml's build-system asks (>= 77: the SPDX
# license string), whatever version the image holds. Both in the versions this
# checkout builds with here. Extra NAME==VERSION arguments are fetched too.
#     bash scripts/fetch_gpu_wheels.sh [NAME==VERSION ...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# the version this checkout builds against here, so both machines link the same OpenBLAS
version_of() {
    local v
    v=$("$PY" -m pip show "$1" 2>/dev/null | awk '/^Version:/{print $2}')
    [ -n "$v" ] || v=$(.venv/bin/python -m pip show "$1" 2>/dev/null | awk '/^Version:/{print $2}')
    echo "$v"
}
SOB=$(version_of scipy-openblas32)
ST=$(version_of setuptools)
mkdir -p .whl
plats=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do plats+=(--platform "$p"); done
rm -f .whl/scipy_openblas32-*.whl .whl/setuptools-*.whl  # one version of each
for w in "scipy-openblas32${SOB:+==$SOB}" "setuptools${ST:+==$ST}" "$@"; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${plats[@]}" -d .whl "$w"
done
ls -l .whl
