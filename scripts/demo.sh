#!/usr/bin/env bash
# Set everything up in a virtual environment (.venv) and run the demo.
# Extra arguments go to `python -m ubdiff demo`, e.g. `bash scripts/demo.sh --scale 0.2`.
# The package is built on the first run and rebuilt only when csrc/, setup.py or
# pyproject.toml changed since (scripts/build_stamp.py); `--rebuild` forces it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
split_rebuild_flag "$@"
ensure_build
exec .venv/bin/python -m ubdiff demo ${ARGS[@]+"${ARGS[@]}"}
