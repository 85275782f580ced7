"""The dataset builder on crafted recordings: each curation rule, geometry round trip, resuming, interruption."""
import json
import numpy as np, pandas as pd, pytest

from savgbench.build import build_dataset, find_recordings, build_dataset_cli
from savgbench.curate import CurationConfig
from savgbench.core import DatasetError, MetadataError, SAVGBenchError
from savgbench.io import read_clip, read_clip_metadata, validate_clip
from savgbench.geometry import azimuth_to_pixel

FRONT = CurationConfig(view_step_deg=360)          # one view: u_deg = 0 (looking at azimuth 0)

def talker(frames, az=20, el=0, cls=0, src=1):
    return [(f, cls, src, az, el) for f in frames]

def build(root, out, cfg=FRONT):
    return build_dataset(root, out, cfg=cfg, progress=False, verbose=False)

def test_kept_clip_is_valid_and_consistent(recording_factory, tmp_path):
    root = recording_factory(talker(range(70)))
    rep = build(root, tmp_path/"out")
    assert rep["clips"] == 5 and sum(rep["dropped"].values()) == 0            # starts 0, 5, ..., 20
    for mp4 in (tmp_path/"out/video_dev").glob("*.mp4"):
        validate_clip(mp4)
        lab = read_clip_metadata(tmp_path/"out/metadata_dev"/(mp4.stem + ".csv"))
        assert lab.frame.tolist() == list(range(50)) and (lab.cls == 0).all()
        # the reference labels, worked by hand from the pinhole at (20° - 0.5°, 0° - 0.5°) (spec §3.3):
        # x = 127.5 - 106.985 tan 19.5° = 89.61, y = 71.5 + 106.659 tan 0.5° / cos 19.5° = 72.49, rounded;
        # azi_rot = 20 + 0 (view 0), ele_rot = 0
        assert lab[["x", "y", "azi_rot", "ele_rot"]].drop_duplicates().to_numpy().tolist() == [[90, 72, 20, 0]], lab
        clip = read_clip(mp4)
        assert np.sqrt((clip.audio[0]**2).mean()) > np.sqrt((clip.audio[1]**2).mean())   # source is on the left

@pytest.mark.parametrize("az", [-35, 0, 25, 45])
def test_round_trip_centroid_and_louder_side(recording_factory, tmp_path, az):
    root = recording_factory(talker(range(70), az=az), sources=((az, 0, 0.004),))
    build(root, tmp_path/"out")
    mp4 = sorted((tmp_path/"out/video_dev").glob("*.mp4"))[0]
    clip = read_clip(mp4)
    bright = clip.video[0, 56:200].mean(-1) > 160
    ys, xs = np.nonzero(bright)
    x, y, on = azimuth_to_pixel(az, 0, 0, half_degree_offset=False)
    assert on and abs(xs.mean() - x) < 2 and abs(ys.mean() - y) < 2
    rms = np.sqrt((clip.audio**2).mean(1))
    if az > 0: assert rms[0] > rms[1]
    if az < 0: assert rms[1] > rms[0]

