"Reading checkpoints with `savgbench.weights.load_torch_file`: nothing in the file runs, tensors come back exactly."
import os, shutil, sys, types
from pathlib import Path
import numpy as np, pytest, torch
from savgbench.core import WeightsError
from savgbench.weights import NotLoaded, load_torch_file

# Classes that exist only in the program that wrote the checkpoint: a module that the reader does not have.
_writer = types.ModuleType("savgbench_checkpoint_writer")

class Scheduler:                          # like an old SWALR, whose state_dict held a bound method
    def anneal(self, t): return t
class RunsCode:                           # unpickling this calls shutil.rmtree(folder): a safe reader must not
    def __init__(self, folder): self.folder = folder
    def __reduce__(self): return (shutil.rmtree, (self.folder,))
class RunsBlocked(RunsCode):              # the same through os.rmdir: torch refuses the os module outright
    def __reduce__(self): return (os.rmdir, (self.folder,))

for c in (Scheduler, RunsCode, RunsBlocked): c.__module__ = _writer.__name__; setattr(_writer, c.__name__, c)


@pytest.fixture
def writer_module():
    sys.modules[_writer.__name__] = _writer
    yield
    del sys.modules[_writer.__name__]


@pytest.mark.parametrize("zipped", [True, False])
def test_refused_objects_become_placeholders_and_run_nothing(tmp_path, writer_module, zipped):
    keep = tmp_path / "keep"; keep.mkdir()
    weights = {"a.weight": torch.randn(4, 3, dtype=torch.float64), "a.bias": torch.arange(4, dtype=torch.int32),
               "half": torch.randn(5).half()}
    ck = {"model_state_dict": weights, "scheduler_state_dict": {"anneal_func": Scheduler().anneal, "last_epoch": 3},
          "rng_state": np.random.get_state(), "payload": RunsCode(str(keep)), "note": "swa"}
    f = tmp_path / "ck.pth"
    torch.save(ck, f, _use_new_zipfile_serialization=zipped)
    del sys.modules[_writer.__name__]          # the reader's program does not have the writer's classes
    try:
        got = load_torch_file(f)
    finally:
        sys.modules[_writer.__name__] = _writer
    assert keep.is_dir()
    for k, v in weights.items():
        assert got["model_state_dict"][k].dtype == v.dtype and torch.equal(got["model_state_dict"][k], v)
    assert got["scheduler_state_dict"]["last_epoch"] == 3 and got["note"] == "swa"
    assert isinstance(got["scheduler_state_dict"]["anneal_func"], NotLoaded)
    assert isinstance(got["payload"], NotLoaded)
    assert isinstance(got["rng_state"][1], NotLoaded)


def test_a_file_naming_a_blocked_module_is_refused_without_running_it(tmp_path, writer_module):
    keep = tmp_path / "keep"; keep.mkdir()
    torch.save({"w": torch.ones(2), "payload": RunsBlocked(str(keep))}, tmp_path / "ck.pth")
    with pytest.raises(WeightsError, match="cannot read the checkpoint .*blocked"):
        load_torch_file(tmp_path / "ck.pth")
    assert keep.is_dir()


def test_a_file_the_safe_loader_accepts_is_read_unchanged(tmp_path):
    sd = {"w": torch.randn(2, 2), "nested": {"b": torch.ones(3)}, "step": 5}
    torch.save(sd, tmp_path / "sd.pt")
    got = load_torch_file(tmp_path / "sd.pt")
    assert torch.equal(got["w"], sd["w"]) and torch.equal(got["nested"]["b"], sd["nested"]["b"]) and got["step"] == 5


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"\x80\x02garbage", os.urandom(256)])
def test_unreadable_files_raise_weights_error(tmp_path, content):
    f = tmp_path / "x.pth"
    f.write_bytes(content)
    with pytest.raises(WeightsError, match="cannot read the SELD checkpoint"):
        load_torch_file(f, "SELD checkpoint")
