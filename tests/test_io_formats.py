"""Behaviours of the clip / label I/O (savgbench.io) that tests/test_io.py leaves open: the writers' refusals and
rounding, the validator's limits, the CSV formats' ranges, types and column order, and the folder listings."""
import shutil, warnings
from fractions import Fraction
from pathlib import Path

import numpy as np, pandas as pd, pytest, soundfile as sf

from savgbench.core import SAVGBenchError, ClipFormatError, AudioFormatError, MetadataError, ClipSpec

import savgbench.io as IO


def _frames(T=20, H=256, W=256):
    "Frames with some texture, the frame index in the red level (10 per frame)."
    yy, xx = np.mgrid[:H, :W]
    return np.stack([np.stack([np.full_like(xx, 10 * t), yy % 256, (xx * 3) % 256], -1) for t in range(T)]).astype(np.uint8)


def _tone(n=80000, ch=2):
    t = np.arange(n) / 16000
    return np.stack([0.3 * np.sin(2 * np.pi * (300 + 100 * c) * t) for c in range(ch)]).astype(np.float32)


def _msgs(path, **kw):
    return [e.msg for e in IO.clip_problems(path, **kw)[1]]


# ---- writing clips ---------------------------------------------------------------------------------------------

def test_write_clip_refuses_arrays_that_are_not_rgb_frames_or_float_audio(tmp_path):
    p, v, a = tmp_path / "x.mp4", _frames(T=4, H=16, W=16), _tone(n=4000)
    with pytest.raises(ClipFormatError, match=r"\(T, H, W, 3\)"): IO.write_clip(p, np.concatenate([v, v[..., :1]], -1), a)   # RGBA
    with pytest.raises(ClipFormatError, match="no frames"): IO.write_clip(p, v[:0], a)
    with pytest.raises(ClipFormatError, match="even"): IO.write_clip(p, _frames(T=4, H=16, W=15), a)    # odd width
    with pytest.raises(AudioFormatError, match="1 or 2 channels"): IO.write_clip(p, v, np.zeros((3, 4000), np.float32))
    with pytest.raises(AudioFormatError, match="floating point"): IO.write_clip(p, v, (a * 32767).astype(np.int16))
    with pytest.raises(SAVGBenchError, match="unknown audio codec"): IO.write_clip(p, v, a, audio_codec="mp3")
    assert list(tmp_path.iterdir()) == []


def test_write_clip_takes_float64_audio(tmp_path):
    a = _tone(n=8000).astype(np.float64)
    p = IO.write_clip(tmp_path / "x.mp4", _frames(T=4, H=16, W=16), a, audio_codec="pcm")
    got = IO.read_clip(p, validate=False).audio
    assert got.shape == (2, 8000) and np.abs(got - a).max() <= 1 / 32767
    got = IO.read_clip(IO.write_clip(tmp_path / "y.mp4", _frames(T=4, H=16, W=16), a), validate=False).audio   # AAC
    assert got.shape == (2, 8000) and np.abs(got[:, 1000:7000] - a[:, 1000:7000]).max() < 0.05


def test_the_default_audio_encoding_is_aac_at_192_kbps(tmp_path):
    "The AAC encoder is deterministic, so the default is told by the audio packets: those of 192 kb/s given, not 128."
    import av
    v, a = _frames(T=4, H=16, W=16), (0.1 * np.random.default_rng(0).standard_normal((2, 16000))).astype(np.float32)
    def packets(p):
        with av.open(str(p)) as c: return [bytes(k) for k in c.demux(c.streams.audio[0]) if k.size]
    b = packets(IO.write_clip(tmp_path / "d.mp4", v, a))
    assert b == packets(IO.write_clip(tmp_path / "e.mp4", v, a, audio_bitrate=192_000))
    assert b != packets(IO.write_clip(tmp_path / "f.mp4", v, a, audio_bitrate=128_000))