def test_clip_audio_follows_the_recipe_chain(recording_factory, tmp_path):
    """The stereo of a kept clip, written as 16-bit PCM, against the spec's chain done by hand on the clip's own 5 s of
    FOA (spec §2.1, §5.1): rotate by the view, L/R = W ± Y', 2nd-order Butterworth high-pass at 50 Hz, +38 dB, 16 kHz.
    The builder filters the whole recording instead of each slice, which changes only the first milliseconds."""
    import soundfile as sf
    from scipy import signal
    root = recording_factory(talker(range(70), az=-10, el=5), sources=((-10, 5, 0.004),))
    view = 30                                               # the source is seen at -10 + 30 = 20°, left of centre
    build_dataset(root, tmp_path/"out", cfg=CurationConfig(view_step_deg=360, first_view_deg=view), audio_codec="pcm",
                  progress=False, verbose=False)
    foa = sf.read(next(root.glob("foa_dev/*/*.wav")), dtype="float64")[0].T
    sos = signal.butter(2, 50, btype="highpass", fs=24000, output="sos")
    mp4s = sorted((tmp_path/"out/video_dev").glob("*.mp4"))
    assert [p.stem for p in mp4s] == [f"fold3_room01_mix001_deg{view:03d}_start{s:04d}" for s in (0, 5, 10, 15, 20)]
    for mp4 in mp4s:
        s = int(mp4.stem[-4:])
        w, y, z, x = foa[:, s * 2400:(s + 50) * 2400]
        r = np.deg2rad(view)
        y_rot = np.sin(r) * x + np.cos(r) * y
        st = signal.sosfilt(sos, np.stack([w + y_rot, w - y_rot]), axis=-1) * 10 ** (38 / 20)
        want = signal.resample_poly(st, 2, 3, axis=-1)
        got = read_clip(mp4).audio
        assert got.shape == (2, 80000)
        assert np.abs(got[:, 8000:72000] - want[:, 8000:72000]).max() < 1e-4     # 16-bit quantisation: 3e-5
        assert np.sqrt((got[0]**2).mean()) > 2 * np.sqrt((got[1]**2).mean())       # 20° left: the left channel

def test_rule_class(recording_factory, tmp_path):
    rows = talker(range(70)) + [(f, 2, 2, 10, 0) for f in range(60, 62)]           # clapping from 6 s
    rep = build(recording_factory(rows), tmp_path/"out")
    assert rep["dropped"]["class"] == 2 and rep["clips"] == 3                      # windows 15 and 20 include it

def test_rule_offscreen_and_behind_never_kept(recording_factory, tmp_path):
    rows = talker(range(70), az=180)                                               # behind the view
    rep = build(recording_factory(rows, sources=((180, 0, 0.004),)), tmp_path/"out",
                cfg=CurationConfig(view_step_deg=10))
    kept = sorted(p.stem for p in (tmp_path/"out/video_dev").glob("*.mp4"))
    # labelled at azimuth 179.5 (the reference's half-degree offset), seen at 179.5 + u_deg: on screen where that is
    # within 50° of the view's centre, u_deg = 140 ... 230 (130 gives -50.5°, 230 gives 49.5°); 5 windows each
    assert sorted({int(n.split("_deg")[1][:3]) for n in kept}) == list(range(140, 231, 10)), kept
    assert len(kept) == 10 * 5 and rep["clips"] == 50
    assert rep["dropped"]["offscreen"] == (36 - 10) * 5 and sum(rep["dropped"].values()) == rep["dropped"]["offscreen"]
    # the views turned to the back show the source where they put it: u_deg 140 sees it 40° to the right, 220 40° left
    for deg, right in ((140, True), (220, False)):
        clip = read_clip(tmp_path/f"out/video_dev/fold3_room01_mix001_deg{deg:03d}_start0000.mp4")
        xs = np.nonzero(clip.video[0, 56:200].mean(-1) > 160)[1]
        rms = np.sqrt((clip.audio**2).mean(1))
        assert (xs.mean() > 127.5 + 50) == right and (rms[1] > 2 * rms[0]) == right and (rms[0] > 2 * rms[1]) != right

def test_rule_overlap(recording_factory, tmp_path):
    rows = talker(range(70)) + talker(range(7, 8), az=-10, src=2)                 # a second talker in frame 7
    rep = build(recording_factory(rows), tmp_path/"out")
    assert rep["dropped"]["overlap"] == 2 and rep["clips"] == 3                   # windows from 0 and 5 hold frame 7

def test_rule_inactive(recording_factory, tmp_path):
    rows = talker([f for f in range(70) if f % 5 != 0 and f % 7 != 0])              # 40 % silent frames
    rep = build(recording_factory(rows), tmp_path/"out")
    assert rep["clips"] == 0 and rep["dropped"]["inactive"] == 5

