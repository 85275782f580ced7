"""SELD scoring (seld.evaluate) and person detection (detect): edges the other tests leave open. Expected values are
counted by hand from the DCASE 2022 rules in the reference's validator (1 s blocks of 10 label frames, tracks paired
per frame, 40 px threshold) and the file formats of DESIGN.md / spec §3."""
import json, os
from argparse import Namespace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from savgbench.core import SAVGBenchError, MetadataError, DatasetError, ClipFormatError
from savgbench.seld.evaluate import (SELDCounts, evaluate_seld, evaluate_seld_dir, format_scores, eval_seld_cli,
                                     read_seld_rows)


def _speech(frames, x=100.0, cls=0):
    return pd.DataFrame({"frame": list(frames), "cls": cls, "x": x}).astype({"frame": int, "cls": int, "x": float})

# --- the metric ---------------------------------------------------------------------------------------------------

def test_rows_before_frame_zero_are_left_out_and_counted():
    "A predicted row at frame -1 is outside the scored frames: not scored (not in the last block), counted as ignored."
    ref = _speech(range(50))                                         # 5 blocks, one speech track each
    pred = pd.concat([ref, _speech([-1], x=200.0), _speech([-3], x=10.0, cls=1)])
    s = SELDCounts().update(pred, ref, 49).scores(); pc = s["per_class"]
    assert pc.TP.tolist() == [5, 0] and pc.FP.tolist() == [0, 0] and pc.FP_spatial.tolist() == [0, 0]
    assert s["ER"] == 0 and s["ignored_predictions"] == {"other_class": 0, "outside_scored_frames": 2}

def test_classes_past_the_last_are_counted_as_ignored():
    "With 2 classes, predicted classes 2 and -1 are not scored, and both are counted among the other classes."
    ref = _speech(range(10))
    pred = pd.concat([ref, _speech([3], cls=2), _speech([4], cls=-1)])
    s = SELDCounts().update(pred, ref, 9).scores()
    assert s["ignored_predictions"] == {"other_class": 2, "outside_scored_frames": 0}
    assert s["per_class"].TP.tolist() == [1, 0] and s["ER"] == 0

def test_a_zero_pixel_threshold_is_allowed_and_exact():
    "Threshold 0 (non-negative): an exact position is a TP, 1 px off a spatial FP; a negative one or inf is refused."
    ref = _speech(range(10))
    pc = SELDCounts(doa_threshold=0).update(ref, ref, 9).scores()["per_class"]
    assert pc.TP[0] == 1 and pc.FP_spatial[0] == 0
    pc = SELDCounts(doa_threshold=0.0).update(ref.assign(x=101.0), ref, 9).scores()["per_class"]
    assert pc.TP[0] == 0 and pc.FP_spatial[0] == 1 and pc.LE[0] == pytest.approx(1.0)
    for bad in (-0.5, float("inf"), float("nan")):
        with pytest.raises(SAVGBenchError, match="non-negative"): SELDCounts(doa_threshold=bad)

# --- evaluate_seld: clips, classes, threshold ----------------------------------------------------------------------

def test_a_reference_without_events_counts_five_blocks():
    "An empty label file scores the clip's 50 frames (5 blocks): one predicted speech track per second is 5 FPs."
    empty = pd.DataFrame({"frame": pd.Series([], dtype=int), "cls": pd.Series([], dtype=int), "x": pd.Series([], dtype=float)})
    s = evaluate_seld({"a": _speech(range(50))}, {"a": empty})
    pc = s["per_class"]
    assert pc.FP.tolist() == [5, 0] and pc.N_ref.tolist() == [0, 0] and pc.TP.tolist() == [0, 0]
    assert s["ignored_predictions"]["outside_scored_frames"] == 0