def test_pcm_audio_is_clipped_then_rounded_to_16_bit_with_a_warning_for_samples_beyond_one(tmp_path):
    "Stored sample = round(clip(x, -1, 1) * 32767); read back as that integer / 32768 (FFmpeg's s16 -> float)."
    x = np.array([0.0, 1.0, -1.0, 1.5, -2.0, 0.6 / 32767, 1.4 / 32767, -0.6 / 32767, -1.6 / 32767, 0.5, 1000.7 / 32767])
    a = np.tile(x, 200)[None].repeat(2, 0).astype(np.float64)
    a[1] *= -1
    stored = np.array([0, 32767, -32767, 32767, -32767, 1, 1, -1, -2, 16384, 1001])   # by hand (0.5 * 32767 = 16383.5)
    want = np.tile(stored, 200)[None].repeat(2, 0) * np.array([[1], [-1]]) / 32768
    with pytest.warns(UserWarning, match="800 audio samples beyond ±1 are clipped"):     # 2 per period, 2 channels
        p = IO.write_clip(tmp_path / "x.mp4", _frames(T=4, H=16, W=16), a, audio_codec="pcm")
    got = IO.read_clip(p, validate=False).audio
    assert got.shape == a.shape and np.array_equal(got, want.astype(np.float32))
    with warnings.catch_warnings():                                   # exactly ±1 is in range: no warning
        warnings.simplefilter("error")
        IO.write_clip(tmp_path / "y.mp4", _frames(T=4, H=16, W=16), np.clip(a, -1, 1), audio_codec="pcm")


def test_the_two_writers_give_x264_their_quality_settings(tmp_path):
    "x264 records its settings in the stream: the dataset's clips at crf 18, the reference's (moviepy) at x264's 23."
    v, a = _frames(T=4, H=16, W=16), _tone(n=16000)
    assert b"crf=18.0 " in IO.write_clip(tmp_path / "a.mp4", v, a).read_bytes()
    assert b"crf=30.0 " in IO.write_clip(tmp_path / "b.mp4", v, a, crf=30).read_bytes()
    assert b"crf=23.0 " in IO.write_clip_reference(tmp_path / "c.mp4", v, a).read_bytes()



def test_the_reference_writer_rounds_the_frame_rate_to_two_decimals_as_moviepy(tmp_path):
    "moviepy passes `-r %.02f`: 30000/1001 fps is written as 29.97 fps."
    p = IO.write_clip_reference(tmp_path / "r.mp4", _frames(T=4, H=16, W=16), _tone(n=4000), fps=Fraction(30000, 1001))
    assert IO.probe_clip(p).fps == 29.97


# ---- ClipInfo, bars, Clip --------------------------------------------------------------------------------------

def test_clip_info_durations_and_bars_of_frames_of_other_sizes():
    info = IO.ClipInfo(Path("x.mp4"), fps=4.0, n_frames=20, sample_rate=16000, n_samples=88000)
    assert (info.video_seconds, info.audio_seconds) == (5.0, 5.5)
    assert IO.ClipInfo(Path("x.mp4")).video_seconds == 0.0 and IO.ClipInfo(Path("x.mp4")).audio_seconds == 0.0
    assert IO.bars_level(np.zeros((256, 128, 3), np.uint8)) is None          # not 256 x 256: no bars to measure
    assert IO.bars_level(np.zeros((128, 256, 3), np.uint8)) is None
    f = np.zeros((256, 256, 3), np.uint8); f[:48] = 20                       # BARS_BLACK is 24: these bars are black
    assert IO.bars_level(f) == 20.0 and IO.bars_level(f) <= IO.BARS_BLACK
    f[48:56] = 200; f[200:208] = 200                      # the 8 rows beside the picture (h264 blurs its edge there)
    assert IO.bars_level(f) == 20.0                         # are left out


