"""Geometry and conversion: properties (hypothesis), differential checks against py360convert, and bad inputs."""
import cv2, numpy as np, pandas as pd, pytest, py360convert
from hypothesis import given, settings, assume, strategies as st, HealthCheck
from py360convert import utils as p360u

from savgbench.core import SAVGBenchError, AudioFormatError, ClipFormatError, MetadataError
from savgbench.geometry import (wrap180, fold_back_azimuth, rotate_azimuth, v_fov_deg, azimuth_to_pixel,
                                pixel_to_azimuth, pixel_to_direction, equirect_position, equirect_direction)
from savgbench.convert import (rotate_foa, foa_to_stereo, highpass, resample_24k_to_16k, stereo_clip_audio,
                               equirect_to_perspective, perspective_view, PerspectiveView, project_labels,
                               _sampling_coords)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
views = st.floats(-360, 360, allow_nan=False)

def plane_wave(s, az, el=0.0):
    "FOA (W, Y, Z, X; SN3D) of a plane wave from STARSS azimuth az, elevation el."
    a, e = np.deg2rad(az), np.deg2rad(el)
    return np.stack([s, s*np.sin(a)*np.cos(e), s*np.sin(e)*np.ones_like(s), s*np.cos(a)*np.cos(e)])

def py360_directions(view_deg, w, h, h_fov):
    "STARSS (azimuth, elevation) of the ray py360convert's e2p casts through each output pixel."
    xyz = p360u.xyzpers(np.deg2rad(h_fov), np.deg2rad(v_fov_deg(h_fov, w, h)), -np.deg2rad(view_deg), 0.0, (h, w), 0.0)
    lon, lat = p360u.xyz2uv(xyz.astype(np.float64))
    return -np.rad2deg(lon[..., 0]), np.rad2deg(lat[..., 0])

# ---------------------------------------------------------------- angles
@SETTINGS
@given(st.floats(-1e4, 1e4, allow_nan=False))
def test_wrap_and_fold_ranges(a):
    w = wrap180(a)
    assert -180 < w <= 180 and abs(np.sin(np.deg2rad(w)) - np.sin(np.deg2rad(a))) < 1e-6
    f = fold_back_azimuth(a)
    assert -90 <= f <= 90
    # folding mirrors front/back: same sine (left/right position), non-negative cosine
    assert abs(np.sin(np.deg2rad(f)) - np.sin(np.deg2rad(a))) < 1e-6

@SETTINGS
@given(st.integers(-180, 180), st.integers(0, 359))
def test_rotate_azimuth_integer(az, deg):
    r = rotate_azimuth(az, deg)
    assert np.asarray(r).dtype.kind == 'i' and (r - az - deg) % 360 == 0 and -180 < r <= 180

# ---------------------------------------------------------------- direction -> pixel
@settings(max_examples=25, deadline=None)
@given(views, st.integers(16, 400), st.integers(9, 300), st.floats(40, 140))
def test_azimuth_to_pixel_matches_e2p_grid(view, w, h, h_fov):
    az, el = py360_directions(view, w, h, h_fov)
    x, y, on = azimuth_to_pixel(az, el, view, w, h, h_fov)
    rows, cols = np.mgrid[:h, :w]
    assert np.abs(x - cols).max() < 0.01 and np.abs(y - rows).max() < 0.01
    assert on[1:-1, 1:-1].all()

def test_azimuth_to_pixel_e2p_grid_savgbench_views():
    "The SAVGBench picture at every view of the 10° grid: the largest error (reported)."
    worst = 0.0
    for view in range(0, 360, 10):
        az, el = py360_directions(view, 256, 144, 100)
        x, y, _ = azimuth_to_pixel(az, el, view)
        rows, cols = np.mgrid[:144, :256]
        worst = max(worst, np.abs(x - cols).max(), np.abs(y - rows).max())
    print(f"max |azimuth_to_pixel - e2p grid| = {worst:.2e} px")
    assert worst < 0.01

@SETTINGS
@given(st.floats(0, 255, allow_nan=False), st.floats(0, 143, allow_nan=False), views)
def test_pixel_round_trip(x, y, view):
    xa = pixel_to_azimuth(x, view)
    test_x = azimuth_to_pixel(xa, 0.0, view)[0]
    assert abs(test_x - x) < 1e-6
    az, el = pixel_to_direction(x, y, view)
    x2, y2, on = azimuth_to_pixel(az, el, view)
    assert abs(x2 - x) < 1e-6 and abs(y2 - y) < 1e-6 and on