def test_clip_counts_missing_predictions_and_refused_inputs():
    ref = _speech(range(50))
    s = evaluate_seld({"b": ref}, {"a": ref, "b": ref, "c": ref})
    assert s["n_clips"] == 1 and s["missing"] == ["a", "c"]
    with pytest.raises(MetadataError, match="predictions without a reference file") as e:
        evaluate_seld({"a": ref, "z": ref}, {"a": ref})
    assert "z" in str(e.value)
    with pytest.raises(MetadataError, match="reference class without a SELD class") as e:   # STARSS class 4: no SELD class
        evaluate_seld({"a": ref}, {"a": ref.assign(cls=4)})
    assert "4" in str(e.value)

def test_the_threshold_reaches_the_scores_of_clips_and_folders(tmp_path):
    "A track 30 px off: a TP at 40 px, a spatial FP at 20 px, through evaluate_seld, evaluate_seld_dir and eval-seld."
    ref = _speech(range(50), x=100.0)
    pred = ref.assign(x=130.0)
    assert evaluate_seld({"a": pred}, {"a": ref})["per_class"].TP[0] == 5
    pc = evaluate_seld({"a": pred}, {"a": ref}, doa_threshold=20)["per_class"]
    assert pc.TP[0] == 0 and pc.FP_spatial[0] == 5
    (tmp_path / "pred").mkdir(); (tmp_path / "metadata_dev").mkdir()
    pred.to_csv(tmp_path / "pred" / "a.csv", header=False, index=False)
    ref.assign(y=70.0).to_csv(tmp_path / "metadata_dev" / "a.csv", header=False, index=False)
    s = evaluate_seld_dir(tmp_path / "pred", tmp_path / "metadata_dev", doa_threshold=20)
    assert s["per_class"].TP[0] == 0 and s["per_class"].FP_spatial[0] == 5
    assert s["doa_threshold"] == 20.0 and isinstance(s["doa_threshold"], float)
    # the command line: default 40 px (all 5 TPs), --doa-threshold 20 (none), 0 accepted (exact positions only)
    for args, tp in (([], 5), (["--doa-threshold", "20"], 0), (["--doa-threshold", "0"], 0)):
        out = tmp_path / f"s{len(args)}{tp}.json"
        assert eval_seld_cli([str(tmp_path / "pred"), str(tmp_path / "metadata_dev"), "--json", str(out), *args]) == 0
        d = json.loads(out.read_text())
        assert d["per_class"][0]["TP"] == tp and d["doa_threshold"] == (float(args[1]) if args else 40.0)

# --- the printed scores -------------------------------------------------------------------------------------------

def test_printed_scores_columns_decimals_and_notes():
    """Speech at x = 100 for 5 s, predicted there, plus one extra speech track at x = 200 in the first second:
    TP 5, FP 1 (1 insertion), so ER 0.2, F 5/5.5, P 5/6, R 1; no instrument anywhere (F 0, LE 256, LR 0)."""
    ref = _speech(range(50))
    pred = pd.concat([ref, _speech(range(10), x=200.0)])
    lines = format_scores(SELDCounts().update(pred, ref, 49).scores()).splitlines()
    assert lines[1] == "All\tER\tF\tLE\tLR\tSELD\tER_D\tER_I\tER_S\tP\tR\tLF\tLP"
    # SELD: speech (0.2 + 1/11 + 0 + 0) / 4, instrument (0.2 + 1 + 1 + 1) / 4; LE: (0 + 256) / 2, with two decimals
    assert lines[2] == "All\t0.200\t0.455\t128.00\t0.500\t0.436\t0.000\t0.200\t0.000\t0.417\t0.500\t0.455\t0.417"
    assert lines[4] == "Class\tER\tF\tLE\tLR\tSELD\tP\tR\tLF\tLP"
    assert lines[5] == "speech\t0.20\t0.91\t0.00\t1.00\t0.07\t0.83\t1.00\t0.91\t0.83"
    assert lines[6] == "instrument\t0.20\t0.00\t256.00\t0.00\t0.80\t0.00\t0.00\t0.00\t0.00"
    assert lines[7].startswith("Note: class instrument has no reference events (no predicted events either)")
    assert len(lines) == 8                                    # nothing ignored, no note about it

