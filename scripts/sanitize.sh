#!/usr/bin/env bash
# Build the extension with AddressSanitizer + UndefinedBehaviorSanitizer and run
# the default test suite under it (issue 9). Extra arguments go to pytest, e.g.
#   bash scripts/sanitize.sh tests/test_fuzz.py
#
# The build is separate from the developer's: the working tree (tracked and
# untracked, not ignored, files) is copied to build/sanitize/src and built in
# place there with its own virtual environment build/sanitize/venv, so .venv
# and ubdiff/_ubdiff*.so of the checkout are left alone. CUDA is off (nvcc
# objects are not instrumented, and the GPU tests skip anyway).
#
# -fno-wrapv undoes the -fwrapv that CPython's own compiler flags pass to every
# extension, so signed overflow is undefined again and UBSan reports it;
# -fno-sanitize-recover=undefined makes any report fatal. CPython itself is not
# instrumented, so libasan is preloaded (it must be the first library loaded);
# leak detection is off (the interpreter keeps memory until exit by design) and
# a failed huge allocation returns NULL (tests check that it raises MemoryError).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${UBDIFF_SANITIZE_DIR:-$ROOT/build/sanitize}"
PY=${PYTHON:-python3}
CC=${CC:-gcc}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-wrapv -fno-omit-frame-pointer -g"

cd "$ROOT"
rm -rf "$OUT/src"
mkdir -p "$OUT/src"
git ls-files -z --cached --others --exclude-standard \
    | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$OUT/src"

[ -x "$OUT/venv/bin/python" ] || "$PY" -m venv "$OUT/venv"
"$OUT/venv/bin/python" -m pip install -q --upgrade pip
cd "$OUT/src"
export UBDIFF_CUDA=0  # the build, and the tests that check it, know it is CPU-only
CC="$CC" CFLAGS="$SAN" LDFLAGS="-fsanitize=address,undefined" "$OUT/venv/bin/python" -m pip install -q -e ".[test]"

ASAN_LIB="$("$CC" -print-file-name=libasan.so)"
[ -e "$ASAN_LIB" ] || { echo "sanitize.sh: libasan.so not found for $CC" >&2; exit 2; }
# libstdc++ too: ASan intercepts __cxa_throw only if it is loaded at start-up
# (C++ extensions such as matplotlib's ft2font throw)
STDCXX="$("$CC" -print-file-name=libstdc++.so.6)"
export LD_PRELOAD="$ASAN_LIB:$STDCXX${LD_PRELOAD:+:$LD_PRELOAD}"
# reports go to files as well: pytest's capture would swallow them with the aborted process
REPORTS="$OUT/reports"
rm -rf "$REPORTS"
mkdir -p "$REPORTS"
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:abort_on_error=1:strict_string_checks=1:log_path=$REPORTS/asan:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$REPORTS/ubsan:${UBSAN_OPTIONS:-}"
export PYTHONUNBUFFERED=1
# the instrumented build runs 3-5x slower: the notebooks' per-cell limit follows
export UBDIFF_NOTEBOOK_CELL_TIMEOUT=${UBDIFF_NOTEBOOK_CELL_TIMEOUT:-1500}
if [ "$#" -eq 0 ]; then set -- -m "not slow"; fi
echo "sanitize.sh: ASan + UBSan build in $OUT/src; running pytest $*"
rc=0
"$OUT/venv/bin/python" -m pytest -p no:cacheprovider "$@" || rc=$?
if compgen -G "$REPORTS/*" > /dev/null; then
    echo "sanitize.sh: sanitizer reports:" >&2
    for f in "$REPORTS"/*; do echo "== $f" >&2; head -60 "$f" >&2; done
    [ "$rc" -ne 0 ] || rc=1
fi
[ "$rc" -eq 0 ] && echo "sanitize.sh: clean (no sanitizer report, all tests passed)"
exit "$rc"