@SETTINGS
@given(st.floats(-180, 180, allow_nan=False), views)
def test_onscreen_on_horizon_iff_within_half_fov(az, view):
    a = float(rotate_azimuth(az, view))
    assume(abs(abs(a) - 50) > 1e-6)
    assert bool(azimuth_to_pixel(az, 0.0, view)[2]) == (abs(a) < 50)

@SETTINGS
@given(st.floats(-180, 180, allow_nan=False), st.floats(-90, 90, allow_nan=False), views, st.booleans())
def test_onscreen_needs_front_and_fov(az, el, view, offset):
    x, y, on = azimuth_to_pixel(az, el, view, half_degree_offset=offset)
    a = float(rotate_azimuth(az - (0.5 if offset else 0), view))
    if abs(a) >= 90: assert not on and np.isnan(x) and np.isnan(y)     # behind the view: never onscreen
    if on: assert abs(a) <= 50 + 1e-9 and -1e-9 <= x <= 255 + 1e-9 and -1e-9 <= y <= 143 + 1e-9

@SETTINGS
@given(st.floats(-180, 180, allow_nan=False), st.floats(-89, 89, allow_nan=False),
       st.sampled_from([(1920, 960), (960, 480), (360, 180), (17, 9)]))
def test_equirect_position_round_trip_and_py360(az, el, size):
    w, h = size
    c, r = equirect_position(az, el, w, h)
    assert -0.5 <= c < w - 0.5
    a2, e2 = equirect_direction(c, r, w, h)
    assert abs(wrap180(a2 - az)) < 1e-9 and abs(e2 - el) < 1e-9
    cx, cy = p360u.uv2coor(np.array(-np.deg2rad(az)), np.array(np.deg2rad(el)), h, w)   # py360 longitude = -azimuth
    assert abs(((cx - c) + w / 2) % w - w / 2) < 1e-6 and abs(cy - r) < 1e-6

def test_reference_splat_centroid():
    """The reference labels are the centroid of a one-pixel splat on a 360x180 grid at ((180-az)%360, (90-el)%180)
    converted with e2p; `half_degree_offset=True` reproduces them, the exact projection is about 1 px off."""
    rng = np.random.default_rng(0)
    err_off, err_exact = [], []
    for _ in range(40):
        view = int(rng.integers(0, 36)) * 10
        az, el = int(rng.integers(-40, 41)) - view, int(rng.integers(-25, 26))
        grid = np.zeros((180, 360), np.float32)
        grid[(90 - el) % 180, (180 - az) % 360] = 1.0
        pic = py360convert.e2p(grid, (100, v_fov_deg()), view, 0, (144, 256)).astype(np.float64)
        assert pic.sum() > 0
        rr, cc = np.mgrid[:144, :256]
        cy, cx = (pic * rr).sum() / pic.sum(), (pic * cc).sum() / pic.sum()
        x, y, on = azimuth_to_pixel(az, el, view, half_degree_offset=True)
        assert on
        err_off.append(max(abs(x - cx), abs(y - cy)))
        x, y, _ = azimuth_to_pixel(az, el, view)
        err_exact.append(max(abs(x - cx), abs(y - cy)))
    print(f"reference splat centroid: max error {max(err_off):.3f} px with the offset, {max(err_exact):.3f} px without")
    assert max(err_off) < 0.35 and np.mean(err_off) < np.mean(err_exact)

# ---------------------------------------------------------------- audio
@SETTINGS
@given(st.floats(-180, 180), st.floats(-80, 80), views, views)
def test_rotation_composes_and_moves_plane_waves(az, el, d1, d2):
    s = np.linspace(-1, 1, 16)
    foa = plane_wave(s, az, el)
    np.testing.assert_allclose(rotate_foa(foa, d1), plane_wave(s, az + d1, el), atol=1e-9)
    np.testing.assert_allclose(rotate_foa(rotate_foa(foa, d1), d2), rotate_foa(foa, d1 + d2), atol=1e-9)