def test_a_clip_is_named_by_its_file_name_without_extension():
    c = IO.Clip(np.zeros((1, 2, 2, 3), np.uint8), np.zeros((2, 4), np.float32), path=Path("d/fold3_room1.v2.mp4"))
    assert c.name == "fold3_room1.v2"
    assert repr(c) == "Clip('fold3_room1.v2', video=(1, 2, 2, 3) @ 4 fps, audio=(2, 4) @ 16000 Hz)"
    assert IO.Clip(c.video, c.audio).name is None


# ---- validating clips ------------------------------------------------------------------------------------------

def test_the_audio_duration_tolerance_is_80_ms(tmp_path):
    v = _frames(T=20, H=256, W=256)
    ok = IO.write_clip(tmp_path / "ok.mp4", v, _tone(n=80960))          # 5.06 s: within 0.08 s
    long = IO.write_clip(tmp_path / "long.mp4", v, _tone(n=81600))      # 5.10 s: 0.10 s too long
    assert IO.validate_clip(ok).n_samples == 80960 and _msgs(ok) == []
    assert _msgs(long) == ["wrong audio duration in seconds"]
    with pytest.raises(ClipFormatError, match=r"wrong audio duration in seconds \(found 5.1, expected 5"):
        IO.validate_clip(long)
    assert IO.validate_clip(long, tol_s=0.2).n_samples == 81600 and _msgs(long, tol_s=0.2) == []


def test_a_frame_of_the_right_width_but_the_wrong_height_is_the_wrong_size(tmp_path):
    p = IO.write_clip(tmp_path / "wide.mp4", _frames(T=20, H=128, W=256), _tone())
    with pytest.raises(ClipFormatError, match=r"wrong frame size \(width x height\) \(found 256x128, expected 256x256\)"):
        IO.validate_clip(p)


def test_a_single_frame_clip_is_checked_against_its_stream_frame_rate(tmp_path):
    "With one frame there are no steps to time: the stream's rate (8 fps here) is checked instead."
    p = IO.write_clip(tmp_path / "one.mp4", _frames(T=1), _tone(n=2000), fps=8)
    assert _msgs(p)[:2] == ["wrong video frame rate", "wrong number of video frames"]


def test_a_clip_without_audio_has_that_one_problem_and_validate_raises_the_first(tmp_path):
    import av
    p = tmp_path / "silent.mp4"
    with av.open(str(p), "w") as c:
        vs = c.add_stream("libx264", rate=4); vs.width = vs.height = 256; vs.pix_fmt = "yuv420p"
        for i, fr in enumerate(_frames(T=20)):
            f = av.VideoFrame.from_ndarray(fr, format="rgb24"); f.pts = i
            for pk in vs.encode(f): c.mux(pk)
        for pk in vs.encode(): c.mux(pk)
    assert _msgs(p) == ["no audio stream"]                   # nothing else can be checked without it
    q = IO.write_clip(tmp_path / "bad.mp4", _frames(T=12, H=128, W=128), _tone(n=16000, ch=1))
    assert _msgs(q)[0] == "wrong number of video frames"
    with pytest.raises(ClipFormatError) as e: IO.validate_clip(q)
    assert e.value.msg == "wrong number of video frames" and (e.value.found, e.value.expected) == (12, 20)


def test_nan_audio_samples_are_a_problem_unless_audio_values_are_not_checked(tmp_path):
    "Float PCM (a .mov) can carry NaN, which AAC cannot: such audio is named as what is wrong."
    import av
    p = tmp_path / "nan.mov"
    with av.open(str(p), "w") as c:
        vs = c.add_stream("libx264", rate=4); vs.width = vs.height = 256; vs.pix_fmt = "yuv420p"
        a = c.add_stream("pcm_f32le", rate=16000); a.layout = "stereo"
        for i in range(20):
            f = av.VideoFrame.from_ndarray(np.zeros((256, 256, 3), np.uint8), format="rgb24"); f.pts = i
            for k in vs.encode(f): c.mux(k)
        for k in vs.encode(): c.mux(k)
        x = np.zeros((1, 2 * 80000), np.float32); x[0, 1000:1010] = np.nan       # interleaved stereo
        for s in range(0, 80000, 1000):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[:, 2 * s:2 * s + 2000]), format="flt", layout="stereo")
            fr.sample_rate, fr.pts = 16000, s
            for k in a.encode(fr): c.mux(k)
        for k in a.encode(): c.mux(k)
    assert _msgs(p) == ["audio contains NaN or infinite samples"]
    assert _msgs(p, check_audio_values=False) == []


