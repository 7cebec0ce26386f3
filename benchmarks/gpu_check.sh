#!/usr/bin/env bash
# gpu_check.sh — the whole GPU check in one command, on a GPU machine without
# internet (Python 3.12 with numpy, setuptools, scipy, safetensors, tqdm,
# matplotlib, pytest and PyTorch; nvcc 13): install, GPU tests, benchmarks,
# and a short table printed last.
#
#   here (internet):   bash scripts/fetch_gpu_wheels.sh      # .whl/ : scipy-openblas32
#   there:             bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Parts and their ceilings (each time-boxed; the sum fits a 15-minute budget):
#   1 install     wheels from .whl/ + an editable build, nvcc for sm_90 only and
#                 in parallel                         ~3 min, at most 5 (BUILD_LIMIT)
#   2 GPU tests   tests/*_device.py, *_cuda.py, test_math_mode.py (cuda cases:
#                 the CPU ones ran here)              at most 3 min (TEST_LIMIT)
#   3 benchmarks  benchmarks/gpu_bench.py, every part vs PyTorch, time-boxed
#                 (BENCH_BUDGET s per part, no part after BENCH_TOTAL s)
#                                                     at most 6 min (BENCH_LIMIT)
# Logs and the table go to OUT_DIR (default $OUT when set, else build/gpu_check).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-build/gpu_check}}
mkdir -p "$OUT_DIR"
PY=${PYTHON:-python3}
BUILD_LIMIT=${BUILD_LIMIT:-300}
TEST_LIMIT=${TEST_LIMIT:-180}
BENCH_LIMIT=${BENCH_LIMIT:-360}
BENCH_BUDGET=${BENCH_BUDGET:-20}
BENCH_TOTAL=${BENCH_TOTAL:-240}
export PYTHONUNBUFFERED=1
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }

stamp "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2
nvcc --version | tail -1
"$PY" -c "import sys, numpy, torch; print(sys.version.split()[0], 'numpy', numpy.__version__, 'torch', torch.__version__)"

stamp "1 install"
if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/ubdiff_site \
        .whl/*.whl || { echo "gpu_check: installing .whl/ failed"; exit 1; }
    export PYTHONPATH=/tmp/ubdiff_site${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" -c "import scipy_openblas32" 2>/dev/null || {
    echo "gpu_check: scipy-openblas32 missing: run scripts/fetch_gpu_wheels.sh where there is internet, carry .whl/"
    exit 1
}
# sm_90 (H100 / H200) only: a third of the nvcc time of the default 80;90 + PTX
export UBDIFF_CUDA_ARCH=${UBDIFF_CUDA_ARCH:-90} UBDIFF_CUDA=1
timeout "$BUILD_LIMIT" "$PY" -m pip install -q --no-build-isolation --no-deps -e . >"$OUT_DIR/build.log" 2>&1
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ]; then  # e.g. a read-only site-packages: build in place instead
    echo "gpu_check: pip install -e . failed (rc $rc), building in place" | tee -a "$OUT_DIR/build.log"
    timeout "$BUILD_LIMIT" "$PY" setup.py -q build_ext --inplace >>"$OUT_DIR/build.log" 2>&1
    rc=$?
fi
if [ $rc -ne 0 ]; then
    tail -40 "$OUT_DIR/build.log"
    echo "gpu_check: build failed (rc $rc; log $OUT_DIR/build.log)"
    exit 1
fi
"$PY" -c "import ubdiff; print(ubdiff.build_info()); assert ubdiff.gpu_count() > 0, 'ubdiff sees no GPU'" || exit 1

stamp "2 GPU tests"
tests=$(ls tests/test_*_device.py tests/test_*_cuda.py tests/test_math_mode.py 2>/dev/null | tr '\n' ' ')
timeout "$TEST_LIMIT" "$PY" -m pytest -q -p no:cacheprovider -k "cuda or gpu" $tests 2>&1 | tee "$OUT_DIR/tests.log" | tail -30
test_rc=${PIPESTATUS[0]}
test_line=$(grep -E "passed|failed|error" "$OUT_DIR/tests.log" | tail -1)

stamp "3 benchmarks"
timeout "$BENCH_LIMIT" "$PY" benchmarks/gpu_bench.py --budget "$BENCH_BUDGET" --total "$BENCH_TOTAL" \
    --json "$OUT_DIR/gpu_bench.json" 2>&1 | tee "$OUT_DIR/bench.log" | grep -v "^| "
bench_rc=${PIPESTATUS[0]}

stamp "done"
echo
echo "GPU tests: ${test_line:-no summary} (rc $test_rc; 124: stopped at the $TEST_LIMIT s limit)"
echo "benchmarks: rc $bench_rc"
sed -n '/^## GPU benchmark/,$p' "$OUT_DIR/bench.log"
[ "$test_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