@SETTINGS
@given(st.floats(-180, 180), st.floats(-60, 60), views)
def test_louder_channel_on_source_side(az, el, view):
    s = np.random.default_rng(1).standard_normal(256)
    l, r = np.sqrt((foa_to_stereo(plane_wave(s, az, el), view) ** 2).mean(-1))
    side = np.sin(np.deg2rad(az + view)) * np.cos(np.deg2rad(el))
    if side > 0.02: assert l > r
    if side < -0.02: assert r > l
    st_ = foa_to_stereo(plane_wave(s, az, el), view)
    np.testing.assert_allclose(st_[0] + st_[1], 2 * s, atol=1e-12)        # L + R = 2W

@pytest.mark.parametrize("bad", [np.zeros((2, 100)), np.zeros((100, 4)), np.zeros(100), np.zeros((4, 10), np.int16),
                                 np.zeros((1, 4, 10))])
def test_bad_foa(bad):
    with pytest.raises(AudioFormatError): foa_to_stereo(bad, 0)
    with pytest.raises(AudioFormatError): rotate_foa(bad, 0)

def test_bad_audio_chain_inputs():
    with pytest.raises(AudioFormatError, match="floating"): highpass(np.zeros(10, np.int32), 24000)
    with pytest.raises(AudioFormatError, match="Nyquist"): highpass(np.zeros(10), 24000, cutoff_hz=20000)
    with pytest.raises(AudioFormatError, match="floating"): resample_24k_to_16k(np.zeros(30, np.int16))
    with pytest.raises(AudioFormatError, match="rate"): stereo_clip_audio(np.zeros((4, 300)), 0, sample_rate=44100)
    with pytest.raises(SAVGBenchError): stereo_clip_audio(np.zeros((3, 300)), 0)

# ---------------------------------------------------------------- video
def test_sampling_maps_identical_to_py360convert():
    "The fixed-point maps of every SAVGBench view equal py360convert's own, for both STARSS-like sizes."
    for (h, w) in [(960, 1920), (480, 960)]:
        for view in list(range(0, 360, 10)) + [-95.5, 12.25]:
            col, row = _sampling_coords(h, w, view, 144, 256, 100.0)
            ours = cv2.convertMaps(col + 1, row + 1, cv2.CV_16SC2, nninterpolation=False)
            ref = p360u.EquirecSampler.from_perspective(np.deg2rad(100.0), np.deg2rad(v_fov_deg()), -np.deg2rad(view),
                                                        0.0, 0.0, h, w, 144, 256, 1)
            assert np.array_equal(ours[0], ref._coor_x) and np.array_equal(ours[1], ref._coor_y), (h, w, view)

@settings(max_examples=40, deadline=None)
@given(st.integers(2, 90), st.integers(2, 180), views, st.sampled_from([(144, 256), (36, 64), (50, 50), (10, 30)]),
       st.floats(30, 150), st.integers(0, 2**31))
def test_fast_path_matches_e2p_random(h, w, view, out_hw, h_fov, seed):
    img = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ref = py360convert.e2p(img, (h_fov, v_fov_deg(h_fov, out_hw[1], out_hw[0])), view, 0, out_hw)
    ours = equirect_to_perspective(img, view, out_hw=out_hw, h_fov=h_fov, pad_to_square=False)
    assert np.abs(ours.astype(int) - ref).max() <= 1

@pytest.fixture(scope="module")
def natural():
    from skimage import data
    pano = np.concatenate([data.astronaut(), data.astronaut()[:, ::-1]], axis=1)      # 512x1024, a 2:1 "panorama"
    return cv2.resize(pano, (1920, 960), interpolation=cv2.INTER_LINEAR)

@pytest.mark.parametrize("view", [0, 45, 90, 170, 175, 180, 185, 190, 270, 355, -10])
def test_fast_path_matches_e2p_natural(natural, view):
    ref = py360convert.e2p(natural, (100, v_fov_deg()), view, 0, (144, 256))
    ours = equirect_to_perspective(natural, view)
    assert ours.shape == (256, 256, 3) and not ours[:56].any() and not ours[200:].any()
    assert np.abs(ours[56:200].astype(int) - ref).max() <= 1

