import hashlib, json, shutil
from pathlib import Path
import pytest

from savgbench.core import SAVGBenchError
from savgbench.cli import main
from savgbench.demo import run_demo, demo_cli, SETTINGS_FILE

SMALL = dict(recordings=2, seconds=5, workers=1, progress=False)

def digests(root):
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(Path(root).rglob("*")) if p.is_file()}

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    "A demo folder with the dataset built (2 recordings of 5 s, no evaluation)."
    out = tmp_path_factory.mktemp("demo") / "out"
    run_demo(out, evaluate_clips=False, **SMALL)
    return out

@pytest.fixture
def out(built, tmp_path):
    shutil.copytree(built, tmp_path / "out"); return tmp_path / "out"

@pytest.mark.parametrize("argv", [["--recordings", "1"], ["--recordings", "3.5"], ["--n-eval", "0"], ["--n-eval", "1"],
                                  ["--seconds", "4.9"], ["--seconds", "5.05"], ["--seconds", "inf"], ["--seed", "-1"],
                                  ["--workers", "0"]])
def test_cli_rejects_bad_options_before_any_work(tmp_path, capsys, argv):
    with pytest.raises(SystemExit) as e: demo_cli([str(tmp_path / "o"), *argv])
    assert e.value.code == 2 and argv[0] in capsys.readouterr().err
    assert not (tmp_path / "o").exists()

@pytest.mark.parametrize("kw,msg", [(dict(recordings=1), "recordings must be an integer >= 2"),
                                    (dict(n_eval=1), "n_eval must be an integer >= 2"),
                                    (dict(seconds=4.5), "at least 5 s"), (dict(seed=-3), "seed must be")])
def test_run_demo_rejects_bad_settings(tmp_path, kw, msg):
    with pytest.raises(SAVGBenchError, match=msg): run_demo(tmp_path / "o", **{**SMALL, **kw})
    assert not (tmp_path / "o").exists()

def test_summary_describes_the_files(built):
    s = json.loads((built / "demo_summary.json").read_text())
    assert s["clips"]["dev"] == len(list((built / "savgbench/video_dev").glob("*.mp4"))) > 0
    assert s["clips"]["eval"] == len(list((built / "savgbench/video_eval").glob("*.mp4"))) > 0
    from savgbench.io import MEDIA_RULE                  # the clips' folder also records how they were converted
    assert s["settings"] == {"starss": dict(recordings=2, seconds=5.0, seed=0),
                             "savgbench": dict(recordings=2, seconds=5.0, seed=0, media=MEDIA_RULE)}
    assert len(list((built / "starss/foa_dev").rglob("*.wav"))) == 2

def test_same_settings_resume_other_settings_refused(out, capsys):
    media = lambda: {k: v for k, v in digests(out).items() if not k.endswith(".json")}   # reports hold timings
    stamps = lambda: {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.suffix != ".json"}
    before, written = media(), stamps()
    run_demo(out, evaluate_clips=False, **SMALL)
    assert media() == before and len(before) == 2 * 3 + 2 * 15
    assert stamps() == written              # resumed: no file made again (the same bytes written anew would pass above)
    summary = (out / "demo_summary.json").read_text()
    with pytest.raises(SAVGBenchError, match=r"--recordings: 2 there, 8 now; --seconds: 5.0 there, 6.0 now; --seed: 0 there, 5 now"):
        run_demo(out, evaluate_clips=False, **{**SMALL, "recordings": 8, "seconds": 6, "seed": 5})
    assert (out / "demo_summary.json").read_text() == summary and len(list((out / "starss/foa_dev").rglob("*.wav"))) == 2
    # the command prints it as one line and exits 1
    assert main(["demo", str(out), "--recordings", "8", "--seconds", "6", "--no-eval"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "another output folder" in err and str(out / "starss") in err

def test_missing_recording_is_made_again(out):
    wav = next((out / "starss/foa_dev/dev-train-synth").glob("*.wav")); md5 = digests(out)[str(wav.relative_to(out))]
    wav.unlink()
    run_demo(out, evaluate_clips=False, **SMALL)
    assert hashlib.md5(wav.read_bytes()).hexdigest() == md5

def test_folder_without_settings_is_refused(out):
    (out / SETTINGS_FILE).unlink()
    with pytest.raises(SAVGBenchError, match="--recordings: not recorded there"): run_demo(out, evaluate_clips=False, **SMALL)

def test_eval_stage_reused_only_with_same_n_eval(out, monkeypatch):
    import savgbench.evaluate as E
    calls = []
    def fake(gen, ref, out=None, **kw):
        calls.append(Path(gen).name)
        return dict(metrics=dict(spatial_av_align=1.0), skipped={}, gen_dir=str(gen))
    monkeypatch.setattr(E, "evaluate", fake)
    s = run_demo(out, n_eval=3, install_weights=False, **SMALL)
    gt = sorted((out / "eval/video_gt").glob("*.mp4"))
    assert s["eval_clips"] == s["n_eval"] == len(gt) == len(list((out / "eval/video_swapped").glob("*.mp4"))) == 3
    assert calls == ["video_gt", "video_swapped"] and "| ground truth |" in s["table"]
    mtimes = [p.stat().st_mtime_ns for p in gt]
    run_demo(out, n_eval=3, install_weights=False, **SMALL)                       # same settings: clips kept
    assert [p.stat().st_mtime_ns for p in gt] == mtimes
    with pytest.raises(SAVGBenchError, match=r"--n-eval: 3 there, 4 now.*delete \S*eval to make"):
        run_demo(out, n_eval=4, install_weights=False, **SMALL)
    assert len(calls) == 4
    s = run_demo(out, n_eval=4, evaluate_clips=False, **SMALL)                     # --no-eval leaves eval/ alone
    assert s["settings"]["eval"]["n_eval"] == 3 and "table" not in s
    shutil.rmtree(out / "eval")                                                   # deleting it allows a new n_eval
    assert run_demo(out, n_eval=4, install_weights=False, **SMALL)["eval_clips"] == 4
