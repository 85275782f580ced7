"""Dataset construction (geometry, curation, conversion, building): edge cases and settings that the other tests leave
open. Expected values come from the construction spec (/work/shared/spec/dataset_construction.md) worked by hand."""
import math
import numpy as np, pandas as pd, pytest

from savgbench.core import SAVGBenchError
from savgbench.geometry import azimuth_to_pixel, pixel_to_direction, view_outline
from savgbench.curate import CurationConfig, DEV_CURATION, EVAL_CURATION, curate_window, gain_factor, clips_peak

XM = math.tan(math.radians(50))          # half-width of the 100° pinhole picture at unit depth (spec §3.3)
YM = XM * 144 / 256                      # half-height of the 256x144 picture

# ---------------------------------------------------------------- geometry
def test_view_outline_corners_and_order():
    """The outline of a view on a 360x180 equirectangular image starts at the picture's top-left corner and goes
    clockwise on screen: top edge left to right, right edge down, bottom edge right to left, left edge up. The corner
    directions by hand (spec §3.3): the picture's left edge is 50° left of the view centre (STARSS azimuth 50 - u_deg),
    its top corners at elevation atan(ym cos 50°) = 23.31°; the top edge's middle at atan(ym) = 33.84°."""
    n = 8
    corner_el = math.degrees(math.atan(YM * math.cos(math.radians(50))))
    mid_el = math.degrees(math.atan(YM))
    for view in (0, 30):
        col, row = view_outline(view, 360, 180, n=n)
        assert col.shape == row.shape == (4 * n,)
        # equirectangular position on 360x180: col = 180 - az - 0.5, row = 90 - el - 0.5 (spec §1)
        left, right = 180 - (50 - view) - 0.5, 180 - (-50 - view) - 0.5
        top, bottom = 90 - corner_el - 0.5, 90 + corner_el - 0.5
        want = {0: (left, top), n: (right, top), 2 * n: (right, bottom), 3 * n: (left, bottom),
                n // 2: (180 + view - 0.5, 90 - mid_el - 0.5)}
        for i, (c, r) in want.items():
            assert abs(col[i] - c) < 1e-6 and abs(row[i] - r) < 1e-6, (view, i, col[i], row[i], c, r)
        assert (np.diff(col[:n]) > 0).all() and (np.diff(row[n:2 * n]) > 0).all()
        assert (np.diff(col[2 * n:3 * n]) < 0).all() and (np.diff(row[3 * n:]) < 0).all()

@pytest.mark.parametrize("az, view", [(90, 0), (-90, 0), (0, 90), (100, -10), (-30, -60)])
def test_direction_at_right_angles_to_the_view_has_no_pixel(az, view):
    "A direction 90° from the view's centre is not in front of the camera (valid iff cos a > 0, spec §3.3)."
    x, y, on = azimuth_to_pixel(az, 0.0, view)
    assert np.isnan(x) and np.isnan(y) and not on

def test_every_border_pixel_of_the_picture_is_onscreen():
    """Pixel centres on the picture's border are inside the field of view (onscreen iff |x_c| <= xm and |y_c| <= ym,
    spec §3.3, edges included): each border pixel's direction, projected back, is onscreen at the same pixel."""
    xs = np.r_[np.arange(256), np.full(144, 255), np.arange(256), np.zeros(144)]
    ys = np.r_[np.zeros(256), np.arange(144), np.full(256, 143), np.arange(144)]
    for view in range(0, 360, 10):
        az, el = pixel_to_direction(xs, ys, view)
        x, y, on = azimuth_to_pixel(az, el, view)
        assert on.all(), (view, np.flatnonzero(~on)[:5])
        assert np.abs(x - xs).max() < 1e-6 and np.abs(y - ys).max() < 1e-6

def test_edges_by_hand():
    "Azimuth ±50° from the view centre on the horizon sits on the first / last column; elevation ±v_fov/2 on row 0 / 143."
    half_v = math.degrees(math.atan(YM))                     # 33.84°
    for az, el, view, px, py in [(50, 0, 0, 0, 71.5), (-50, 0, 0, 255, 71.5), (20, 0, 30, 0, 71.5),
                                 (0, half_v, 0, 127.5, 0), (0, -half_v, 0, 127.5, 143)]:
        x, y, on = azimuth_to_pixel(az, el, view)
        assert on and abs(x - px) < 1e-9 and abs(y - py) < 1e-9
    assert not azimuth_to_pixel(50.01, 0, 0)[2] and not azimuth_to_pixel(0, half_v + 0.01, 0)[2]

# ---------------------------------------------------------------- curation settings
def test_window_starts_honour_first_start():
    "Windows [s, s + 50) that fit in the recording, from first_start every start_step frames."
    assert CurationConfig(first_start=3).starts(63) == [3, 8, 13]          # 13 + 50 = 63 fits
    assert CurationConfig(first_start=3).starts(62) == [3, 8]
    assert CurationConfig(first_start=3, start_step=7).starts(80) == [3, 10, 17, 24]
    assert CurationConfig(first_start=0).starts(49) == []

def test_view_grid_honours_first_view():
    assert CurationConfig(view_step_deg=90, first_view_deg=45).views() == [45, 135, 225, 315]

@pytest.mark.parametrize("kw", [dict(min_active_frames=0), dict(min_active_frames=-1), dict(min_active_frames=51),
                                dict(highpass_order=0), dict(start_step=0), dict(start_step=-5), dict(first_start=-1),
                                dict(view_step_deg=0), dict(first_view_deg=10), dict(view_step_deg=20, first_view_deg=25),
                                dict(first_view_deg=-10), dict(highpass_hz=0), dict(highpass_hz=12_000),
                                dict(gain_db=float("inf")), dict(gain_db=float("nan")), dict(max_peak=0),
                                dict(max_peak=1.0001)])
def test_curation_settings_out_of_range_are_refused(kw):
    with pytest.raises(SAVGBenchError): CurationConfig(**kw)

@pytest.mark.parametrize("kw", [dict(min_active_frames=50), dict(min_active_frames=1), dict(first_view_deg=9),
                                dict(view_step_deg=360, first_view_deg=359), dict(max_peak=1.0), dict(highpass_hz=None),
                                dict(highpass_hz=11_999), dict(gain_db=-20.0), dict(first_start=49)])
def test_curation_settings_at_their_limits_are_accepted(kw):
    cfg = CurationConfig(**kw)
    for k, v in kw.items(): assert getattr(cfg, k) == v

def test_dev_and_eval_settings():
    """The dev split: the reference build's settings (spec §0: lenfrm50 stpfrm5 firfrm0 thrfrm40 stpdeg10 firdeg0,
    classes 0/1/9, +38 dB, 0.9999); the eval split: the documented choice of non-overlapping windows and 20° views
    (`build-dataset --help`: 'dev 5, eval 50', 'dev 10, eval 20'), everything else as dev."""
    d = DEV_CURATION
    assert (d.window_frames, d.start_step, d.first_start, d.min_active_frames, d.view_step_deg, d.first_view_deg) == \
        (50, 5, 0, 40, 10, 0)
    assert tuple(d.classes) == (0, 1, 9) and d.gain_db == 38 and d.max_peak == 0.9999
    assert (EVAL_CURATION.start_step, EVAL_CURATION.view_step_deg) == (50, 20)
    assert EVAL_CURATION.views() == list(range(0, 360, 20)) and EVAL_CURATION.starts(200) == [0, 50, 100, 150]
    for k in ("window_frames", "first_start", "first_view_deg", "min_active_frames", "classes", "gain_db", "max_peak",
              "highpass_hz", "highpass_order"):
        assert getattr(EVAL_CURATION, k) == getattr(d, k), k

# ---------------------------------------------------------------- curation rules
def window(frames, cls=0, onscreen=True):
    "Projected label rows of a window: one row per entry of `frames` (repeats: overlapping events)."
    n = len(frames)
    return pd.DataFrame({"frame": list(frames), "cls": np.broadcast_to(cls, n), "onscreen": np.broadcast_to(onscreen, n)})

def test_the_first_rule_broken_is_the_one_reported():
    "Rules are checked in the order of `RULES`: class, then offscreen, then overlap, then inactive."
    bad_everything = window([0, 0, 1], cls=[2, 0, 0], onscreen=[False, False, True])
    assert curate_window(bad_everything) == "class"
    assert curate_window(window([0, 0, 1], onscreen=[False, True, True])) == "offscreen"
    assert curate_window(window([0, 0, 1])) == "overlap"                      # 3 rows, 2 frames: also inactive
    assert curate_window(window(range(39))) == "inactive"
    assert curate_window(window(range(40))) is None

def test_rules_follow_the_configured_classes_and_activity():
    assert curate_window(window(range(45), cls=1), CurationConfig(classes=(0,))) == "class"
    assert curate_window(window(range(45), cls=2), CurationConfig(classes=(2,))) is None
    assert curate_window(window(range(30)), CurationConfig(min_active_frames=30)) is None
    assert curate_window(window(range(44)), CurationConfig(min_active_frames=45)) == "inactive"

def test_gain_and_clipping_limit():
    "+38 dB is x79.43; a clip is dropped when its peak exceeds 0.9999 in either direction (spec §2.1: max|[L, R]|)."
    assert abs(gain_factor() - 79.4328) < 1e-4 and abs(gain_factor(CurationConfig(gain_db=-6.0)) - 0.501187) < 1e-6
    st = np.zeros((2, 10))
    st[1, 3] = 0.9999
    assert not clips_peak(st)                                          # at the limit: kept (the rule is '>')
    st[1, 3] = -0.99995
    assert clips_peak(st)                                              # a negative peak clips as well
    st[1, 3] = 0.99995
    assert clips_peak(st) and not clips_peak(st, CurationConfig(max_peak=1.0))

# ---------------------------------------------------------------- audio conversion
from scipy import signal
from savgbench.core import AudioFormatError, ClipFormatError
from savgbench.convert import (rotate_foa, foa_to_stereo, fuma_to_acn, highpass, apply_gain_db, resample_24k_to_16k,
                               stereo_clip_audio, equirect_to_perspective, PerspectiveView, project_labels)

@pytest.mark.parametrize("bad", [np.zeros((4, 10, 2)), np.zeros(4), np.zeros((3, 10)), np.zeros((4, 10), np.int32)])
def test_foa_must_be_a_float_4_by_n_array(bad):
    for f in (rotate_foa, foa_to_stereo, fuma_to_acn):
        with pytest.raises(AudioFormatError): f(bad, 0) if f is not fuma_to_acn else f(bad)

def test_fuma_to_acn_order_gain_and_dtype():
    "FuMa (W at -3 dB, X, Y, Z) -> ACN/SN3D (W, Y, Z, X): W x √2, the others reordered; the dtype is kept."
    fuma = np.array([[1.0], [2.0], [3.0], [4.0]], np.float32)              # W, X, Y, Z
    acn = fuma_to_acn(fuma)
    assert acn.dtype == np.float32
    np.testing.assert_allclose(acn[:, 0], [math.sqrt(2), 3, 4, 2], rtol=1e-6)

@pytest.mark.parametrize("cutoff", [12_000, 15_000, 0, -50])
def test_highpass_cutoff_must_lie_below_nyquist_and_above_zero(cutoff):
    with pytest.raises(AudioFormatError, match="Nyquist"): highpass(np.zeros((2, 100)), 24000, cutoff_hz=cutoff)

def test_highpass_is_the_butterworth_of_the_given_order_along_the_last_axis():
    "Causal by default, zero-phase on request, per row of a (channels, samples) array, dtype kept."
    x = np.random.default_rng(0).standard_normal((2, 3000)).astype(np.float32)
    for order in (2, 4):
        sos = signal.butter(order, 80, btype="highpass", fs=24000, output="sos")
        got = highpass(x, 24000, cutoff_hz=80, order=order)
        assert got.dtype == np.float32 and got.shape == x.shape
        for ch in range(2):
            np.testing.assert_allclose(got[ch], signal.sosfilt(sos, x[ch].astype(np.float64)), atol=2e-5)
            np.testing.assert_allclose(highpass(x, 24000, 80, order, zero_phase=True)[ch],
                                       signal.sosfiltfilt(sos, x[ch].astype(np.float64)), atol=2e-5)
    assert highpass(x, 24000, cutoff_hz=None) is x or np.array_equal(highpass(x, 24000, cutoff_hz=None), x)

def test_gain_and_resampling_keep_float32():
    x = np.full((2, 300), 0.25, np.float32)
    g = apply_gain_db(x, 6.0)
    assert g.dtype == np.float32 and abs(g[0, 0] - 0.25 * 10 ** (6 / 20)) < 1e-6
    r = resample_24k_to_16k(x)
    assert r.dtype == np.float32 and r.shape == (2, 200)

def test_resampling_is_scipys_polyphase_2_over_3():
    "spec / docstring: resample_poly(x, 2, 3) with its default Kaiser window (beta 5) and zero-padded ends."
    x = np.random.default_rng(1).standard_normal((2, 1200))
    want = signal.resample_poly(x, 2, 3, axis=-1)
    np.testing.assert_allclose(resample_24k_to_16k(x), want, atol=1e-12)
    with pytest.raises(AudioFormatError): resample_24k_to_16k(np.zeros((2, 300), np.int16))

def test_stereo_clip_audio_chain_peak_and_order():
    """The chain by hand (spec §2.1, §5.1): rotate, L/R = W ± Y', Butterworth high-pass of the given order, gain; the peak
    is the largest |sample| after the gain at 24 kHz, negative samples included; the result is float32 at 16 kHz."""
    rng = np.random.default_rng(2)
    foa = 0.01 * rng.standard_normal((4, 2400))
    view = 40
    r = np.deg2rad(view)
    w, y, z, x = foa
    yr = np.sin(r) * x + np.cos(r) * y
    for order, gain in ((2, 38.0), (4, 20.0)):
        sos = signal.butter(order, 50, btype="highpass", fs=24000, output="sos")
        st = signal.sosfilt(sos, np.stack([w + yr, w - yr]), axis=-1) * 10 ** (gain / 20)
        got, peak = stereo_clip_audio(foa, view, cutoff_hz=50, gain_db=gain, order=order)
        assert got.dtype == np.float32 and got.shape == (2, 1600)
        assert abs(peak - np.abs(st).max()) < 1e-9 * np.abs(st).max()
        np.testing.assert_allclose(got, signal.resample_poly(st, 2, 3, axis=-1), atol=1e-5)
    neg = np.zeros((4, 300)); neg[0, 100] = -0.5                         # W only: L = R = W
    assert abs(stereo_clip_audio(neg, 0, cutoff_hz=None, gain_db=0)[1] - 0.5) < 1e-12
    with pytest.raises(AudioFormatError, match="rate"): stereo_clip_audio(foa, 0, sample_rate=48000)

# ---------------------------------------------------------------- video conversion
@pytest.mark.parametrize("kw", [dict(view_deg=float("nan")), dict(view_deg=float("inf")), dict(h_fov=180.0),
                                dict(h_fov=0.0), dict(out_hw=(0, 64)), dict(out_hw=(36,))])
def test_perspective_view_refuses_bad_settings(kw):
    args = dict(in_hw=(32, 64), view_deg=0.0) | kw
    with pytest.raises(ValueError): PerspectiveView(**args)

def test_padding_puts_the_picture_in_the_middle_with_black_bars():
    "A picture of height h in a w x w frame starts at row (w - h) // 2; an odd remainder goes to the bottom bar."
    white = np.full((32, 64, 3), 255, np.uint8)
    out = equirect_to_perspective(white, 0, out_hw=(35, 64))                 # 29 black rows: 14 above, 15 below
    assert out.shape == (64, 64, 3)
    lit = np.flatnonzero(out.max(axis=(1, 2)) > 0)
    assert lit.min() == 14 and lit.max() == 48 and (out[14:49] > 200).all()
    sq = equirect_to_perspective(white, 0, out_hw=(64, 64))                  # square: no bars, allowed
    assert sq.shape == (64, 64, 3) and (sq > 200).all()
    with pytest.raises(ValueError, match="taller"): equirect_to_perspective(white, 0, out_hw=(65, 64))
    assert equirect_to_perspective(white, 0, out_hw=(65, 64), pad_to_square=False).shape == (65, 64, 3)

def test_perspective_view_looks_at_azimuth_minus_u_deg():
    """u_deg = 90 centres the view on STARSS azimuth -90 (spec §0): a red half-image at azimuths (-180, 0) (right of
    the front, the right half of the equirectangular image) fills the picture, a green one on the other side does not."""
    img = np.zeros((64, 128, 3), np.uint8)
    img[:, 64:, 0] = 255                                                    # columns right of the centre: azimuth < 0
    img[:, :64, 1] = 255
    pic = equirect_to_perspective(img, 90, out_hw=(36, 64), pad_to_square=False).astype(int)
    assert (pic[..., 0] > 200).all() and (pic[..., 1] < 50).all()
    pic = equirect_to_perspective(img, -90, out_hw=(36, 64), pad_to_square=False).astype(int)
    assert (pic[..., 1] > 200).all() and (pic[..., 0] < 50).all()

# ---------------------------------------------------------------- labels
def starss(rows):
    return pd.DataFrame(rows, columns=["frame", "cls", "source", "azimuth", "elevation"])

def test_project_labels_window_bounds_and_classes():
    "Rows with start <= frame < start + n_frames, frames counted from the start, each row keeping its own class."
    rows = starss([(2, 9, 1, 0, 0), (3, 0, 1, 0, 0), (7, 1, 2, 0, 0), (8, 9, 1, 0, 0), (20, 1, 1, 0, 0)])
    lab = project_labels(rows, 0, start_frame=3, n_frames=5)
    assert lab["frame"].tolist() == [0, 4] and lab["cls"].tolist() == [0, 1]
    lab = project_labels(rows, 0, start_frame=3, n_frames=None)
    assert lab["frame"].tolist() == [0, 4, 5, 17] and lab["cls"].tolist() == [0, 1, 9, 1]

def test_project_labels_pixels_rounded_and_angles_by_hand():
    """Reference labels (spec §3.3): the pinhole at (az - 0.5°, el - 0.5°), x and y rounded to the nearest pixel;
    azi_rot = az + u_deg folded to the front, ele_rot the label's elevation as it is."""
    f = 255 / 2 / XM                                                        # 106.985
    rows = starss([(0, 0, 1, 30, 10), (1, 0, 1, -20, -15), (2, 1, 1, 160, 0)])
    lab = project_labels(rows, 10, start_frame=0)
    for i, (az, el) in enumerate([(30, 10), (-20, -15)]):
        a, e = math.radians(az - 0.5 + 10), math.radians(el - 0.5)
        x = 127.5 - f * math.tan(a)
        y = 71.5 - (143 / 2 / YM) * math.tan(e) / math.cos(a)
        assert (lab["x"][i], lab["y"][i]) == (round(x), round(y)), (i, x, y)
    assert lab["azi_rot"].tolist() == [40, -10, 10] and lab["ele_rot"].tolist() == [10, -15, 0]   # 170 folds to 10
    assert lab["onscreen"].tolist() == [True, True, False]

def test_project_labels_use_the_given_field_of_view():
    "With a 60° field of view, 40° off centre is outside; with the default 100° it is inside."
    rows = starss([(0, 0, 1, 40, 0)])
    assert project_labels(rows, 0, 0)["onscreen"].tolist() == [True]
    assert project_labels(rows, 0, 0, h_fov=60.0)["onscreen"].tolist() == [False]
    lab = project_labels(starss([(0, 0, 1, 20, 0)]), 0, 0, h_fov=60.0)
    assert lab["x"][0] == round(127.5 - 127.5 / math.tan(math.radians(30)) * math.tan(math.radians(19.5)))

# ---------------------------------------------------------------- building
from savgbench.build import find_recordings, clip_name, Recording

def test_splits_take_their_own_subsets_and_names(tmp_path):
    """dev = dev-train-* recordings, eval = dev-test-* (spec §1: fold3 train, fold4 test); names must be whole
    foldN_roomN_mixNNN stems."""
    def touch(p): p.parent.mkdir(parents=True, exist_ok=True); p.write_bytes(b"")
    for sub, name in (("dev-train-sony", "fold3_room21_mix013"), ("dev-test-sony", "fold4_room23_mix001"),
                      ("dev-train-tau", "fold3_room4_mix002")):
        for kind, ext in (("foa_dev", "wav"), ("metadata_dev", "csv"), ("video_dev", "mp4")):
            touch(tmp_path / kind / sub / f"{name}.{ext}")
    touch(tmp_path / "foa_dev/dev-train-sony/fold3_room21_mix013_old.wav")
    with pytest.warns(UserWarning, match="mix013_old.wav"): dev = find_recordings(tmp_path, "dev")
    assert [(r.subset, r.name) for r in dev] == [("dev-train-sony", "fold3_room21_mix013"), ("dev-train-tau", "fold3_room4_mix002")]
    ev = find_recordings(tmp_path, "eval")                              # (the odd name is in a dev subset)
    assert [(r.subset, r.name) for r in ev] == [("dev-test-sony", "fold4_room23_mix001")]
    assert ev[0].video == tmp_path / "video_dev/dev-test-sony/fold4_room23_mix001.mp4" and ev[0].missing() == []

def test_clip_names_are_zero_padded():
    "spec §5: <recording>_deg{ddd}_start{ssss}, e.g. fold3_room21_mix013_deg120_start0450."
    assert clip_name("fold3_room21_mix013", 120, 450) == "fold3_room21_mix013_deg120_start0450"
    assert clip_name("fold3_room4_mix002", 0, 5) == "fold3_room4_mix002_deg000_start0005"

def test_a_recording_without_labels_or_audio_lacks_them():
    assert Recording("r", "s", None, None, None).missing() == ["FOA wav", "label CSV"]
    assert Recording("r", "s", "a.wav", None, "v.mp4").missing() == ["label CSV"]
    assert Recording("r", "s", None, "m.csv", "v.mp4").missing() == ["FOA wav"]

from savgbench.build import window_candidates, window_clips, window_audio, clip_done, summarize_build, source_fingerprint

def test_window_candidates_sorts_the_labels_and_counts_frames_from_the_window_start():
    "Unsorted label rows give the same windows as sorted ones; each window's rows have frames 0 ... 49."
    rows = [(f, 0, 1, 0, 0) for f in range(60)]
    meta = starss(rows[::-1])                                               # frames 59, 58, ..., 0
    cfg = CurationConfig(view_step_deg=360)
    got = window_candidates(meta, 60, cfg)
    assert [(s, deg) for s, deg, _ in got] == [(0, 0), (5, 0), (10, 0)]
    for s, _, r in got: assert r["frame"].tolist() == list(range(50)), s
    from collections import Counter
    dropped = Counter()
    assert window_candidates(starss([(f, 2, 1, 0, 0) for f in range(60)]), 60, cfg, dropped) == []
    assert dropped == {"class": 3}

def _hp(w, x=0.0, y=0.0, n=120_000):
    "High-passed FOA stand-in: constant W, Y and X (Z 0) for n samples."
    return np.stack([np.full(n, w), np.full(n, y), np.zeros(n), np.full(n, x)])

def test_window_clips_applies_the_gain_before_the_limit():
    """+38 dB (x79.43) then 0.9999: a W of 0.0125 gives L = R = 0.993 (kept), 0.0126 gives 1.0008 (dropped); the view
    turns X into Y': at u_deg 90, Y' = X, so W 0.006 and X 0.007 give L = 0.013 x 79.43 = 1.03."""
    assert not window_clips(_hp(0.0125), 0, 0) and window_clips(_hp(0.0126), 0, 0)
    assert window_clips(_hp(0.006, x=0.007), 0, 90) and not window_clips(_hp(0.006, x=0.007), 0, 0)
    quiet = _hp(0.001, n=200_000); quiet[0, 60 * 2400] = 0.02                          # loud only after the window at frame 0
    assert not window_clips(quiet, 0, 0) and window_clips(quiet, 20, 0)

def test_window_audio_is_the_16k_slice_turned_to_the_view_and_checked_at_both_rates():
    """The written audio: the 16 kHz FOA's 80000 samples from start x 1600, L/R = W ± Y' with Y' = sin(u) X + cos(u) Y,
    x79.43; None when either rate exceeds 0.9999."""
    rng = np.random.default_rng(3)
    hp16 = 0.0004 * rng.standard_normal((4, 96_000))
    hp24 = np.zeros((4, 144_000))
    got = window_audio(hp24, hp16, 10, 30)
    seg = hp16[:, 16_000:96_000]
    r = math.radians(30)
    yr = math.sin(r) * seg[3] + math.cos(r) * seg[1]
    want = np.stack([seg[0] + yr, seg[0] - yr]) * 10 ** (38 / 20)
    assert got.dtype == np.float32 and got.shape == (2, 80_000)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    loud16 = hp16.copy(); loud16[0, 20_000] = 0.02                          # only the 16 kHz signal clips
    assert window_audio(hp24, loud16, 10, 30) is None
    loud24 = hp24.copy(); loud24[0, 30_000] = 0.02                          # only the 24 kHz signal clips
    assert window_audio(loud24, hp16, 10, 30) is None

def test_clip_done_needs_both_files_a_non_empty_mp4_and_readable_labels(tmp_path):
    from savgbench.io import write_clip_metadata
    mp4, csv = tmp_path / "c.mp4", tmp_path / "c.csv"
    mp4.write_bytes(b"\0" * 100)
    assert not clip_done(mp4, csv)                                          # no labels
    write_clip_metadata(csv, pd.DataFrame({"frame": [0], "cls": [0], "x": [10], "y": [20]}))
    assert clip_done(mp4, csv)                                              # (contents not decoded without verify)
    assert not clip_done(mp4, csv, verify=True)                            # not an mp4
    assert not clip_done(tmp_path / "none.mp4", csv)
    mp4.write_bytes(b"")
    assert not clip_done(mp4, csv)                                          # empty (a write cut off)
    mp4.write_bytes(b"\0" * 100); csv.write_text("0,speech,x\n")
    assert not clip_done(mp4, csv)                                          # labels that do not read

def test_source_fingerprint_sees_a_change_at_the_end_of_a_large_file(tmp_path):
    "Media are identified by size and the first and last MiB: a change in the last bytes of a 3 MiB file shows."
    media = tmp_path / "a.wav"
    media.write_bytes(bytes(3 << 20))
    csv = tmp_path / "a.csv"; csv.write_text("0,0,1,20,0\n")
    rec = Recording("fold3_room01_mix001", "dev-train-x", media, csv, media)
    before = source_fingerprint(rec)
    with open(media, "r+b") as f: f.seek((3 << 20) - 10); f.write(b"\1")
    after = source_fingerprint(rec)
    assert after["foa"] != before["foa"] and after["video"] != before["video"] and after["metadata"] == before["metadata"]
    csv.write_text("0,0,1,21,0\n")
    assert source_fingerprint(rec)["metadata"] != after["metadata"]

def test_summarize_build_counts_by_hand():
    "Two recordings' reports (and one failed) combined: sums, hours, the speech:instrument ratio."
    reps = [dict(recording="a", subset="s", kept=6, existing=2, windows=72, dropped={"class": 3, "clipping": 1},
                 classes={"0": 4, "9": 3}, seld_classes={"0": 5, "1": 3}, seconds=1.0),
            dict(recording="b", subset="s", kept=2, existing=0, windows=36, dropped={"offscreen": 5},
                 classes={"1": 2}, seld_classes={"0": 1}, seconds=1.0, no_video=False),
            dict(recording="c", failed="ValueError: x")]
    rep = summarize_build(reps, "dev", DEV_CURATION, 4.0)
    assert rep["recordings"] == 2 and rep["failed_recordings"] == {"c": "ValueError: x"}
    assert rep["clips"] == 8 and rep["clips_built_now"] == 6 and rep["clips_already_there"] == 2
    assert rep["windows_checked"] == 108 and abs(rep["hours"] - 8 * 5 / 3600) < 1e-12
    assert rep["dropped"] == {"empty": 0, "class": 3, "offscreen": 5, "overlap": 0, "inactive": 0, "clipping": 1}
    assert rep["clips_with_starss_class"] == {"0": 4, "1": 2, "9": 3}
    assert rep["clips_with_speech"] == 6 and rep["clips_with_instrument"] == 3 and rep["speech_to_instrument"] == 2.0
    assert rep["clips_per_second"] == 6 / 4.0
    assert summarize_build(reps[1:2], "dev", DEV_CURATION, 1.0)["speech_to_instrument"] is None

def test_eval_split_builds_with_the_eval_settings(recording_factory, tmp_path):
    """`split='eval'` (API and command line) takes the dev-test-* recordings with EVAL_CURATION: one 5 s window of a 7 s
    recording, 18 views of 20°. Clapping only (class 2): every window is dropped by the class rule, no clip is made."""
    from savgbench.build import build_dataset, build_dataset_cli
    import json
    root = recording_factory([(f, 2, 1, 20, 0) for f in range(70)], subset="dev-test-synth")
    rep = build_dataset(root, tmp_path / "a", split="eval", progress=False, verbose=False)
    assert rep["config"]["start_step"] == 50 and rep["config"]["view_step_deg"] == 20
    assert rep["windows_checked"] == 18 and rep["dropped"]["class"] == 18 and rep["clips"] == 0
    assert build_dataset_cli([str(root), str(tmp_path / "b"), "--split", "eval"]) == 0
    rep = json.loads((tmp_path / "b/build_report_eval.json").read_text())
    assert rep["config"]["view_step_deg"] == 20 and rep["windows_checked"] == 18

def test_short_video_limits_the_windows_and_clip_frames_follow_the_source_clock(tmp_path):
    """8 s of audio, 165 frames of video at 29.97 fps (5.505 s), labels for 10 s. Only 55 label frames have both, so
    the windows start at 0 and 5 (s + 50 <= 55); the report names the length mismatch and the 35 label rows more than
    1 s past the end (frames 65 ... 99). Source frame i is grey level 5 + 1.5 i: the clip's frame k (4 fps) shows the
    source frame nearest to k / 4 s (spec §5.1: 20 frames at 4 fps from the window start): 0, 7 (7.49), 142 (142.36)."""
    from fractions import Fraction
    from savgbench.io import write_foa, write_starss_metadata, write_clip, read_clip
    from savgbench.build import build_dataset
    root, name, sub = tmp_path / "starss", "fold3_room01_mix001", "dev-train-synth"
    write_foa(root / f"foa_dev/{sub}/{name}.wav", 1e-4 * np.random.default_rng(0).standard_normal((4, 8 * 24000)).astype(np.float32))
    write_starss_metadata(root / f"metadata_dev/{sub}/{name}.csv", starss([(f, 0, 1, 20, 0) for f in range(100)]))
    levels = (5 + 1.5 * np.arange(165)).astype(int)
    video = np.broadcast_to(levels[:, None, None, None].astype(np.uint8), (165, 32, 64, 3)).copy()
    write_clip(root / f"video_dev/{sub}/{name}.mp4", video, np.zeros((2, 16000), np.float32), fps=Fraction(30000, 1001))
    rep = build_dataset(root, tmp_path / "out", cfg=CurationConfig(view_step_deg=360), audio_codec="pcm",
                        progress=False, verbose=False)
    assert rep["windows_checked"] == 2 and rep["clips"] == 2
    assert rep["length_mismatch"] == {name: {"audio_s": 8.0, "video_s": 5.51}}
    assert rep["labels_past_end"] == {name: 35}
    clip = read_clip(tmp_path / f"out/video_dev/{name}_deg000_start0000.mp4")
    for k, src in ((0, 0), (1, 7), (19, 142)):
        assert abs(clip.video[k, 56:200].mean() - (5 + 1.5 * src)) < 5, (k, clip.video[k, 56:200].mean())

def test_a_clip_with_both_speech_classes_counts_once_as_speech(recording_factory, tmp_path):
    """Female and male speech alternating (classes 0 and 1) in frames 0 ... 49 of a 7 s recording: windows 0, 5 and 10
    keep 50, 45 and 40 active frames (kept), 15 and 20 too few. Each kept clip has STARSS classes 0 and 1 and is one
    speech clip (SELD class 0), not two."""
    from savgbench.build import build_dataset
    root = recording_factory([(f, f % 2, 1, 20, 0) for f in range(50)])
    rep = build_dataset(root, tmp_path / "out", cfg=CurationConfig(view_step_deg=360), progress=False, verbose=False)
    assert rep["clips"] == 3 and rep["dropped"]["inactive"] == 2
    assert rep["clips_with_starss_class"] == {"0": 3, "1": 3}
    assert rep["clips_with_speech"] == 3 and rep["clips_with_instrument"] == 0 and rep["speech_to_instrument"] is None

def test_build_filters_with_the_configured_high_pass(recording_factory, tmp_path):
    """highpass_hz / highpass_order of the curation settings reach the audio: a 4th-order Butterworth at 200 Hz (the
    spec's chain, §5.1, with these settings) on the whole recording, then the clip's 5 s at 16 kHz."""
    import soundfile as sf
    from savgbench.build import build_dataset
    from savgbench.io import read_clip
    root = recording_factory([(f, 0, 1, 20, 0) for f in range(70)])
    cfg = CurationConfig(view_step_deg=360, start_step=50, highpass_hz=200.0, highpass_order=4)
    rep = build_dataset(root, tmp_path / "out", cfg=cfg, audio_codec="pcm", progress=False, verbose=False)
    assert rep["clips"] == 1
    w, y, z, x = sf.read(next(root.glob("foa_dev/*/*.wav")), dtype="float64")[0].T
    sos = signal.butter(4, 200, btype="highpass", fs=24000, output="sos")
    st = signal.sosfilt(sos, np.stack([w + y, w - y]), axis=-1) * 10 ** (38 / 20)
    want = signal.resample_poly(st, 2, 3, axis=-1)[:, :80000]
    got = read_clip(tmp_path / "out/video_dev/fold3_room01_mix001_deg000_start0000.mp4").audio
    assert np.abs(got[:, 8000:72000] - want[:, 8000:72000]).max() < 1e-3, np.abs(got - want).max()

def test_report_of_a_rebuild_without_clips_and_hidden_files(recording_factory, tmp_path):
    """A recording whose labels changed but that had no clip is not reported as rebuilt (no clip of it was removed);
    hidden files in the video folder (macOS '._' companions) are not clips of another build."""
    from savgbench.build import build_dataset
    root = recording_factory([(f, 2, 1, 20, 0) for f in range(70)])          # clapping: no clip
    out = tmp_path / "out"
    (out / "video_dev").mkdir(parents=True)
    (out / "video_dev/._fold3_room01_mix001_deg000_start0000.mp4").write_bytes(b"\0")
    cfg = CurationConfig(view_step_deg=360)
    rep = build_dataset(root, out, cfg=cfg, progress=False, verbose=False)
    assert rep["clips"] == 0 and rep["clips_not_in_this_build"] == []
    csv = root / "metadata_dev/dev-train-synth/fold3_room01_mix001.csv"
    csv.write_text(csv.read_text().replace(",20,", ",25,"))
    rep = build_dataset(root, out, cfg=cfg, progress=False, verbose=False)
    assert rep["rebuilt_changed_sources"] == [] and rep["removed_changed_sources"] == [] and rep["clips"] == 0

def test_zero_workers_is_refused_before_any_work(tmp_path):
    from savgbench.build import build_dataset
    for bad in (0, -2, 1.5):
        with pytest.raises(SAVGBenchError, match="number of workers must be a positive integer"):
            build_dataset(tmp_path / "no_starss", tmp_path / "out", workers=bad, progress=False, verbose=False)
    assert not (tmp_path / "out").exists()

def test_build_report_text_names_recordings_without_video():
    from savgbench.build import format_build_report
    reps = [dict(recording="fold3_room21_mix001", subset="s", kept=0, existing=0, windows=0, dropped={"no_video": 0},
                 classes={}, seld_classes={}, seconds=0.0, no_video=True),
            dict(recording="fold3_room21_mix013", subset="s", kept=3, existing=0, windows=36, dropped={"class": 33},
                 classes={"0": 2, "9": 1}, seld_classes={"0": 2, "1": 1}, seconds=1.0)]
    text = format_build_report(summarize_build(reps, "dev", DEV_CURATION, 2.0))
    assert "3 clips" in text and "from 2 recordings" in text and "speech:instrument = 2.00:1" in text, text
    assert "recordings without video (skipped): fold3_room21_mix001" in text, text

@pytest.mark.parametrize("err", ["ENOSPC", "EDQUOT"])
def test_a_full_disk_or_quota_stops_the_build_even_when_skipping_errors(tmp_path, monkeypatch, err):
    "Out of space or over the disk quota: the output's fault, not the recording's, so skip_errors does not skip it."
    import errno
    import savgbench.build as B
    from savgbench.core import DatasetError
    def full(*a, **k): raise OSError(getattr(errno, err), "no room", "x.mp4")
    monkeypatch.setattr(B, "build_recording", full)
    rec = Recording("fold3_room01_mix001", "dev-train-x", tmp_path / "a.wav", tmp_path / "a.csv", tmp_path / "a.mp4")
    with pytest.raises(DatasetError, match="no space left"):
        B._run_one((rec, tmp_path / "out", "dev", DEV_CURATION, "aac", True, False, False))
    def unreadable(*a, **k): raise OSError(errno.EIO, "bad sector", "a.mp4")
    monkeypatch.setattr(B, "build_recording", unreadable)
    got = B._run_one((rec, tmp_path / "out", "dev", DEV_CURATION, "aac", True, False, False))
    assert got["recording"] == rec.name and "bad sector" in got["failed"]