def test_fast_path_batch_equals_single():
    frames = np.random.default_rng(3).integers(0, 256, (4, 64, 128, 3), dtype=np.uint8)
    batch = equirect_to_perspective(frames, 180)
    for f, b in zip(frames, batch): assert np.array_equal(equirect_to_perspective(f, 180), b)
    assert perspective_view((64, 128), 180.0) is perspective_view((64, 128), 180.0)

@pytest.mark.parametrize("bad", [np.zeros((10, 20), np.uint8), np.zeros((10, 20, 4), np.uint8),
                                 np.zeros((10, 20, 3), np.float32), np.zeros((2, 10, 20, 3), np.int16),
                                 np.zeros((1, 2, 10, 20, 3), np.uint8), np.zeros((1, 20, 3), np.uint8)])
def test_bad_frames(bad):
    with pytest.raises(ClipFormatError): equirect_to_perspective(bad, 0)

def test_frame_size_must_match_view():
    with pytest.raises(ClipFormatError, match="size"): PerspectiveView((20, 40), 0)(np.zeros((30, 60, 3), np.uint8))

def test_disc_round_trip_centroid():
    "A disc drawn at a direction appears after conversion at azimuth_to_pixel's pixel (centroid within 2 px)."
    rng = np.random.default_rng(5)
    worst = 0.0
    for _ in range(30):
        view = float(rng.integers(0, 36) * 10)
        az, el = float(rng.uniform(-40, 40) - view), float(rng.uniform(-25, 25))
        img = np.zeros((960, 1920, 3), np.uint8)
        c, r = equirect_position(az, el, 1920, 960)
        for dc in (-1920, 0, 1920):
            cv2.circle(img, (int(round((float(c) + dc) * 16)), int(round(float(r) * 16))), 10 * 16, (255, 255, 255),
                       -1, cv2.LINE_AA, shift=4)
        pic = equirect_to_perspective(img, view, pad_to_square=False)[..., 0].astype(float)
        rr, cc = np.mgrid[:144, :256]
        cy, cx = (pic * rr).sum() / pic.sum(), (pic * cc).sum() / pic.sum()
        x, y, on = azimuth_to_pixel(az, el, view)
        assert on
        worst = max(worst, abs(cx - x), abs(cy - y))
    print(f"disc centroid vs azimuth_to_pixel: max {worst:.3f} px")
    assert worst < 2

# ---------------------------------------------------------------- labels
def test_project_labels_rows():
    rows = pd.DataFrame({"frame": [0, 4, 5, 5, 54, 55], "cls": [0, 1, 9, 0, 1, 1], "source": [1, 2, 0, 1, 2, 2],
                         "azimuth": [0, 10, -100, 175, 0, 0], "elevation": [0, 0, 0, 0, 0, 0],
                         "distance": [100] * 6})
    lab = project_labels(rows, 100, start_frame=5)
    assert lab["frame"].tolist() == [0, 0, 49]
    # -100 + 100 = 0 (centre); 175 + 100 -> -85 (in front, right of the picture); 0 + 100 = 100 (behind)
    assert lab["onscreen"].tolist() == [True, False, False]
    assert lab["azi_rot"].tolist() == [0, -85, 80]                # 100 folds to 80
    assert lab["x"].isna().tolist() == [False, False, True] and lab["x"][1] > 255
    assert 0 <= lab["x"][0] <= 255 and 0 <= lab["y"][0] <= 143

def test_project_labels_written_by_io(tmp_path):
    io = pytest.importorskip("savgbench.io")
    rows = pd.DataFrame({"frame": list(range(40)), "cls": 0, "source": 1, "azimuth": -20, "elevation": 5})
    lab = project_labels(rows, 20, 0)
    assert lab["onscreen"].all()
    path = io.write_clip_metadata(tmp_path / "m.csv", lab.drop(columns="onscreen"))
    back = io.read_clip_metadata(path)
    assert back["x"].tolist() == lab["x"].astype(int).tolist() and back["y"].tolist() == lab["y"].astype(int).tolist()

@pytest.mark.parametrize("drop", ["frame", "cls", "azimuth", "elevation"])
def test_project_labels_missing_columns(drop):
    rows = pd.DataFrame({"frame": [0], "cls": [0], "source": [1], "azimuth": [0], "elevation": [0]})
    with pytest.raises(MetadataError, match="lack"): project_labels(rows.drop(columns=drop), 0, 0)
