# Sourced by scripts/test.sh and scripts/demo.sh, in the repository root.
#
#   split_rebuild_flag "$@"   REBUILD=1 when --rebuild is among the arguments; ARGS = the others
#   ensure_build [EXTRA]      creates .venv (with $PYTHON, default python3) and installs ubdiff
#                             there (pip install -e ".[EXTRA]") when REBUILD=1 or when
#                             scripts/build_stamp.py finds csrc/, setup.py or pyproject.toml
#                             changed since the last build; otherwise returns at once.

STAMP=.venv/ubdiff-build.stamp

split_rebuild_flag() {
  REBUILD=0
  ARGS=()
  local a
  for a in "$@"; do
    if [ "$a" = "--rebuild" ]; then REBUILD=1; else ARGS+=("$a"); fi
  done
}

ensure_build() {
  local extra=${1:-}
  [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
  local stale=0
  if [ "${REBUILD:-0}" = 1 ]; then
    .venv/bin/python scripts/build_stamp.py check "$STAMP" $extra > /dev/null || true
    echo "building ubdiff (--rebuild): a few minutes, C and CUDA sources"
    stale=1
  else
    .venv/bin/python scripts/build_stamp.py check "$STAMP" $extra || stale=1
  fi
  if [ "$stale" = 1 ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".${extra:+[$extra]}"
    .venv/bin/python scripts/build_stamp.py write "$STAMP" $extra
  fi
}