def test_rule_exactly_40_active_frames_kept(recording_factory, tmp_path):
    rows = talker(list(range(0, 40)))                                              # window 0: 40 frames, window 5: 35
    rep = build(recording_factory(rows), tmp_path/"out")
    assert rep["clips"] == 1 and rep["dropped"]["inactive"] == 4                    # windows 5, 10, 15, 20: 35 ... 20 frames
    assert sum(rep["dropped"].values()) == 4

def test_rule_clipping(recording_factory, tmp_path):
    rep = build(recording_factory(talker(range(70)), sources=((20, 0, 0.02),)), tmp_path/"out")   # x79 -> > 1
    assert rep["clips"] == 0 and rep["dropped"]["clipping"] == 5

def _build_stopped_after_two_clips(root, out, monkeypatch):
    "Build, interrupted (KeyboardInterrupt) as the third clip is written; the real writer is put back afterwards."
    import savgbench.build as B
    calls, real = {"n": 0}, B.write_clip
    def flaky(path, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3: raise KeyboardInterrupt("simulated interruption")
        return real(path, *a, **k)
    monkeypatch.setattr(B, "write_clip", flaky)
    with pytest.raises(KeyboardInterrupt): build(root, out)
    monkeypatch.setattr(B, "write_clip", real)

def test_resume_and_interrupt(recording_factory, tmp_path, monkeypatch):
    root = recording_factory(talker(range(70)))
    _build_stopped_after_two_clips(root, tmp_path/"out", monkeypatch)
    vids = sorted((tmp_path/"out/video_dev").iterdir())
    assert [p.suffix for p in vids] == [".mp4", ".mp4"]                            # no temporary files left
    for p in vids: validate_clip(p)
    rep = build(root, tmp_path/"out")
    assert rep["clips"] == 5 and rep["clips_already_there"] == 2 and rep["clips_built_now"] == 3
    saved = json.loads((tmp_path/"out/build_report_dev.json").read_text())
    assert saved["clips"] == 5


def test_labels_edited_after_an_interrupted_build_reach_every_clip(recording_factory, tmp_path, monkeypatch):
    """A build stopped after two clips, then the recording's labels corrected (every azimuth +4°): the resumed build
    rebuilds the recording from scratch, so no clip keeps the old labels (the sources are recorded before the first
    clip is written). A copy of the sources (new modification times, same bytes) rebuilds nothing."""
    import shutil
    root = recording_factory(talker(range(70)))
    _build_stopped_after_two_clips(root, tmp_path/"out", monkeypatch)
    csv = root/"metadata_dev/dev-train-synth/fold3_room01_mix001.csv"
    m = pd.read_csv(csv, header=None); m[3] += 4; m.to_csv(csv, header=False, index=False)
    rep = build(root, tmp_path/"out")
    assert rep["rebuilt_changed_sources"] == ["fold3_room01_mix001"] and rep["clips_built_now"] == rep["clips"] == 5
    build(root, tmp_path/"fresh")                                              # every label CSV as a fresh build's
    labels = lambda d: {p.name: p.read_text() for p in (tmp_path/d/"metadata_dev").glob("*.csv")}
    assert len(labels("out")) == 5 and labels("out") == labels("fresh")
    copy = tmp_path/"copy"; shutil.copytree(root, copy, copy_function=shutil.copy)          # new mtimes, same bytes
    rep2 = build(copy, tmp_path/"out")
    assert rep2["rebuilt_changed_sources"] == [] and rep2["clips_already_there"] == 5

def test_missing_parts(tmp_path, recording_factory):
    with pytest.raises(DatasetError, match="foa_dev"): find_recordings(tmp_path)
    root = recording_factory(talker(range(70)))
    (root/"metadata_dev/dev-train-synth/fold3_room01_mix001.csv").unlink()
    rec, = find_recordings(root)                          # found by its FOA wav: what it lacks is said by the build
    assert rec.metadata is None and rec.missing() == ["label CSV"]
    with pytest.raises(DatasetError, match="1 of 1 recordings lack a file .* fold3_room01_mix001 has no label CSV"):
        build(root, tmp_path/"out")
    with pytest.raises(DatasetError, match="no recordings"): find_recordings(root, "eval")

def test_files_not_named_like_recordings_are_named_in_a_warning(recording_factory):
    root = recording_factory(talker(range(70)))
    (root/"foa_dev/dev-train-synth/my_take.wav").write_bytes(b"")
    with pytest.warns(UserWarning, match="my_take.wav"):
        recs = find_recordings(root)
    assert [r.name for r in recs] == ["fold3_room01_mix001"]

def test_recording_without_video_is_reported(recording_factory, tmp_path):
    root = recording_factory(talker(range(70)))
    recording_factory(talker(range(70)), name="fold3_room01_mix002")
    (root/"video_dev/dev-train-synth/fold3_room01_mix001.mp4").unlink()      # as STARSS23's fold3_room21_mix001..012
    rep = build(root, tmp_path/"out")
    assert rep["recordings_without_video"] == ["fold3_room01_mix001"] and rep["clips"] == 5

def test_split_without_any_video_is_an_error(recording_factory, tmp_path):
    root = recording_factory(talker(range(70)))
    (root/"video_dev/dev-train-synth/fold3_room01_mix001.mp4").unlink()
    with pytest.raises(DatasetError, match="none of the 1 dev recordings has its 360° video"): build(root, tmp_path/"out")
    import shutil; shutil.rmtree(root/"video_dev")                           # video_dev.zip not unpacked
    with pytest.raises(DatasetError, match="video_dev/ is missing"): build(root, tmp_path/"out")
    assert not (tmp_path/"out").exists()

def test_one_worker_shows_the_clips_of_the_recording_being_built(recording_factory, tmp_path, capsys):
    root = recording_factory(talker(range(70)))
    build_dataset(root, tmp_path/"out", cfg=FRONT, verbose=False)              # progress on, one worker
    err = capsys.readouterr().err
    # the bar's first draw (always made; later ones depend on timing): the recording's name and its 5 clips
    assert "build dev" in err and "fold3_room01_mix001:   0%" in err and "0/5" in err, err

def test_empty_metadata_is_an_error(recording_factory, tmp_path):
    root = recording_factory(talker(range(70)))
    (root/"metadata_dev/dev-train-synth/fold3_room01_mix001.csv").write_text("")
    with pytest.raises(DatasetError, match="fold3_room01_mix001.csv: STARSS23 metadata file is empty"):
        build(root, tmp_path/"out")

def test_cli_parallel_matches_serial(recording_factory, tmp_path):
    root = recording_factory(talker(range(70)))
    from savgbench.io import write_foa
    import shutil
    for kind, ext in (("foa", "wav"), ("metadata", "csv"), ("video", "mp4")):      # a second recording
        shutil.copy(root/f"{kind}_dev/dev-train-synth/fold3_room01_mix001.{ext}", root/f"{kind}_dev/dev-train-synth/fold3_room01_mix002.{ext}")
    assert build_dataset_cli([str(root), str(tmp_path/"a"), "--view-step", "360", "--workers", "2"]) == 0
    build(root, tmp_path/"b")
    a = sorted(p.name for p in (tmp_path/"a/video_dev").glob("*.mp4"))
    assert a == sorted(p.name for p in (tmp_path/"b/video_dev").glob("*.mp4")) and len(a) == 10
    for n in a: assert (tmp_path/"a/video_dev"/n).read_bytes() == (tmp_path/"b/video_dev"/n).read_bytes()

@pytest.mark.parametrize("bad, why", [(["--workers", "-1"], "must be at least 1"), (["--workers", "0"], "must be at least 1"),
                                      (["--start-step", "0"], "must be at least 1"),
                                      (["--view-step", "-5"], "must be 1 to 360, not -5"),
                                      (["--view-step", "361"], "must be 1 to 360, not 361")])
def test_cli_refuses_bad_counts(tmp_path, capsys, bad, why):
    with pytest.raises(SystemExit) as e: build_dataset_cli([str(tmp_path / "starss"), str(tmp_path / "out")] + bad)
    assert e.value.code == 2 and f"argument {bad[0]}: {why}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

def test_output_that_is_a_file(recording_factory, tmp_path):
    root = recording_factory(talker(range(70)))
    (tmp_path / "f").write_text("")
    with pytest.raises(DatasetError, match="output folder is a file"): build(root, tmp_path / "f")
    with pytest.raises(DatasetError, match="lies inside a file"): build(root, tmp_path / "f" / "out")
    with pytest.raises(SAVGBenchError, match="workers"): build_dataset(root, tmp_path / "out", workers=-1, progress=False)


def test_one_unreadable_recording_stops_the_build_unless_skipped(recording_factory, tmp_path, capsys):
    root = recording_factory(talker(range(70)))
    recording_factory(talker(range(70)), name="fold3_room01_mix002")
    (root/"video_dev/dev-train-synth/fold3_room01_mix002.mp4").write_bytes(b"\0" * 1000)     # a damaged video
    with pytest.raises(SAVGBenchError, match="fold3_room01_mix002.mp4"):
        build(root, tmp_path/"a")
    rep = build_dataset(root, tmp_path/"b", cfg=FRONT, progress=False, verbose=False, skip_errors=True)
    assert list(rep["failed_recordings"]) == ["fold3_room01_mix002"] and rep["recordings"] == 1 and rep["clips"] > 0
    capsys.readouterr()
    part = tmp_path/"c"/"video_dev"/"fold3_room01_mix002_deg000_start0000.mp4"     # as if written before it failed
    part.parent.mkdir(parents=True); part.write_bytes(b"\0")
    assert build_dataset_cli([str(root), str(tmp_path/"c"), "--skip-errors", "--view-step", "360"]) == 3   # partial: not 0
    assert not part.exists() and list((tmp_path/"c"/"video_dev").glob("fold3_room01_mix001_*.mp4"))
    assert "1 of 2 recordings failed" in capsys.readouterr().err
    (root/"video_dev/dev-train-synth/fold3_room01_mix002.mp4").unlink()
    recording_factory(talker(range(70)), name="fold3_room01_mix002")                          # repaired: a clean exit
    assert build_dataset_cli([str(root), str(tmp_path/"d"), "--skip-errors", "--view-step", "360"]) == 0
    assert json.loads((tmp_path/"c"/"build_report_dev.json").read_text())["failed_recordings"]

def test_recording_with_only_its_video_is_refused_by_name(recording_factory, tmp_path):
    """video_dev/ unpacked with a subset that foa_dev/ and metadata_dev/ lack (a partly unpacked download): the
    recordings of that subset are named, not left out of the dataset unsaid."""
    import shutil
    root = recording_factory(talker(range(70)))
    tau = root/"video_dev/dev-train-tau"; tau.mkdir()
    shutil.copy(root/"video_dev/dev-train-synth/fold3_room01_mix001.mp4", tau/"fold3_room4_mix001.mp4")
    recs = {r.name: r for r in find_recordings(root)}
    assert recs["fold3_room4_mix001"].missing() == ["FOA wav", "label CSV"] and recs["fold3_room01_mix001"].missing() == []
    with pytest.raises(DatasetError, match="1 of 2 recordings .* fold3_room4_mix001 has no FOA wav and no label CSV"):
        build(root, tmp_path/"out")
    assert not (tmp_path/"out").exists()

def test_a_full_disk_stops_the_build_even_with_skip_errors(recording_factory, tmp_path, monkeypatch):
    """No space left as the third clip is written: the build stops with a DatasetError that says so, and keeps the two
    clips it made (with skip_errors it used to fail every recording in turn and delete their clips)."""
    import errno
    import savgbench.build as B
    root = recording_factory(talker(range(70)))
    recording_factory(talker(range(70)), name="fold3_room01_mix002")
    calls, real = {"n": 0}, B.write_clip
    def full(path, *a, **k):
        calls["n"] += 1
        if calls["n"] >= 3: raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *a, **k)
    monkeypatch.setattr(B, "write_clip", full)
    with pytest.raises(DatasetError, match="no space left to write the dataset .* resumes"):
        build_dataset(root, tmp_path/"out", cfg=FRONT, progress=False, verbose=False, skip_errors=True)
    assert len(list((tmp_path/"out/video_dev").glob("fold3_room01_mix001_*.mp4"))) == 2

