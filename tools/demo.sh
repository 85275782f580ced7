#!/usr/bin/env bash
# The main job on the built-in data: install (if needed), then `savgbench demo OUT` (default OUT: demo_out).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
exec .venv/bin/savgbench demo "${1:-demo_out}" "${@:2}"