# ---- reading clips -----------------------------------------------------------------------------------------------

def test_a_zero_byte_file_is_said_to_be_empty(tmp_path):
    (tmp_path / "zero.mp4").write_bytes(b"")
    for read in (IO.probe_clip, IO.validate_clip, IO.read_clip, IO.read_audio):
        with pytest.raises(ClipFormatError, match=r"zero.mp4: .* is empty \(0 bytes\)"): read(tmp_path / "zero.mp4")


def test_read_clip_validates_against_the_spec_it_is_given(tmp_path):
    v = _frames(T=12)
    p = IO.write_clip(tmp_path / "short.mp4", v, _tone(n=48000))        # 3 s: 12 frames
    with pytest.raises(ClipFormatError, match="wrong number of video frames"): IO.read_clip(p)
    assert IO.read_clip(p, validate=False).video.shape == (12, 256, 256, 3)
    c = IO.read_clip(p, spec=ClipSpec(n_frames=12))
    assert c.video.shape == (12, 256, 256, 3) and c.audio.shape == (2, 48000) and (c.fps, c.sample_rate) == (4.0, 16000)
    assert c.name == "short"


def test_read_video_bgr_gives_the_frames_in_opencv_channel_order(tmp_path):
    v = _frames(T=6, H=32, W=32)
    v[..., 2] = 200                                                      # blue far from red: a swap shows
    p = IO.write_clip(tmp_path / "c.mp4", v, _tone(n=24000))
    frames, fps = IO.read_video_bgr(p)
    rgb = IO.read_clip_video(p)
    assert fps == 4.0 and len(frames) == 6
    assert np.array_equal(np.stack(frames), rgb[..., ::-1])
    assert abs(float(np.stack(frames)[..., 0].mean()) - 200) < 4            # channel 0 is blue
    with pytest.raises(ClipFormatError, match="video not found"): IO.read_video_bgr(tmp_path / "none.mp4")


def test_read_audio_returns_the_files_own_sample_rate(tmp_path):
    ints = np.array([[0, 1, -1, 32767, -32768, 12345], [5, -5, 100, -100, 2, -2]], np.int16)
    sf.write(str(tmp_path / "a.wav"), np.tile(ints, 100).T, 24000, subtype="PCM_16")
    x, sr = IO.read_audio(tmp_path / "a.wav")
    assert sr == 24000 and x.dtype == np.float32 and np.array_equal(x, np.tile(ints, 100) / 32768)
    x16 = IO.read_clip_audio_int16(tmp_path / "a.wav", sample_rate=None)
    assert np.array_equal(x16, np.tile(ints, 100) / 32768)



def test_int16_audio_of_a_lower_rate_is_resampled_up_to_the_asked_rate(tmp_path):
    t = np.arange(8000) / 8000
    sf.write(str(tmp_path / "8k.wav"), np.stack([0.3 * np.sin(2 * np.pi * 500 * t)] * 2, 1), 8000, subtype="PCM_16")
    x = IO.read_clip_audio_int16(tmp_path / "8k.wav")                     # 1 s at 8 kHz -> 1 s at 16 kHz
    assert x.shape == (2, 16000)
    tone = 0.3 * np.sin(2 * np.pi * 500 * np.arange(2000, 14000) / 16000)
    assert np.abs(x[0, 2000:14000] - tone).max() < 0.01


# ---- FOA -------------------------------------------------------------------------------------------------------

