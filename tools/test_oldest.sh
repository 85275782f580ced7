#!/usr/bin/env bash
# Checks pyproject.toml's lower bounds (a maintainer's check; CI runs tools/test.sh with the newest versions): builds
# .venv-oldest afresh with every bounded dependency at its lowest version (tools/oldest.txt) and runs tools/test.sh's
# tests in it (nbdev-test, then pytest; arguments go to pytest). About 2 minutes to build, then as long as test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-oldest
rm -rf "$venv"
# as tools/install.sh installs .venv (the same torch first), with the pins as constraints
SAVGBENCH_VENV=$venv SAVGBENCH_CONSTRAINTS=tools/oldest.txt bash tools/install.sh
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
SAVGBENCH_VENV=$venv exec bash tools/test.sh "$@"
