"Synthetic STARSS23 scenes: determinism, label/geometry/audio agreement, file formats, bad arguments, detectability."
import hashlib, math, subprocess, sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings, strategies as st

from savgbench.core import SAVGBenchError
from savgbench.geometry import equirect_position
from savgbench.synth import (SYNTH_SR, PERSON_CLASSES, SceneEvent, SynthError, encode_foa,
                             hog_detection_rate, label_rule_views, make_scene, read_video_frames, render_video,
                             scene_labels, source_signal, synth_starss, synth_starss_cli, have_espeak, have_fluidsynth)

def _sha(p): return hashlib.sha256(Path(p).read_bytes()).hexdigest()
def _tree(root): return {p.relative_to(root).as_posix(): _sha(p) for p in sorted(Path(root).rglob("*")) if p.is_file()}

def _how_they_differ(a, b, ta, tb) -> str:
    "For a failed byte comparison of two synth_starss folders: which files differ, and for media, where."
    import av
    lines = [f"only in one: {sorted(set(ta) ^ set(tb))}"] if set(ta) != set(tb) else []
    for k in sorted(set(ta) & set(tb)):
        if ta[k] == tb[k]: continue
        pa, pb = Path(a) / k, Path(b) / k
        if k.endswith(".wav"):
            x, y = sf.read(pa, dtype="int32")[0], sf.read(pb, dtype="int32")[0]
            d = np.nonzero((x != y).any(-1))[0] if x.shape == y.shape else []
            lines.append(f"{k}: shapes {x.shape} {y.shape}, {len(d)} samples differ, first {d[:5]}")
        elif k.endswith(".mp4"):
            with av.open(str(pa)) as ca, av.open(str(pb)) as cb:
                fa = [f.to_ndarray(format="rgb24") for f in ca.decode(video=0)]
                fb = [f.to_ndarray(format="rgb24") for f in cb.decode(video=0)]
            diff = [(i, int((u != v).any(-1).sum()), int(np.abs(u.astype(int) - v).max()))
                    for i, (u, v) in enumerate(zip(fa, fb)) if not np.array_equal(u, v)]
            lines.append(f"{k}: {len(fa)} and {len(fb)} frames; {len(diff)} differ (frame, pixels, max diff): {diff[:8]}")
        else: lines.append(f"{k}: {pa.read_bytes()[:200]!r} != {pb.read_bytes()[:200]!r}")
    return "the two runs differ:\n" + "\n".join(lines)

@pytest.fixture(scope="module")
def rec30(tmp_path_factory):
    "One default-size 30 s recording (room on), shared by the agreement tests."
    return synth_starss(tmp_path_factory.mktemp("s30"), recordings=1, seconds=30, seed=7, progress=False)[0]

# --- determinism --------------------------------------------------------------------------------------------------