def test_foa_files_are_16_bit_pcm_clipped_to_one_and_four_channels_first(tmp_path):
    foa = np.array([[1.5, -1.5, 0.5], [0.25, 2.0, -3.0], [0, 0, 0], [-0.5, 1.0, -1.0]])
    IO.write_foa(tmp_path / "f.wav", foa)
    info = sf.info(str(tmp_path / "f.wav"))
    assert (info.subtype, info.channels, info.samplerate, info.frames) == ("PCM_16", 4, 24000, 3)
    back, sr = IO.read_foa(tmp_path / "f.wav")
    want = np.round(np.clip(foa, -1, 1) * 32767) / 32768                # libsndfile: x * 32767, read back / 32768
    assert sr == 24000 and back.shape == (4, 3) and np.abs(back - want).max() <= 1 / 32768
    with pytest.raises(AudioFormatError, match=r"\(4, N\)"): IO.write_foa(tmp_path / "t.wav", foa.T)   # (N, 4): refused
    assert not (tmp_path / "t.wav").exists()


def test_read_foa_refuses_an_empty_file_and_any_other_sample_rate(tmp_path):
    sf.write(str(tmp_path / "empty.wav"), np.zeros((0, 4)), 24000)
    with pytest.raises(AudioFormatError, match="FOA audio is empty"): IO.read_foa(tmp_path / "empty.wav")
    sf.write(str(tmp_path / "48k.wav"), np.zeros((10, 4)), 48000)
    with pytest.raises(AudioFormatError, match=r"found 48000, expected 24000"): IO.read_foa(tmp_path / "48k.wav")
    assert IO.read_foa(tmp_path / "48k.wav", expected_sr=None)[1] == 48000


# ---- 360° video ----------------------------------------------------------------------------------------------------

def test_equirect_frame_index_is_clamped_and_frames_past_the_end_are_an_error(tmp_path):
    p = IO.write_clip(tmp_path / "eq.mp4", np.zeros((5, 32, 64, 3), np.uint8), np.zeros((2, 16000), np.float32), fps=5)
    ev = IO.EquirectVideo(p)
    assert (ev.n_frames, ev.fps) == (5, 5)
    assert [ev.frame_index(t) for t in (-1, Fraction(-1, 20), Fraction(1, 10), Fraction(3, 10), 100)] == [0, 0, 1, 2, 4]
    with pytest.raises(ClipFormatError, match=r"ended before the wanted frames \(found 5 frames, expected frame 9\)"):
        list(ev.iter_frames([2, 9]))
    assert list(ev.iter_frames([])) == []


def test_an_equirect_video_is_2_to_1_as_shown_not_as_stored(tmp_path):
    "A 96x64 picture of 4:3 pixels shows as 128x64 (2:1): accepted; the same picture of square pixels is refused."
    import av
    def write(path, sar):
        with av.open(str(path), "w") as c:
            vs = c.add_stream("libx264", rate=5); vs.width, vs.height, vs.pix_fmt = 96, 64, "yuv420p"
            if sar: vs.codec_context.sample_aspect_ratio = sar
            for i in range(3):
                f = av.VideoFrame.from_ndarray(np.zeros((64, 96, 3), np.uint8), format="rgb24"); f.pts = i
                for k in vs.encode(f): c.mux(k)
            for k in vs.encode(): c.mux(k)
        return path
    ev = IO.EquirectVideo(write(tmp_path / "sar.mp4", Fraction(4, 3)))
    assert (ev.width, ev.height, ev.n_frames) == (96, 64, 3)
    with pytest.raises(ClipFormatError, match="not an equirectangular"): IO.EquirectVideo(write(tmp_path / "sq.mp4", None))


# ---- label CSVs ----------------------------------------------------------------------------------------------------

