#!/usr/bin/env bash
# Installs what the tests need into .venv (CPU torch first, so no CUDA build is pulled) and runs every test:
# the notebooks (nbdev-test) and tests/ (pytest). Usage: bash tools/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
export PATH="$PWD/.venv/bin:$PATH"
# Notebooks are the source: the committed modules must be what nbdev-export writes from them.
if git rev-parse --git-dir >/dev/null 2>&1; then
  nbdev-export
  if ! git diff --quiet -- savgbench; then
    echo "savgbench/ differs from what the notebooks export; run nbdev-export and commit:" >&2
    git --no-pager diff --stat -- savgbench >&2; exit 1
  fi
fi
echo "== nbdev-test (notebooks; cells flagged gpu/slow are skipped)"
nbdev-test --n-workers 2 --timing
echo "== pytest"
pytest -q "$@"