def test_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synth_starss(a, recordings=2, seconds=6, seed=11, video_size=(480, 240), progress=False)
    # the second run is a separate process through the command line: no state shared with the first
    r = subprocess.run([sys.executable, "-c", "import sys; from savgbench.synth import synth_starss_cli; "
                        f"sys.exit(synth_starss_cli([{str(b)!r}, '--recordings', '2', '--seconds', '6', '--seed', '11', '--video-size', '480x240']))"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ta, tb = _tree(a), _tree(b)
    assert len(ta) == 7
    if ta != tb: pytest.fail(_how_they_differ(a, b, ta, tb))            # wav, csv, mp4 and settings identical
    synth_starss(c, recordings=2, seconds=6, seed=12, video_size=(480, 240), progress=False)
    tc = _tree(c)
    assert all(ta[k] != tc[k] for k in ta)                               # another seed, other bytes
    assert not list(Path(a).rglob(".*"))                                  # no temporary files left

def test_recording_depends_only_on_seed_and_index(tmp_path):
    synth_starss(tmp_path / "one", recordings=1, seconds=5, seed=3, video_size=(256, 128), progress=False)
    synth_starss(tmp_path / "four", recordings=4, seconds=5, seed=3, video_size=(256, 128), progress=False)
    n = "dev-train-synth/fold3_room01_mix001"
    for sub, ext in (("foa_dev", "wav"), ("metadata_dev", "csv"), ("video_dev", "mp4")):
        assert _sha(tmp_path / "one" / sub / f"{n}.{ext}") == _sha(tmp_path / "four" / sub / f"{n}.{ext}")
    assert (tmp_path / "four/video_dev/dev-test-synth/fold4_room02_mix001.mp4").exists()

# --- labels, geometry and audio agree --------------------------------------------------------------------------------

def _person_columns(frame, background, thr=40):
    "Columns of pixels that differ from the background (a drawn figure)."
    return np.nonzero(np.abs(frame.astype(int) - background.astype(int)).sum(-1) > thr)[1]

def _circular_mean_col(cols, width):
    ang = (cols + 0.5) / width * 2 * np.pi
    return (np.angle(np.exp(1j * ang).mean()) / (2 * np.pi) * width - 0.5) % width

def _col_err(c, width, az):
    return abs((c - equirect_position(az, 0, width, width // 2)[0] + width / 2) % width - width / 2)

def test_drawn_person_at_label_azimuth(tmp_path):
    events = [SceneEvent(0, 0, 10, 20, azimuth=35.0, elevation=12.0, seed=1),
              SceneEvent(9, 0, 25, 45, azimuth=170.0, elevation=-15.0, speed=12.0, seed=2),     # crosses the seam
              SceneEvent(1, 0, 45, 50, azimuth=-100.0, elevation=-20.0, seed=3)]
    path = tmp_path / "v.mp4"
    n = render_video(path, events, 5.0, (960, 480), np.random.default_rng(0))
    assert n == math.ceil(5 * 30000 / 1001)
    times = [0.5, 1.5, 2.6, 3.5, 4.4, 4.7]
    frames = read_video_frames(path, times); bg = frames[0.5]
    lab = scene_labels(events)
    for t in times[1:]:
        f = int(round(t * 10)); row = lab[lab[:, 0] == f]
        assert len(row) == 1
        cols = _person_columns(frames[t], bg)
        assert len(cols) > 500                                           # a figure, not a speck
        assert _col_err(_circular_mean_col(cols, 960), 960, row[0, 3]) <= 3.0, (t, row)

def test_generated_video_matches_labels(rec30):
    lab, events = rec30["labels"], rec30["events"]
    drawn = [e for e in events if e.cls in PERSON_CLASSES + (3, 12)]
    quiet = [t for t in np.arange(0, 30, 0.1) if not any(e.active_at(t) for e in drawn)]
    solo = [t for t in np.arange(0.3, 29.5, 0.7)
            if sum(e.active_at(t) for e in drawn) == 1 and sum(e.active_at(t) for e in events) == 1
            and [e for e in events if e.active_at(t)][0].cls in PERSON_CLASSES]
    assert quiet and len(solo) >= 10
    frames = read_video_frames(rec30["paths"]["mp4"], [quiet[0]] + solo)
    for t in solo:
        row = lab[lab[:, 0] == int(round(t * 10))]
        c = _circular_mean_col(_person_columns(frames[t], frames[quiet[0]]), 960)
        assert _col_err(c, 960, row[0, 3]) <= 3.0, (t, row)

def test_audio_direction_agrees_with_labels(rec30):
    x, sr = sf.read(rec30["paths"]["wav"], dtype="float64")
    lab = rec30["labels"]
    frames, counts = np.unique(lab[:, 0], return_counts=True)
    single = set(frames[counts == 1]); agree_y = agree_x = n = 0
    for r in lab:
        if r[0] not in single: continue
        seg = x[r[0] * 2400:(r[0] + 1) * 2400]
        w = seg[:, 0]
        if (w**2).mean() < 1e-9: continue                                  # a pause in speech
        sy, sx = math.sin(math.radians(r[3])), math.cos(math.radians(r[3]))
        if abs(sy) > 0.5: agree_y += np.sign((seg[:, 1] * w).sum()) == np.sign(sy); n += 1
        if abs(sx) > 0.5: agree_x += np.sign((seg[:, 3] * w).sum()) == np.sign(sx)
    assert n > 50 and agree_y / n > 0.95

@settings(max_examples=50, deadline=None)
@given(st.floats(-180, 180), st.floats(-90, 90))
def test_foa_plane_wave_properties(az, el):
    s = np.random.default_rng(0).standard_normal(64)
    w, y, z, x = encode_foa(s, az, el)
    np.testing.assert_allclose(x**2 + y**2 + z**2, w**2, atol=1e-9)
    # mid/side stereo: the channel on the source's side is the louder one
    left, right = w + y, w - y
    if math.sin(math.radians(az)) * math.cos(math.radians(el)) > 1e-3: assert (left**2).sum() > (right**2).sum()

def test_moving_source_encoding_follows_path():
    az = np.linspace(-90, 90, 2400)
    w, y, z, x = encode_foa(np.ones(2400), az, 0.0)
    np.testing.assert_allclose(np.degrees(np.arctan2(y, x)), az, atol=1e-9)

def test_levels_are_starss_like(rec30):
    x, _ = sf.read(rec30["paths"]["wav"], dtype="float64")
    assert 0.003 < np.abs(x[:, 0]).max() < 0.02
    quiet = x[np.abs(x[:, 0]) < 1e-3, 0]
    assert 1e-5 < quiet.std() < 1e-3                                         # some background noise, low

# --- file formats ---------------------------------------------------------------------------------------------------

def test_files_and_csv_format(rec30):
    p = rec30["paths"]
    assert p["wav"].as_posix().endswith("foa_dev/dev-train-synth/fold3_room01_mix001.wav")
    info = sf.info(str(p["wav"]))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (24000, 4, "PCM_16", 30 * 24000)
    lines = p["csv"].read_text().splitlines()
    assert lines and all(len(l.split(",")) == 6 for l in lines)
    rows = np.array([[int(v) for v in l.split(",")] for l in lines])                 # no header: every line is ints
    assert rows[:, 0].min() >= 0 and rows[:, 0].max() < 300 and (np.diff(rows[:, 0]) >= 0).all()
    assert set(rows[:, 1]) <= {0, 1, 2, 3, 6, 9, 12}
    assert rows[:, 3].min() >= -180 and rows[:, 3].max() <= 180 and np.abs(rows[:, 4]).max() <= 20
    assert rows[:, 5].min() >= 100 and rows[:, 5].max() <= 240
    import av
    with av.open(str(p["mp4"])) as c:
        v = c.streams.video[0]
        assert (v.codec_context.name, v.width, v.height, v.format.name) == ("h264", 960, 480, "yuv420p")
        assert v.average_rate == Fraction(30000, 1001)
        n = sum(1 for _ in c.decode(v))
    assert n == math.ceil(30 * 30000 / 1001) and n / (30000 / 1001) >= 30.0

# --- the curation keeps some windows and drops others ----------------------------------------------------------------

def test_default_scenes_feed_the_curation():
    kept = total = 0; dropped_mixed = 0
    for i in range(4):
        ss = np.random.SeedSequence(0, spawn_key=(i,))
        events = make_scene(30, np.random.default_rng(ss.spawn(3)[0]))
        lab = scene_labels(events)
        k = label_rule_views(lab, 300); kept += len(k); total += 51 * 36
        dropped_mixed += any(e.cls not in PERSON_CLASSES for e in events) or \
            any(a.stop > b.start for a, b in zip(events, events[1:]))
    assert 0.03 * total < kept < 0.5 * total
    assert dropped_mixed >= 1                      # distractors or overlaps are there to be dropped

def test_speech_instrument_ratio_over_many_scenes():
    c = np.zeros(13)
    for s in range(40):
        for e in make_scene(30, np.random.default_rng(s)): c[e.cls] += e.stop - e.start
    assert 1.3 < (c[0] + c[1]) / c[9] < 3.0

# --- bad arguments --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,msg", [(dict(recordings=0), "positive integer"), (dict(recordings=-2), "positive integer"),
                                    (dict(recordings=1.5), "positive integer"), (dict(seconds=4.9), "too short"),
                                    (dict(seconds=float("nan")), "finite number"), (dict(seconds=7.05), "100 ms"),
                                    (dict(video_size=(960, 481)), "2:1"), (dict(video_size=(100, 50)), "2:1"),
                                    (dict(video_size="big"), "video size"), (dict(sources="files"), "sources"),
                                    (dict(seed=-1), "seed must be a non-negative")])
def test_bad_arguments(tmp_path, kw, msg):
    with pytest.raises(SynthError, match=msg) as e: synth_starss(tmp_path / "x", **kw)
    assert isinstance(e.value, SAVGBenchError) and isinstance(e.value, ValueError)
    assert not (tmp_path / "x").exists()                                          # nothing written

def test_cli_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit): synth_starss_cli([str(tmp_path), "--sources", "files"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SynthError, match="too short"): synth_starss_cli([str(tmp_path), "--seconds", "1"])
    with pytest.raises(SynthError, match="WIDTHxHEIGHT"): synth_starss_cli([str(tmp_path), "--video-size", "960"])
    for bad in (["--recordings", "0"], ["--seed", "-1"]):
        with pytest.raises(SystemExit): synth_starss_cli([str(tmp_path)] + bad)
        assert "must be at least" in capsys.readouterr().err

def test_cli_output_that_is_a_file(tmp_path, capsys):
    from savgbench.cli import main
    (tmp_path / "f").write_text("keep")
    assert main(["synth-starss", str(tmp_path / "f"), "--recordings", "1", "--seconds", "5"]) == 1
    err = capsys.readouterr().err.strip()
    assert "the output folder is a file" in err and len(err.splitlines()) == 1
    with pytest.raises(SynthError, match="lies inside a file"): synth_starss(tmp_path / "f" / "sub", recordings=1, seconds=5)
    assert (tmp_path / "f").read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["f"]

def test_encode_foa_rejects_bad_shapes():
    with pytest.raises(SynthError): encode_foa(np.zeros((2, 10)), 0, 0)
    with pytest.raises(SynthError): encode_foa(np.zeros(10), np.zeros(9), 0)

# --- external sources -------------------------------------------------------------------------------------------------

@pytest.mark.skipif(not have_espeak(), reason="espeak-ng is not installed")
def test_espeak_speech_source():
    x = source_signal(1, 2.0, np.random.default_rng(0), sources="auto")
    assert x.shape == (2 * SYNTH_SR,) and np.abs(x).max() == pytest.approx(1.0)
    assert not np.array_equal(x, source_signal(1, 2.0, np.random.default_rng(0), sources="procedural"))

@pytest.mark.skipif(not have_fluidsynth(), reason="fluidsynth or the TimGM6mb soundfont is not installed")
def test_fluidsynth_instrument_source(tmp_path):
    x = source_signal(9, 2.0, np.random.default_rng(0), sources="auto")
    assert x.shape == (2 * SYNTH_SR,) and np.abs(x).max() == pytest.approx(1.0)
    assert (x[: SYNTH_SR]**2).mean() > 1e-4                                        # it plays
    recs = synth_starss(tmp_path, recordings=1, seconds=5, seed=0, video_size=(256, 128), sources="auto", progress=False)
    assert sf.info(str(recs[0]["paths"]["wav"])).frames == 5 * SYNTH_SR

# --- detectability ----------------------------------------------------------------------------------------------------

def test_hog_finds_synthetic_people(rec30):
    r = hog_detection_rate([rec30], every=1.0, max_checks=80)
    assert r["total"] == 80 and r["rate"] >= 0.8, r

@pytest.mark.slow
def test_hog_rate_on_default_scene_set(tmp_path, request):
    if "slow" not in (request.config.getoption("markexpr") or ""): pytest.skip("minutes of CPU: run with -m slow")
    recs = synth_starss(tmp_path, recordings=4, seconds=30, seed=0, progress=False)
    r = hog_detection_rate(recs, every=1.0)
    assert r["total"] > 300 and r["rate"] >= 0.8, r

# --- the dataset builder's readers and rules agree ----------------------------------------------------------------------

def test_label_count_agrees_with_builder_rules():
    import pandas as pd
    from savgbench.convert import project_labels
    from savgbench.curate import curate_window, DEV_CURATION
    lab = scene_labels(make_scene(30, np.random.default_rng(5)))
    df = pd.DataFrame(lab, columns=["frame", "cls", "source", "azimuth", "elevation", "distance"])
    ref = [(s, d) for s in DEV_CURATION.starts(300) for d in DEV_CURATION.views()
           if curate_window(project_labels(df, d, s), DEV_CURATION) is None]
    assert ref and label_rule_views(lab, 300) == ref

def test_builder_readers_accept_the_files(rec30):
    from savgbench.io import read_foa, read_starss_metadata
    foa, sr = read_foa(rec30["paths"]["wav"])
    assert sr == 24000 and foa.shape == (4, 30 * 24000)
    df = read_starss_metadata(rec30["paths"]["csv"])
    assert len(df) == len(rec30["labels"]) and (df["azimuth"].to_numpy() == rec30["labels"][:, 3]).all()
