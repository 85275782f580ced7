"""The package as `pip install` from a wheel gives it, not the editable install the other tests import."""
import subprocess, sys, zipfile
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def _tracked(prefix=""):
    r = subprocess.run(["git", "ls-files", "-z", "--", prefix or "."], cwd=ROOT, capture_output=True)
    if r.returncode != 0: pytest.skip("not a git checkout: which files are the package's is not known")
    return [f for f in r.stdout.decode().split("\0") if f]

@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    "A wheel built from a copy of the checkout's tracked files (so nothing is written in the checkout)."
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77: pytest.skip(f"setuptools {setuptools.__version__} < 77")
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for f in _tracked():
        if f.startswith(("nbs/", "tests/", "benchmarks/", "images/")): continue     # not part of the build
        (src / f).parent.mkdir(parents=True, exist_ok=True); (src / f).write_bytes((ROOT / f).read_bytes())
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist),
                        str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    (whl,) = dist.glob("savgbench-*.whl")
    return whl

def test_the_wheel_holds_every_file_of_the_package_and_the_licence(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    package = [f for f in _tracked("savgbench") if "__pycache__" not in f]
    assert any(not f.endswith(".py") for f in package)            # data files (the demo SELD model) are among them
    assert [f for f in package if f not in names] == []
    assert [n for n in names if n.endswith(".dist-info/licenses/LICENSE")], sorted(names)[-8:]
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "savgbench = savgbench.cli:main" in entry

def test_an_installed_wheel_finds_its_demo_model_outside_the_checkout(wheel, tmp_path):
    """Installed into a folder of its own and run from elsewhere: the built-in demo SELD model (package data) loads
    from the installed package, not from the checkout."""
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target),
                        str(wheel)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    code = ("import savgbench; from savgbench.seld.infer import demo_checkpoint, load_seld_model; "
            "print(savgbench.__file__); print(demo_checkpoint()); "
            "print(sum(p.numel() for p in load_seld_model('demo', device='cpu').parameters()))")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr[-3000:]
    module, ckpt, n = r.stdout.split()
    assert Path(module).is_relative_to(target) and Path(ckpt).is_relative_to(target) and Path(ckpt).is_file()
    assert int(n) > 100_000