def test_notes_name_only_classes_without_reference_and_any_ignored_rows():
    """Speech labelled in the first second, predicted 100 px off (TP 0 but referenced: no note); instrument predicted
    with 2 tracks but never labelled (noted with its 2 tracks); one row of class 5 ignored, none past the end."""
    ref = _speech(range(10))
    pred = pd.concat([ref.assign(x=200.0), _speech(np.repeat(range(10), 2), x=50.0, cls=1), _speech([0], cls=5)])
    s = SELDCounts().update(pred, ref, 9).scores()
    notes = [l for l in format_scores(s).splitlines() if l.startswith("Note")]
    assert len(notes) == 2, notes
    assert notes[0].startswith("Note: class instrument has no reference events (2 predicted tracks)")
    assert notes[1] == ("Note: not scored, as in the reference: 1 predicted row(s) of a class other than 0..1 and 0 at "
                        "frames past each clip's last labelled second")

# --- folders and the command line ---------------------------------------------------------------------------------

def _folders(tmp_path, names=("a",), labels=("a", "b")):
    "A prediction folder with perfect speech rows for `names`, a metadata_dev folder with labels for `labels`."
    (tmp_path / "pred").mkdir(); (tmp_path / "metadata_dev").mkdir()
    ref = _speech(range(50))
    for n in names: ref.to_csv(tmp_path / "pred" / f"{n}.csv", header=False, index=False)
    for n in labels: ref.assign(y=70.0).to_csv(tmp_path / "metadata_dev" / f"{n}.csv", header=False, index=False)
    return tmp_path / "pred", tmp_path / "metadata_dev"

def test_eval_seld_prints_the_left_out_clips_and_the_recorded_model(tmp_path, capsys):
    pred, meta = _folders(tmp_path, labels=("a", "b", "c"))
    assert eval_seld_cli([str(pred), str(meta)]) == 0
    out = capsys.readouterr().out
    assert "(2 reference clips have no prediction file and were left out)" in out
    assert "rows made by: not recorded (no savgbench_rows.json)" in out
    (pred / "savgbench_rows.json").write_text(json.dumps({"what": "SELD", "source": {"seld_checkpoint": "m.pt", "sha256": "ab12"}}))
    (meta / "b.csv").unlink(); (meta / "c.csv").unlink()
    assert eval_seld_cli([str(pred), str(meta)]) == 0
    out = capsys.readouterr().out
    assert "rows made by: seld_checkpoint m.pt, sha256 ab12\n" in out and "left out" not in out