def test_empty_seld_and_detection_tables_have_the_format_columns_and_integer_frames(tmp_path):
    (tmp_path / "e.csv").write_bytes(b"")
    s, d = IO.read_seld_csv(tmp_path / "e.csv"), IO.read_detections_csv(tmp_path / "e.csv")
    assert list(s.columns) == ["frame", "cls", "x"] and list(d.columns) == ["frame", "cls", "x0", "y0", "x1", "y1"]
    assert [str(t) for t in s.dtypes] == ["int64", "int64", "float64"]
    assert [str(t) for t in d.dtypes] == ["int64", "int64"] + ["float64"] * 4
    (tmp_path / "w.csv").write_text("0,0\n")
    with pytest.raises(MetadataError, match=r"found 2, expected 3"): IO.read_seld_csv(tmp_path / "w.csv")
    (tmp_path / "d5.csv").write_text("0,0,1,2,3\n")
    with pytest.raises(MetadataError, match=r"found 5, expected 6"): IO.read_detections_csv(tmp_path / "d5.csv")
    (tmp_path / "dc.csv").write_text("0,0.5,1,2,3,4\n")
    with pytest.raises(MetadataError, match="column 'cls' of detections CSV must hold integers"):
        IO.read_detections_csv(tmp_path / "dc.csv")


def test_integer_columns_written_as_decimals_come_back_as_integers(tmp_path):
    (tmp_path / "m.csv").write_text("3.0,9.0,10.5,70\n4,1,11,71\n")
    m = IO.read_clip_metadata(tmp_path / "m.csv")
    assert str(m.frame.dtype) == "int64" and str(m.cls.dtype) == "int64" and m.cls.tolist() == [9, 1]
    assert m.x.tolist() == [10.5, 11.0]                                  # x, y are pixels: fractions kept
    (tmp_path / "m5.csv").write_text("0,0,10,70,40\n")
    with pytest.raises(MetadataError, match=r"found 5, expected 4 or 6"): IO.read_clip_metadata(tmp_path / "m5.csv")


def test_starss_labels_accept_the_ends_of_their_ranges_and_refuse_beyond(tmp_path):
    "13 classes (0..12), azimuth -180..180 and elevation -90..90 in whole degrees; 5 or 6 columns."
    f = tmp_path / "s.csv"
    f.write_text("0,12,0,-180,-90\n1,0,1,180,90\n")
    m = IO.read_starss_metadata(f)
    assert m.cls.tolist() == [12, 0] and m.azimuth.tolist() == [-180, 180] and m.elevation.tolist() == [-90, 90]
    for text, says in (("0,13,0,0,0\n", "cls out of range in row 1"), ("0,1,0,-181,0\n", "azimuth out of range in row 1"),
                       ("0,1,0,0,0\n1,1,0,0,91\n", "elevation out of range in row 2"),
                       ("0,1,0,30.5,0\n", "column 'azimuth' of STARSS23 metadata CSV must hold integers"),
                       ("0,1,0,30,0,150.5\n", "column 'distance' of STARSS23 metadata CSV must hold integers"),
                       ("0,1,0,30\n", "found 4, expected 5 or 6")):
        f.write_text(text)
        with pytest.raises(MetadataError, match=says.replace("(", r"\(")): IO.read_starss_metadata(f)


def test_starss_writer_rounds_to_integers(tmp_path):
    df = pd.DataFrame(dict(frame=[0, 1], cls=[1, 9], source=[0, 2], azimuth=[30.6, -30.6], elevation=[-4.4, 4.5]))
    IO.write_starss_metadata(tmp_path / "s.csv", df)
    assert (tmp_path / "s.csv").read_text() == "0,1,0,31,-4\n1,9,2,-31,4\n"     # numpy rounds half to even: 4.5 -> 4
    assert df.azimuth.tolist() == [30.6, -30.6]                                  # the caller's table is left alone


