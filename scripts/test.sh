#!/usr/bin/env bash
# Set everything up in a virtual environment (.venv) and run the tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
# The package is built on the first run and rebuilt only when csrc/, setup.py or
# pyproject.toml changed since (scripts/build_stamp.py); `--rebuild` forces it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
split_rebuild_flag "$@"
ensure_build test
export PYTHONUNBUFFERED=1
if [ "${#ARGS[@]}" -eq 0 ]; then ARGS=(-m "not slow"); fi
exec .venv/bin/python -m pytest "${ARGS[@]}"
