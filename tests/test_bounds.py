"""pyproject.toml's lower bounds and tools/oldest.txt (the versions tools/test_oldest.sh tests them with) name the same
versions, so that a raised bound is tested and a tested version is what pyproject promises."""
from pathlib import Path
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
NOT_PINNED = {"torch"}        # tools/oldest.txt says why: its bound is checked by reading the code


def _pyproject():
    try: import tomllib                                              # novermin (Python 3.11)
    except ImportError: tomllib = pytest.importorskip("tomli")      # Python 3.10
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def lower_bounds(project: dict) -> dict:
    "{name: (lowest version, requirement)} of every dependency and extra with a `>=` bound."
    reqs = [Requirement(r) for r in project["dependencies"]]
    reqs += [Requirement(r) for extra in project.get("optional-dependencies", {}).values() for r in extra]
    out = {}
    for r in reqs:
        lows = [Version(s.version) for s in r.specifier if s.operator == ">="]
        if lows: out[canonicalize_name(r.name)] = (max(lows), r)
    return out


def pins(text: str) -> dict:
    "{name: version} of the `name==version` lines of a constraints file."
    out = {}
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if not line: continue
        r = Requirement(line)
        (spec,) = r.specifier
        assert spec.operator == "==", f"tools/oldest.txt: {line!r} is not a pin"
        name = canonicalize_name(r.name)
        assert name not in out, f"tools/oldest.txt pins {r.name} twice"
        out[name] = Version(spec.version)
    return out


def mismatches(bounds: dict, pinned: dict) -> list:
    "What keeps the pins from being exactly the lower bounds."
    bad = []
    for name, (low, req) in sorted(bounds.items()):
        if name in NOT_PINNED:
            if name in pinned: bad.append(f"{name} is pinned, but the script installs it otherwise")
        elif name not in pinned: bad.append(f"{name}>={low} has no pin")
        elif pinned[name] != low: bad.append(f"{name}: bound {low}, pin {pinned[name]}")
        elif pinned[name] not in req.specifier: bad.append(f"{name}: the pin {pinned[name]} is outside {req.specifier}")
    bad += [f"{name}=={v} has no lower bound in pyproject.toml" for name, v in sorted(pinned.items()) if name not in bounds]
    return bad


def test_every_lower_bound_is_the_pin_that_test_oldest_installs():
    bounds, pinned = lower_bounds(_pyproject()["project"]), pins((ROOT / "tools" / "oldest.txt").read_text())
    assert {"numpy", "pandas", "accelerate", "nbdev", "pytest"} <= set(pinned)       # read both files, not none
    assert mismatches(bounds, pinned) == []


def test_a_bound_and_a_pin_that_drift_apart_are_named():
    project = {"dependencies": ["torch>=2.6", "numpy>=1.24", "av>=16", "opencv-python-headless>=4.8.0.76,<5",
                                "ipykernel"],
               "optional-dependencies": {"dev": ["pytest>=7.3"]}}
    bounds = lower_bounds(project)
    good = pins("numpy==1.24.0\nav==16.0.0  # a comment\nopencv_python_headless==4.8.0.76\npytest==7.3\n")
    assert mismatches(bounds, good) == []                       # 1.24 == 1.24.0; names compare as pip compares them
    assert mismatches(bounds, {**good, "numpy": Version("1.26.4")}) == ["numpy: bound 1.24, pin 1.26.4"]
    assert mismatches(bounds, {k: v for k, v in good.items() if k != "av"}) == ["av>=16 has no pin"]
    assert mismatches(bounds, {**good, "scipy": Version("1.10")}) == ["scipy==1.10 has no lower bound in pyproject.toml"]
    assert mismatches(bounds, {**good, "torch": Version("2.6")}) == [
        "torch is pinned, but the script installs it otherwise"]
    assert mismatches(lower_bounds({"dependencies": ["av>=16,!=16.0.0"]}), {"av": Version("16.0.0")}) == [
        "av: the pin 16.0.0 is outside !=16.0.0,>=16"]
    with pytest.raises(AssertionError, match="not a pin"): pins("numpy>=1.24\n")