def test_csv_writers_put_columns_in_the_format_order_and_write_no_bytes_for_no_rows(tmp_path):
    df = pd.DataFrame(dict(y=[70.5], x=[10.25], cls=[9], frame=[3]))
    IO.write_clip_metadata(tmp_path / "m.csv", df)
    assert (tmp_path / "m.csv").read_text() == "3,9,10.25,70.5\n"
    IO.write_seld_csv(tmp_path / "s.csv", pd.DataFrame(dict(x=[12.5], frame=[7], cls=[1])))
    assert (tmp_path / "s.csv").read_text() == "7,1,12.5\n"
    IO.write_seld_csv(tmp_path / "e.csv", pd.DataFrame(columns=["frame", "cls", "x"]))
    assert (tmp_path / "e.csv").read_bytes() == b""
    IO.write_starss_metadata(tmp_path / "z.csv", pd.DataFrame(columns=list(IO.STARSS_COLUMNS[:5])))
    assert (tmp_path / "z.csv").read_bytes() == b""


def test_detections_keep_the_order_of_rows_within_a_frame_and_the_format_column_order():
    "Sorted by frame, stably: rows of one frame stay in the order given (50 rows, so numpy's quicksort would not)."
    rows = [[f, 0, float(k), 1, 2, 3] for k, f in enumerate([5, 1, 3] * 10 + [0, 2] * 10)]
    text = IO.format_detections_csv(np.array(rows))
    want = sorted(rows, key=lambda r: r[0])                                     # Python's sort is stable
    assert text.splitlines() == [f"{f},0,{x:.1f},1.0,2.0,3.0" for f, _, x, *_ in want]
    df = pd.DataFrame(dict(y1=[4.0], x1=[3.0], y0=[2.0], x0=[1.0], cls=[0], frame=[2]))
    assert IO.format_detections_csv(df) == "2,0,1.0,2.0,3.0,4.0\n"


# ---- clip folders ----------------------------------------------------------------------------------------------

def test_list_clips_is_the_folders_mp4_files_by_name(tmp_path):
    for n in ("z.mp4", "a.mp4", "m.mp4", "b.mov", "c.csv"): (tmp_path / n).touch()
    assert [p.name for p in IO.list_clips(tmp_path)] == ["a.mp4", "m.mp4", "z.mp4"]
    with pytest.raises(SAVGBenchError, match="clip folder does not exist"): IO.list_clips(tmp_path / "none")


def test_find_videos_orders_by_name_and_wants_an_extension(tmp_path):
    for n in ("z.mp4", "B.avi", "a.gif", "mp4", "x.mp4.csv"): (tmp_path / n).touch()
    (tmp_path / "sub").mkdir(); (tmp_path / "sub" / "c.mp4").touch()
    assert [p.relative_to(tmp_path).as_posix() for p in IO.find_videos(tmp_path)] == ["B.avi", "a.gif", "sub/c.mp4", "z.mp4"]


def test_folder_contents_names_six_kinds_then_dots(tmp_path):
    for k, ext in enumerate(("a", "b", "c", "d", "e", "f", "g")):
        for i in range(7 - k): (tmp_path / f"{i}.{ext}").touch()               # 7 .a, 6 .b, ... 1 .g
    (tmp_path / ".hidden").mkdir(); (tmp_path / ".hidden" / "x.mp4").touch()   # a hidden folder: not a file, not searched
    assert IO.folder_contents(tmp_path) == ("28 file(s), none a clip (7 .a, 6 .b, 5 .c, 4 .d, 3 .e, 2 .f, ...; "
                                            "1 hidden, the name starting with '.')")