def test_bad_label_csvs_are_all_named_before_any_clip_is_written(recording_factory, tmp_path, monkeypatch):
    """Label CSVs that the reader refuses are found before any recording is built, all in one DatasetError naming each
    file and what is wrong (the first five, then '...'); with skip_errors they are failed without their media being read
    and the others are built. A recording without video is not built, so its labels are not checked."""
    import savgbench.build as B
    root = recording_factory(talker(range(70)))                                   # mix001: good, built first
    sub = root/"metadata_dev/dev-train-synth"
    def bad(name, text, video=True):                                               # media never read: empty files do
        for kind, ext in (("foa", "wav"), ("video", "mp4"))[:1 + video]: (root/f"{kind}_dev/dev-train-synth/{name}.{ext}").write_bytes(b"")
        (sub/f"{name}.csv").write_text(text)
    bad("fold3_room01_mix002", "0,1,2\n")                                          # three columns
    bad("fold3_room01_mix003", "0,0,1,20,0\n5,talker,1,20,0\n")                   # a word
    bad("fold3_room01_mix004", "0,0,1,20,0\n", video=False)                       # no video: not built, not checked
    (sub/"fold3_room01_mix004.csv").write_text("garbage\n")
    read, real_read_foa = [], B.read_foa
    monkeypatch.setattr(B, "read_foa", lambda p, *a, **k: read.append(p.name) or real_read_foa(p, *a, **k))
    with pytest.raises(DatasetError) as e: build(root, tmp_path/"out")
    msg = str(e.value)
    assert "2 of 4 recordings have a label CSV that cannot be used" in msg, msg
    assert "fold3_room01_mix002.csv: wrong number of columns" in msg and "found 3" in msg, msg
    assert "fold3_room01_mix003.csv: non-numeric values in column 'cls'" in msg, msg
    assert "mix004" not in msg and "..." not in msg and "--skip-errors" in msg, msg
    assert read == [] and not (tmp_path/"out").exists()                           # before any work
    rep = build_dataset(root, tmp_path/"out", cfg=FRONT, progress=False, verbose=False, skip_errors=True)
    assert sorted(rep["failed_recordings"]) == ["fold3_room01_mix002", "fold3_room01_mix003"], rep["failed_recordings"]
    assert "wrong number of columns" in rep["failed_recordings"]["fold3_room01_mix002"]
    assert rep["clips"] == 5 and rep["recordings_without_video"] == ["fold3_room01_mix004"]
    assert read == ["fold3_room01_mix001.wav"]                                     # the bad ones' media: not read
    for i in range(5, 9): bad(f"fold3_room01_mix{i:03d}", "")                     # six bad ones: five named, then ...
    with pytest.raises(DatasetError) as e: build(root, tmp_path/"out2")
    msg = str(e.value)
    assert "6 of 8 recordings" in msg and "fold3_room01_mix007.csv: STARSS23 metadata file is empty" in msg, msg
    assert "mix008" not in msg and "; ..." in msg, msg