def test_folders_that_are_files_or_both_label_folders(tmp_path):
    pred, meta = _folders(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(DatasetError, match="the prediction folder is a file"): evaluate_seld_dir(tmp_path / "file", meta)
    with pytest.raises(DatasetError, match="the metadata folder is a file"): evaluate_seld_dir(pred, tmp_path / "file")
    # a rows folder named metadata_* is refused only when the labels are not in one: both so named is no swap
    rows = tmp_path / "metadata_rows"; pred.rename(rows)
    assert evaluate_seld_dir(rows, meta)["per_class"].TP[0] == 5

def test_json_that_names_a_label_in_a_subfolder_or_through_a_link_is_refused(tmp_path, capsys):
    pred, meta = _folders(tmp_path, labels=())
    (meta / "x").mkdir(); _speech(range(50)).assign(y=70.0).to_csv(meta / "x" / "a.csv", header=False, index=False)
    kept = (meta / "x" / "a.csv").read_bytes()
    (tmp_path / "scores.out").symlink_to(meta / "x" / "a.csv")          # a link without .csv to a label CSV
    (tmp_path / "rows.out").symlink_to(pred / "a.csv")                  # and one to a prediction CSV
    for bad, what in ((meta / "x" / "a.csv", "a label CSV under"), (tmp_path / "scores.out", "a label CSV under"),
                      (tmp_path / "rows.out", "a file of the predictions' folder")):
        with pytest.raises(SystemExit) as e: eval_seld_cli([str(pred), str(meta), "--json", str(bad)])
        assert e.value.code == 2 and what in capsys.readouterr().err
    assert (meta / "x" / "a.csv").read_bytes() == kept and (pred / "a.csv").stat().st_size > 0

# --- held-out scores (the model replaced by a stand-in that sees what it is given) --------------------------------

def test_synthetic_heldout_scores_feed_the_seeded_scenes_and_score_them(monkeypatch):
    from savgbench.seld.train import synthetic_scene
    rng = np.random.default_rng(77)
    scenes = [synthetic_scene(rng, 5.0) for _ in range(3)]            # the scenes of seed 77, drawn in turn
    seen = []
    def fake(audios, model, batch_size=40):
        seen.append((len(audios), model, batch_size))
        for a, (want, _) in zip(audios, scenes): np.testing.assert_array_equal(a, want)
        return [r.assign(cls=r.cls.map({0: 0, 1: 0, 9: 1}))[["frame", "cls", "x"]] for _, r in scenes]   # perfect rows
    monkeypatch.setattr("savgbench.seld.infer.predict_seld", fake)
    from savgbench.seld.evaluate import synthetic_heldout_scores
    s = synthetic_heldout_scores("model", n_clips=3, seed=77, batch_size=5)
    assert seen == [(3, "model", 5)] and s["n_clips"] == 3 and s["ER"] == 0
    pc = s["per_class"]
    assert pc.N_ref.sum() > 0 and (pc.FN == 0).all() and (pc.FP == 0).all() and pc.TP.sum() == pc.N_ref.sum()

def test_scene_heldout_scores_feed_every_kept_window_on_the_16_bit_grid(monkeypatch):
    from savgbench.seld.train import scene_windows, scene_stereo
    kept = [scene_windows(1, i, 8.0)[1] for i in range(2)]
    n_kept = sum(map(len, kept))
    assert n_kept > 0
    seen = []
    def fake(audios, model, batch_size=40):
        seen.append((audios, model, batch_size))
        return [_speech([])] * len(audios)                              # nothing found
    monkeypatch.setattr("savgbench.seld.infer.predict_seld", fake)
    from savgbench.seld.evaluate import scene_heldout_scores
    s = scene_heldout_scores("m", recordings=2, seconds=8.0, seed=1, batch_size=3)
    (audios, model, bs), = seen
    assert (model, bs, len(audios), s["n_clips"]) == ("m", 3, n_kept, n_kept)
    assert all(a.shape == (2, 80000) for a in audios)                    # 5 s at 16 kHz
    assert all(np.array_equal(a * 32768, np.round(a * 32768)) for a in audios)
    hp = scene_windows(1, 0, 8.0)[0]                                      # clip k of recording 0: its 5 s of the view
    for k in (0, len(kept[0]) - 1):
        start, deg, rows = kept[0][k]
        whole = scene_stereo(hp, deg, 0, hp.shape[1], int16=True)
        np.testing.assert_array_equal(audios[k], whole[:, start * 1600:start * 1600 + 80000])
    assert s["per_class"].TP.sum() == 0 and s["per_class"].N_ref.sum() > 0


# ===================================================================================================================
# detect: CSV rows, frames, HOG and oracle boxes, the detector over clips, list files, the command
import savgbench.detect as D
from savgbench.detect import (read_csv_rows, read_detection_rows, read_frames_bgr, hog_person_boxes, HOGConfig,
                              oracle_person_boxes, PersonDetector, make_detector, detector_source, list_videos,
                              clips_to_score, detect_clips, detect_cli)


def test_empty_csvs_have_the_asked_number_of_columns(tmp_path):
    (tmp_path / "e.csv").write_text(""); (tmp_path / "nl.csv").write_text("\n\n")      # 0 bytes; blank lines only
    for name in ("e.csv", "nl.csv"):
        assert read_detection_rows(tmp_path / name).shape == (0, 6)
        assert read_csv_rows(tmp_path / name, (4, 5, 6)).shape == (0, 4)
        assert read_seld_rows(tmp_path / name).shape == (0, 3)

def test_csv_with_too_many_columns_or_an_infinite_value_is_refused(tmp_path):
    (tmp_path / "seven.csv").write_text("0,0,1,2,3,4,5\n")
    with pytest.raises(MetadataError, match="wrong number of columns"): read_detection_rows(tmp_path / "seven.csv")
    (tmp_path / "inf.csv").write_text("0,0,1,2,3,4\n1,0,inf,2,3,4\n")
    with pytest.raises(MetadataError, match="non-finite value on line 2"): read_detection_rows(tmp_path / "inf.csv")
    (tmp_path / "nan.csv").write_text("0,0,1.5\n1,0,2\n2,1,\n")
    with pytest.raises(MetadataError, match="non-finite value on line 3"): read_csv_rows(tmp_path / "nan.csv", 3)

def _clip(path, n=20, fps=4, h=256, w=256):
    from savgbench.io import write_clip
    v = np.zeros((n, h, w, 3), np.uint8); v[..., 0] = 200          # RGB red
    return write_clip(path, v, np.zeros((2, 16000 * n // fps), np.float32), fps=fps)

def test_frames_are_bgr_and_the_clip_format_is_checked(tmp_path):
    f = read_frames_bgr(_clip(tmp_path / "ok.mp4"))
    assert f.shape == (20, 256, 256, 3) and f.dtype == np.uint8
    assert abs(int(f[:, 128, 128, 2].mean()) - 200) < 8 and f[:, 128, 128, 0].max() < 10     # red is the last channel
    for kw, what in ((dict(fps=5, n=25), "wrong frame rate"), (dict(n=21), "wrong number of frames"),
                     (dict(n=19), "wrong number of frames"), (dict(w=128), "wrong frame size (width x height)")):
        with pytest.raises(ClipFormatError, match=what.replace("(", r"\(").replace(")", r"\)")):
            read_frames_bgr(_clip(tmp_path / f"bad{len(kw)}{kw.get('n', 0)}{kw.get('w', 0)}.mp4", **kw))

class _FakeHOG:
    "Stands in for cv2.HOGDescriptor: records what it is asked, answers two windows (one of weight 0.4)."
    calls = []
    def setSVMDetector(self, d): pass
    def detectMultiScale(self, img, hitThreshold, winStride, padding, scale):
        _FakeHOG.calls.append(dict(shape=img.shape, hit=hitThreshold, stride=winStride, padding=padding, scale=scale))
        return np.array([[15, 30, 60, 120], [3, 3, 64, 128]]), np.array([[0.9], [0.4]])

def test_hog_settings_reach_opencv_and_boxes_come_back_in_frame_pixels(monkeypatch):
    assert HOGConfig() == HOGConfig(upscale=1.5, win_stride=8, padding=8, scale=1.05, hit_threshold=0.0, min_weight=0.5)
    monkeypatch.setattr(D.cv2, "HOGDescriptor", _FakeHOG); _FakeHOG.calls.clear()
    frames = np.zeros((2, 256, 256, 3), np.uint8)
    b = hog_person_boxes(frames)                                       # 1.5x upscale: windows divided by 1.5
    assert len(b) == 2 and _FakeHOG.calls[0] == dict(shape=(384, 384, 3), hit=0.0, stride=(8, 8), padding=(8, 8), scale=1.05)
    np.testing.assert_allclose(b[0], [[10, 20, 50, 100, 0.9]], rtol=1e-6)   # x0, y0, x0 + w, y0 + h; weight 0.4 dropped
    _FakeHOG.calls.clear()
    b = hog_person_boxes(frames[:1], HOGConfig(upscale=1, win_stride=4, padding=16, scale=1.1, hit_threshold=0.3, min_weight=0.3))
    assert _FakeHOG.calls == [dict(shape=(256, 256, 3), hit=0.3, stride=(4, 4), padding=(16, 16), scale=1.1)]
    np.testing.assert_allclose(b[0], [[15, 30, 75, 150, 0.9], [3, 3, 67, 131, 0.4]], rtol=1e-6)

def test_oracle_boxes_without_labels_and_clipped_at_the_picture_bottom(tmp_path):
    assert [b.shape for b in oracle_person_boxes(np.zeros((0, 4)))] == [(0, 5)] * 20
    assert [b.shape for b in oracle_person_boxes([])] == [(0, 5)] * 20
    b = oracle_person_boxes(np.array([[0, 0, 5.0, 140.0]]))[0]        # y 140 + 56 = 196: rows 156..200 (picture's end)
    np.testing.assert_allclose(b, [[0, 156, 21, 200, 1]])
    # label CSVs of 5 or 6 columns (with the rotated azimuth/elevation) are read by the oracle detector too
    (tmp_path / "video_x").mkdir(); (tmp_path / "metadata_x").mkdir()
    (tmp_path / "metadata_x" / "a.csv").write_text("0,0,100,70,10,0\n")
    (tmp_path / "metadata_x" / "b.csv").write_text("0,0,100,70,10\n")
    for n in "ab":
        np.testing.assert_allclose(make_detector("oracle").boxes(tmp_path / "video_x" / f"{n}.mp4")[0], [[84, 86, 116, 166, 1]])

def _frames(c):
    "Clip c's 20 BGR frames: blue 255, red 10c + frame index."
    f = np.zeros((20, 4, 4, 3), np.uint8); f[..., 0] = 255; f[..., 2] = 10 * c + np.arange(20)[:, None, None]
    return f

def test_yolox_detector_gets_rgb_frames_and_gives_each_clip_its_own_boxes(monkeypatch):
    import savgbench.detect.yolox as Y
    calls = []
    def fake(model, frames, batch_size):
        calls.append((model, len(frames), batch_size))
        return [np.array([[f[0, 0, 0], 0, 1, 1, 0.9]], np.float32) for f in frames]   # x0 = the first channel
    monkeypatch.setattr(Y, "detect_persons", fake)
    monkeypatch.setattr(D, "read_frames_bgr", lambda p: _frames(int(Path(p).stem[1:])))
    det = PersonDetector.__new__(PersonDetector)                        # no weights needed: the network is faked
    det.name, det.model, det.batch_size, det.metadata_dir, det.hog, det.weights = "yolox-tiny", "net", 40, None, HOGConfig(), None
    out = det([f"c{c}.mp4" for c in range(3)], progress=False)
    assert calls == [("net", 40, 40), ("net", 20, 40)]                  # two clips per batch of 40 frames
    assert list(out) == ["c0", "c1", "c2"]
    for c in range(3):
        np.testing.assert_array_equal(out[f"c{c}"][:, [0, 2]], np.column_stack([np.arange(20), 10 * c + np.arange(20)]))
    calls.clear()
    b = det.boxes("c4.mp4", frames_bgr=_frames(4))
    assert calls == [("net", 20, 40)] and [float(x[0, 0]) for x in b] == list(40.0 + np.arange(20))

def test_hog_detector_reads_bgr_frames_with_its_own_settings(monkeypatch):
    seen = []
    monkeypatch.setattr(D, "read_frames_bgr", lambda p: _frames(1))
    monkeypatch.setattr(D, "hog_person_boxes", lambda f, cfg=HOGConfig(): seen.append((f, cfg)) or [np.zeros((0, 5))] * len(f))
    cfg = HOGConfig(min_weight=2.0)
    assert make_detector("hog", hog=cfg)(["c1.mp4"], progress=False)["c1"].shape == (0, 6)
    (f, got), = seen
    assert got == cfg and np.array_equal(f, _frames(1))

def test_detector_source_records_the_label_folder_resolved(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = detector_source(make_detector("oracle", metadata_dir="meta"))
    assert src == {"detector": "oracle", "metadata_dir": str(tmp_path.resolve() / "meta")}

def test_list_file_paths_resolve_from_its_folder_first_and_are_stripped(tmp_path, monkeypatch):
    (tmp_path / "lists" / "c").mkdir(parents=True); (tmp_path / "cwd" / "c").mkdir(parents=True)
    (tmp_path / "lists" / "c" / "a.mp4").touch(); (tmp_path / "cwd" / "c" / "a.mp4").touch()
    (tmp_path / "lists" / "l.txt").write_text("c/a.mp4  \n gone/b.mp4\t\n")
    monkeypatch.chdir(tmp_path / "cwd")
    # both folders hold c/a.mp4: the list's folder wins; gone/b.mp4 exists nowhere: named from the list's folder
    assert list_videos(tmp_path / "lists" / "l.txt") == [tmp_path / "lists" / "c" / "a.mp4", tmp_path / "lists" / "gone" / "b.mp4"]

def test_clips_to_score_leaves_out_bad_clips_only_when_asked(tmp_path, capsys):
    good, bad = _clip(tmp_path / "good.mp4"), tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    assert clips_to_score([str(bad)], Namespace(any_format=True, skip_bad=False), "p") == ([bad], {})
    ok, left = clips_to_score([good, bad], Namespace(any_format=False, skip_bad=True), "savgbench x")
    assert ok == [good] and list(left) == [str(bad)]
    err = capsys.readouterr().err
    assert err.startswith(f"savgbench x: left out: ") and "bad.mp4" in err
    with pytest.raises(ClipFormatError, match="none of the clips is in the SAVGBench format"):
        clips_to_score([bad], Namespace(any_format=False, skip_bad=True), "p")
    with pytest.raises(SAVGBenchError): clips_to_score([good, bad], Namespace(any_format=False, skip_bad=False), "p")

def _oracle_set(tmp_path, labels):
    (tmp_path / "video_x").mkdir(); (tmp_path / "metadata_x").mkdir()
    for n, text in labels.items():
        (tmp_path / "video_x" / f"{n}.mp4").write_bytes(n.encode()); (tmp_path / "metadata_x" / f"{n}.csv").write_text(text)
    return tmp_path / "video_x"

def test_detect_clips_writes_every_clip_in_chunks(tmp_path):
    v = _oracle_set(tmp_path, {n: "0,0,100,70\n" for n in "abc"})
    res = detect_clips(sorted(v.glob("*.mp4")), make_detector("oracle"), out_dir=tmp_path / "det", progress=False, chunk=2)
    assert sorted(res) == ["a", "b", "c"] and sorted(p.name for p in (tmp_path / "det").glob("*.csv")) == ["a.csv", "b.csv", "c.csv"]
    assert all(read_detection_rows(tmp_path / "det" / f"{n}.csv").shape == (1, 6) for n in "abc")

def test_detect_cli_counts_boxes_remakes_changed_clips_and_keeps_a_given_folder(tmp_path, capsys):
    # a: two labelled sources at frame 10 (video frame 4), b: one; every box a person box
    v = _oracle_set(tmp_path, {"a": "10,0,30,70\n10,1,90,70\n", "b": "10,0,30,70\n"})
    out = tmp_path / "det"
    assert detect_cli([str(v), "--any-format", "--out", str(out), "--detector", "oracle"]) == 0
    assert f"oracle: 3 person boxes in 2 clips -> {out}" in capsys.readouterr().out
    # clip a replaced by another clip of the same name (other bytes, other labels): its boxes are made again
    (v / "a.mp4").write_bytes(b"another a"); (tmp_path / "metadata_x" / "a.csv").write_text("20,0,200,70\n")
    assert detect_cli([str(v), "--any-format", "--out", str(out), "--detector", "oracle"]) == 0
    assert "1 person boxes in 1 clips" in capsys.readouterr().out
    assert read_detection_rows(out / "a.csv")[:, [0, 2]].tolist() == [[8, 184.0]]
    # CSVs of unknown origin are made again and the folder then records this detector
    (tmp_path / "foreign").mkdir(); (tmp_path / "foreign" / "a.csv").write_text("0,0,1,2,3,4\n")
    assert detect_cli([str(v), "--any-format", "--out", str(tmp_path / "foreign"), "--detector", "oracle"]) == 0
    assert json.loads((tmp_path / "foreign" / "savgbench_rows.json").read_text())["source"] == {"detector": "oracle"}
    # a run that fails before any box removes a folder it made, never one it was given
    (tmp_path / "metadata_x" / "b.csv").unlink(); (tmp_path / "given").mkdir()
    with pytest.raises(MetadataError): detect_cli([str(v), "--any-format", "--out", str(tmp_path / "given"), "--detector", "oracle"])
    assert (tmp_path / "given").is_dir()
    (tmp_path / "f").write_text("")
    with pytest.raises(DatasetError, match="--out"):
        detect_cli([str(v), "--any-format", "--out", str(tmp_path / "f" / "sub"), "--detector", "oracle"])

def test_detect_cli_passes_its_options_to_the_detector(tmp_path, monkeypatch):
    v = _oracle_set(tmp_path, {"a": "0,0,100,70\n"})
    seen = []
    real = D.make_detector
    monkeypatch.setattr(D, "make_detector", lambda name, **kw: seen.append((name, kw)) or real("oracle", metadata_dir=kw["metadata_dir"]))
    meta = str(tmp_path / "metadata_x")
    assert detect_cli([str(v), "--any-format", "--out", str(tmp_path / "d1"), "--detector", "oracle", "--metadata-dir", meta]) == 0
    assert detect_cli([str(v), "--any-format", "--out", str(tmp_path / "d2"), "--detector", "hog", "--batch-size", "8"]) == 0
    assert seen == [("oracle", dict(weights=None, device=None, metadata_dir=meta, batch_size=64)),
                    ("hog", dict(weights=None, device=None, metadata_dir=None, batch_size=8))]

def test_a_weights_argument_of_any_name_is_taken_as_the_reference_detectors_file(tmp_path):
    from savgbench.core import WeightsError
    from savgbench.detect import yolox_weights_argument
    (tmp_path / "mine.pth").write_bytes(b"x")
    assert yolox_weights_argument(None) is None and yolox_weights_argument(str(tmp_path / "mine.pth")) == tmp_path / "mine.pth"
    with pytest.raises(WeightsError, match=r"registered weights \(yolox-tiny-mmdet\)"):   # the mmdet file is the default
        yolox_weights_argument(str(tmp_path / "none.pth"))

def test_detect_cli_checks_the_yolox_device_before_making_the_detector(tmp_path, monkeypatch):
    import torch
    v = _oracle_set(tmp_path, {"a": "0,0,100,70\n"})
    (tmp_path / "w.pth").write_bytes(b"x")
    seen = []
    real = D.make_detector
    monkeypatch.setattr(D, "make_detector", lambda name, **kw: seen.append(kw["device"]) or real("oracle", metadata_dir=str(tmp_path / "metadata_x")))
    args = [str(v), "--any-format", "--weights", str(tmp_path / "w.pth")]
    with pytest.raises(SAVGBenchError, match="unknown device 'foo'"): detect_cli(args + ["--out", str(tmp_path / "d0"), "--device", "foo"])
    assert seen == []
    assert detect_cli(args + ["--out", str(tmp_path / "d1"), "--device", "cpu"]) == 0
    assert isinstance(seen[0], torch.device) and seen[0].type == "cpu"