def test_check_clips_lists_five_bad_clips_then_dots_and_says_them(tmp_path):
    for i in range(6): (tmp_path / f"bad{i}.mp4").write_bytes(b"junk" * 100)
    paths = sorted(tmp_path.iterdir())
    with pytest.raises(ClipFormatError) as e: IO.check_clips(paths, progress=False)
    s = str(e.value)
    assert s.startswith("6 of 6 clips are not SAVGBench clips") and all(f"bad{i}.mp4" in s for i in range(5))
    assert "bad5.mp4" not in s and "; ...; they cannot be read" in s and s.endswith("export or download them again, or leave them out")
    with pytest.raises(ClipFormatError) as e: IO.check_clips(paths[:2], progress=False, hint="fix " + IO.CONVERT)
    assert str(e.value).endswith("; fix they cannot be read (damaged or cut short, as an export or download that stopped "
                                 "leaves a file, or missing): export or download them again")
    broken = []
    assert IO.check_clips(paths[:2], skip_bad=True, progress=False, unreadable=broken)[0] == [] and broken == paths[:2]


def test_an_unreadable_clip_given_twice_is_not_told_to_be_converted(tmp_path, capsys):
    "A bad clip given twice is named and counted once (it was counted once as bad but twice as unreadable: 'convert the -1')."
    (tmp_path / "junk.mp4").write_bytes(b"junk" * 100)
    j = tmp_path / "junk.mp4"
    with pytest.raises(ClipFormatError) as e: IO.check_clips([j, j], progress=False)
    assert "-1" not in str(e.value) and "convert" not in str(e.value), e.value
    broken = []
    assert IO.check_clips([j, j], skip_bad=True, progress=False, unreadable=broken)[1].keys() == {str(j)} and broken == [j]
    assert IO.check_clips_cli([str(j), str(j), "--quiet"]) == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert "-1" not in last and "convert" not in last, last


def test_check_clips_and_its_command_read_a_list_file(tmp_path, capsys):
    for n in ("a.mp4", "b.mp4"): (tmp_path / n).write_bytes(b"junk" * 100)
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'a.mp4'}\n{tmp_path / 'b.mp4'}\n")
    good, bad = IO.check_clips(str(tmp_path / "list.txt"), skip_bad=True, progress=False)
    assert good == [] and sorted(bad) == [str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")]
    assert IO.check_clips_cli([str(tmp_path / "list.txt"), "--quiet"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("0 of 2 clips are SAVGBench clips; 2 are not")


def test_check_clips_notes_good_clips_without_black_bars_and_the_cli_status(tmp_path, capsys):
    v = _frames(T=20)                                          # a picture that fills the frame: light bars
    boxed = v.copy(); boxed[:, :56] = 0; boxed[:, 200:] = 0
    light, black = IO.write_clip(tmp_path / "light.mp4", v, _tone()), IO.write_clip(tmp_path / "black.mp4", boxed, _tone())
    unbarred = []
    assert IO.check_clips([light, black], progress=False, unbarred=unbarred) == ([light, black], {})
    assert [p for p, _ in unbarred] == [light] and unbarred[0][1] > IO.BARS_BLACK
    assert IO.check_clips_cli([str(black), "--quiet"]) == 0
    grey = boxed.copy(); grey[:, :56] = 32; grey[:, 200:] = 32           # bars an eighth of white: not black
    grey = IO.write_clip(tmp_path / "grey.mp4", grey, _tone()); unbarred = []
    assert IO.check_clips([grey], progress=False, unbarred=unbarred)[0] == [grey] and [p for p, _ in unbarred] == [grey]
    assert abs(unbarred[0][1] - 32) < 3
    (tmp_path / "junk.mp4").write_bytes(b"junk" * 100)
    assert IO.check_clips_cli([str(black), str(tmp_path / "junk.mp4"), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "1 of 2 clips are SAVGBench clips; 1 is not: it cannot be read" in out
    for n in "abcdef": shutil.copy(light, tmp_path / f"{n}.mp4")        # six clips without bars: five named
    assert IO.check_clips_cli([str(tmp_path / f"{n}.mp4") for n in "abcdef"] + ["--quiet"]) == 0
    note = capsys.readouterr().out.strip().splitlines()[-1]
    assert note.startswith("note: 6 of them show no black bars") and note.endswith("): a.mp4, b.mp4, c.mp4, d.mp4, e.mp4, ..."), note
