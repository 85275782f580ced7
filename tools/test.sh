#!/usr/bin/env bash
# Installs what the tests need into .venv (CPU torch first, so no CUDA build is pulled) and runs every test:
# the notebooks (nbdev-test) and tests/ (pytest). Usage: bash tools/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
# SAVGBENCH_VENV names another environment to test, used as it is (tools/test_oldest.sh builds .venv-oldest)
venv=${SAVGBENCH_VENV:-.venv}
if [ "$venv" = .venv ]; then bash tools/install.sh
elif [ ! -x "$venv/bin/nbdev-test" ]; then echo "SAVGBENCH_VENV=$venv: no environment with nbdev there" >&2; exit 1; fi
case $venv in /*) ;; *) venv=$PWD/$venv ;; esac                 # a path from here, or an absolute one
export PATH="$venv/bin:$PATH"
# Notebooks are the source: the committed modules must be what nbdev-export writes from them.
if git rev-parse --git-dir >/dev/null 2>&1; then
  nbdev-export
  if ! git diff --quiet -- savgbench; then
    echo "savgbench/ differs from what the notebooks export; run nbdev-export and commit:" >&2
    git --no-pager diff --stat -- savgbench >&2; exit 1
  fi
fi
# Every temporary file of the run (notebook examples, pytest's tmp_path, subprocesses) goes to one private folder,
# removed when the run ends however it ends, so repeated runs do not fill the disk. Pytest removes a passed test's
# tmp_path (pyproject.toml), so the folder holds a few hundred MB at most; too little free space stops the run here.
base=${TMPDIR:-/tmp}
[ -d "$base" ] || { echo "TMPDIR=$base is not a folder" >&2; exit 1; }
free_mb=$(python -c 'import shutil, sys; print(shutil.disk_usage(sys.argv[1]).free >> 20)' "$base")
if [ "$free_mb" -lt 512 ]; then
  echo "only $free_mb MB free in $base: the tests want 512 MB of scratch space there (set TMPDIR elsewhere)" >&2
  exit 1
fi
TMPDIR=$(cd "$(mktemp -d "$base/savgbench-test.XXXXXX")" && pwd)      # absolute: subprocesses change folders
export TMPDIR
# KEEP_TMP=1 keeps it to look at a failed test's files (it prints where)
trap 'if [ "${KEEP_TMP:-0}" = 1 ]; then echo "scratch folder kept: $TMPDIR" >&2; else rm -rf "$TMPDIR"; fi' EXIT
echo "== nbdev-test (notebooks; cells flagged gpu/slow are skipped)"
nbdev-test --n-workers 2 --timing
# a notebook example that makes a temporary folder removes it (Python's tempfile names start with "tmp")
left=$(find "$TMPDIR" -mindepth 1 -maxdepth 1 -name 'tmp*')
if [ -n "$left" ]; then echo "the notebooks left temporary files behind:" >&2; echo "$left" >&2; exit 1; fi
# two processes, as nbdev-test above (on 2 cores: 407 s against 600 s in one; `-n 0` after it runs them in one, for --pdb)
echo "== pytest (2 processes)"
pytest -q -n 2 "$@"
