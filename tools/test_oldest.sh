#!/usr/bin/env bash
# Checks pyproject.toml's lower bounds (a maintainer's check; CI runs tools/test.sh with the newest versions): builds
# .venv-oldest afresh with every bounded dependency at its lowest version (tools/oldest.txt) and runs tools/test.sh's
# tests in it (nbdev-test, then pytest; arguments go to pytest). About 2 minutes to build, then as long as test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
venv=.venv-oldest
rm -rf "$venv"
"$PY" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
# torch first, as tools/install.sh installs it (the same version, the CPU build where it picks that), so that nothing
# below pulls another build
torch_req=$(grep -o '"torch==[^"]*"' tools/install.sh | tr -d '"')
idx=${TORCH_INDEX_URL:-}
if [ -z "$idx" ] && [ "$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1 && \
   "$venv/bin/python" -c "import urllib.request as u; u.urlopen('https://download.pytorch.org/whl/cpu/', timeout=5)" 2>/dev/null; then
  idx=https://download.pytorch.org/whl/cpu
fi
# (--no-warn-conflicts: savgbench and its dependencies come next, and a savgbench.egg-info left in this folder by an
# earlier editable install would make pip list them all as missing)
"$venv/bin/python" -m pip install -q --no-warn-conflicts "$torch_req" ${idx:+--index-url "$idx"}
"$venv/bin/python" -m pip install -q -c tools/oldest.txt "$torch_req" -e ".[dev]"
# the pins took: each package at the version tools/oldest.txt names
"$venv/bin/python" - <<'PY'
import sys
from importlib.metadata import version
from packaging.version import Version
bad = []
for line in open("tools/oldest.txt"):
    line = line.split("#")[0].strip()
    if not line: continue
    name, want = line.split("==")
    if Version(version(name)) != Version(want): bad.append(f"{name} {version(name)} (wanted {want})")
if bad: sys.exit("not installed at the pinned version: " + ", ".join(bad))
PY
# librosa's numba functions compiled once, before the test workers start (as tools/install.sh does)
"$venv/bin/python" -c "
import numpy as np
from savgbench.align.temporal import onset_audio, onset_times
onset_times(onset_audio(np.random.default_rng(0).standard_normal((2, 16000)) * 0.1, 16000))"
SAVGBENCH_VENV=$venv exec bash tools/test.sh "$@"
