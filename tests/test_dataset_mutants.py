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
