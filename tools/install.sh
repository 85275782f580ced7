#!/usr/bin/env bash
# Creates .venv and installs savgbench with its development tools. torch is installed first, pinned, so that nothing
# pulls another build later. On a Linux machine without an NVIDIA GPU it comes from PyTorch's CPU index when that is
# reachable (PyPI's Linux torch wheels are the multi-GB CUDA build); set TORCH_INDEX_URL to choose the index yourself.
# SAVGBENCH_VENV installs into another environment, SAVGBENCH_CONSTRAINTS with a pip constraints file
# (tools/test_oldest.sh: .venv-oldest, tools/oldest.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
venv=${SAVGBENCH_VENV:-.venv}
[ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  idx=${TORCH_INDEX_URL:-}
  if [ -z "$idx" ] && [ "$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1 && \
     "$venv/bin/python" -c "import urllib.request as u; u.urlopen('https://download.pytorch.org/whl/cpu/', timeout=5)" 2>/dev/null; then
    idx=https://download.pytorch.org/whl/cpu
  fi
  "$venv/bin/python" -m pip install -q "torch==2.13.0" ${idx:+--index-url "$idx"}
fi
"$venv/bin/python" -m pip install -q ${SAVGBENCH_CONSTRAINTS:+-c "$SAVGBENCH_CONSTRAINTS"} -e ".[dev]"
# librosa compiles its numba functions on first use and caches them in its package folder. Two processes compiling
# them at once (nbdev-test's workers, two runs side by side) can leave a cache that makes every later process crash
# (a segfault in librosa's peak_pick). savgbench compiles them under a lock shared by all processes
# (core.librosa_ready, nbs/00_core.ipynb); compiling them here once (about 20 s the first time) also spares the test
# workers the wait.
"$venv/bin/python" -c "
import numpy as np
from savgbench.align.temporal import onset_audio, onset_times
onset_times(onset_audio(np.random.default_rng(0).standard_normal((2, 16000)) * 0.1, 16000))"
