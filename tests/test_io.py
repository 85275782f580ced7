"""Bad inputs at the I/O boundary: every one must raise a SAVGBenchError subclass that names the file."""
import shutil
from pathlib import Path
import numpy as np, pandas as pd, pytest, soundfile as sf
from hypothesis import given, settings, strategies as st, HealthCheck

from savgbench.core import SAVGBenchError, ClipFormatError, AudioFormatError, MetadataError
from savgbench.io import (write_clip, read_clip, validate_clip, probe_clip, read_foa, read_clip_metadata,
                          read_starss_metadata, read_seld_csv, read_detections_csv, write_clip_metadata,
                          metadata_path_for, read_clip_audio_int16)

def _video(T=20, H=256, W=256):
    yy, xx = np.mgrid[:H, :W]
    return np.stack([np.stack([(xx + 7*t) % 256, yy % 256, np.full_like(xx, 90)], -1) for t in range(T)]).astype(np.uint8)

def _audio(n=80000, ch=2):
    t = np.arange(n) / 16000
    return np.stack([0.3*np.sin(2*np.pi*(300 + 100*c)*t) for c in range(ch)]).astype(np.float32)

@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clips")/"good.mp4", _video(), _audio())

def test_good_clip_validates(good):
    info = validate_clip(good)
    assert (info.n_frames, info.fps, info.sample_rate, info.channels, info.n_samples) == (20, 4.0, 16000, 2, 80000)

def test_truncated_mp4(good, tmp_path):
    bad = tmp_path/"trunc.mp4"; data = good.read_bytes()
    bad.write_bytes(data[:len(data)//2])
    with pytest.raises(ClipFormatError, match="trunc.mp4") as e: validate_clip(bad)
    assert "cut short" in str(e.value), e.value            # said, not only FFmpeg's 'Invalid data found'

def test_dangling_link_is_a_bad_clip(good, tmp_path):
    from savgbench.io import find_videos, check_clips
    (tmp_path/"a.mp4").symlink_to(good); (tmp_path/"b.mp4").symlink_to(tmp_path/"gone.mp4")
    assert [p.name for p in find_videos(tmp_path)] == ["a.mp4", "b.mp4"]      # not left out without a word
    ok, bad = check_clips(tmp_path, skip_bad=True, progress=False)
    assert [p.name for p in ok] == ["a.mp4"] and "link to a file that does not exist" in bad[str(tmp_path/"b.mp4")]
    from savgbench.evaluate import scan_clips                # evaluate lists it among the failures, saying so
    assert [e.error is not None and "link to a file that does not exist" in e.error for e in scan_clips(tmp_path, "gen")] == [False, True]
    from savgbench.detect import list_videos                 # the link itself as the argument
    with pytest.raises(SAVGBenchError, match="a link to a file or folder that cannot be reached"): list_videos(tmp_path/"b.mp4")

def test_links_that_loop(good, tmp_path):
    "A link to itself is named as a loop; a link to a folder above it is not walked again (it listed each clip 40 times)."
    from savgbench.io import find_videos, check_clips
    (tmp_path/"a.mp4").symlink_to(good); (tmp_path/"loop.mp4").symlink_to(tmp_path/"loop.mp4")
    (tmp_path/"sub").mkdir(); (tmp_path/"sub"/"up").symlink_to(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in find_videos(tmp_path)] == ["a.mp4", "loop.mp4"]
    ok, bad = check_clips(tmp_path, skip_bad=True, progress=False)
    assert [p.name for p in ok] == ["a.mp4"] and "a link that loops" in bad[str(tmp_path/"loop.mp4")], bad

def _write_avi(path, video, audio, vcodec, acodec, options=None):
    "An AVI as other tools write them (h264 with B-frames and PCM; mpeg4 and MP3), through PyAV."
    import av
    with av.open(str(path), "w") as c:
        v = c.add_stream(vcodec, rate=4); v.width, v.height, v.pix_fmt = 256, 256, "yuv420p"
        if options: v.options = options
        a = c.add_stream(acodec, rate=16000); a.layout = "stereo"
        for f in video:
            for p in v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")): c.mux(p)
        for p in v.encode(): c.mux(p)
        pcm = (audio.T * 32767).astype(np.int16)
        for s in range(0, len(pcm), 1024):
            fr = av.AudioFrame.from_ndarray(pcm[s:s + 1024].reshape(1, -1), format="s16", layout="stereo")
            fr.sample_rate, fr.pts = 16000, s
            for p in a.encode(fr): c.mux(p)
        for p in a.encode(): c.mux(p)
    return path

def test_avi_frames_are_timed_by_their_index(tmp_path):
    "AVI has no presentation times: FFmpeg's, delayed by B-frames, made such clips 'not evenly spaced'."
    p = _write_avi(tmp_path / "c.avi", _video(), _audio(), "libx264", "pcm_s16le", {"bf": "2"})
    info = validate_clip(p)
    assert info.n_frames == 20 and np.allclose(np.diff(info.frame_times), 0.25) and info.frame_times[0] == 0
    src, v = _video().astype(float), read_clip(p).video.astype(float)   # and the frames come in their order
    nearest = [int(np.argmin(np.abs(src - f).mean(axis=(1, 2, 3)))) for f in v]
    assert nearest == list(range(20)), nearest

def test_an_avi_with_a_dropped_frame_is_refused(tmp_path):
    "mpeg4 + MP3 as PyAV's muxer writes it: 21 frame slots, one empty (the frame before shown twice), 20 frames."
    import av
    p = _write_avi(tmp_path / "c.avi", _video(), _audio(), "mpeg4", "libmp3lame")
    with av.open(str(p)) as c: assert c.streams.video[0].frames == 21
    with pytest.raises(ClipFormatError, match="not evenly spaced"): validate_clip(p)

def test_garbage_and_empty_files(tmp_path):
    (tmp_path/"garbage.mp4").write_bytes(b"not an mp4 at all" * 50)
    (tmp_path/"empty.mp4").write_bytes(b"")
    with pytest.raises(ClipFormatError, match="garbage.mp4"): validate_clip(tmp_path/"garbage.mp4")
    with pytest.raises(ClipFormatError, match="empty"): read_clip(tmp_path/"empty.mp4")

@pytest.mark.parametrize("kw,msg", [
    (dict(fps=8), "frame rate"),
])
def test_wrong_fps(tmp_path, kw, msg):
    p = write_clip(tmp_path/"x.mp4", _video(T=40), _audio(), **kw)
    with pytest.raises(ClipFormatError, match=msg) as e: validate_clip(p)
    assert e.value.found == 8.0 and e.value.expected == 4 and "x.mp4" in str(e.value)

def test_wrong_frame_count_and_size(tmp_path):
    p = write_clip(tmp_path/"short.mp4", _video(T=12), _audio())
    with pytest.raises(ClipFormatError, match="number of video frames"): validate_clip(p)
    p = write_clip(tmp_path/"small.mp4", _video(H=128, W=128), _audio())
    with pytest.raises(ClipFormatError, match="128x128"): validate_clip(p)

def test_mono_and_wrong_rate(tmp_path):
    p = write_clip(tmp_path/"mono.mp4", _video(), _audio(ch=1))
    with pytest.raises(ClipFormatError, match=r"channels \(found 1, expected 2\)"): validate_clip(p)
    p = write_clip(tmp_path/"44k.mp4", _video(), _audio(n=220500), sample_rate=44100)
    with pytest.raises(ClipFormatError, match=r"sample rate \(found 44100, expected 16000 "): validate_clip(p)

def test_wrong_duration(tmp_path):
    p = write_clip(tmp_path/"long.mp4", _video(), _audio(n=96000))
    with pytest.raises(ClipFormatError, match="duration"): validate_clip(p)

def test_no_audio_stream(tmp_path):
    import av
    p = tmp_path/"silent.mp4"
    with av.open(str(p), "w") as c:
        vs = c.add_stream("libx264", rate=4); vs.width = vs.height = 256; vs.pix_fmt = "yuv420p"
        for i, fr in enumerate(_video()):
            f = av.VideoFrame.from_ndarray(fr, format="rgb24"); f.pts = i
            for pk in vs.encode(f): c.mux(pk)
        for pk in vs.encode(): c.mux(pk)
    with pytest.raises(ClipFormatError, match="no audio stream"): validate_clip(p)

def test_writer_rejects_bad_arrays(tmp_path):
    with pytest.raises(AudioFormatError): write_clip(tmp_path/"a.mp4", _video(), _audio()[None])
    with pytest.raises(AudioFormatError, match="NaN"): write_clip(tmp_path/"a.mp4", _video(), np.full((2, 80000), np.nan, np.float32))
    with pytest.raises(ClipFormatError): write_clip(tmp_path/"a.mp4", _video()[0], _audio())
    with pytest.raises(ClipFormatError, match="even"): write_clip(tmp_path/"a.mp4", _video(H=255), _audio())
    assert list(tmp_path.iterdir()) == []            # nothing half-written

def test_same_input_same_bytes(tmp_path):
    a = write_clip(tmp_path/"a.mp4", _video(), _audio()); b = write_clip(tmp_path/"b.mp4", _video(), _audio())
    assert a.read_bytes() == b.read_bytes()

def _aac_decoded(n):
    "Samples FFmpeg decodes from n samples of AAC: 1024-sample frames after 1024 of priming (dropped); the padding kept."
    return -(-(n + 1024) // 1024) * 1024 - 1024

def test_int16_decode_is_quantised(good):
    x = read_clip_audio_int16(good)                       # (as the reference reads it: with the encoder's padding)
    assert x.dtype == np.float32 and x.shape == (2, _aac_decoded(80000))
    assert np.array_equal(x * 32768, np.round(x * 32768))

def test_int16_decode_resamples(tmp_path):
    "48 kHz audio comes back at 16 kHz band-limited, not decimated: a 10 kHz tone is removed, not folded onto 6 kHz."
    t = np.arange(240000) / 48000
    a = np.stack([0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 10000 * t)] * 2).astype(np.float32)
    p = write_clip(tmp_path/"48k.mp4", _video(), a, sample_rate=48000)
    def level(x, sr, f):                                  # amplitude of the tone at f Hz over the middle 4 s
        seg = x[0, sr // 2:sr // 2 + 4 * sr]
        return 2 * np.abs(np.fft.rfft(seg))[round(f * 4)] / len(seg)
    x48 = read_clip_audio_int16(p, sample_rate=None)
    assert x48.shape == (2, _aac_decoded(240000)) and level(x48, 48000, 10000) > 0.25   # the file does carry the 10 kHz tone
    x = read_clip_audio_int16(p, sample_rate=16000, encoder_tail=False)
    assert x.shape == (2, 80000)
    assert abs(level(x, 16000, 1000) - 0.3) < 0.02 and level(x, 16000, 6000) < 0.003
    tone = 0.3 * np.sin(2 * np.pi * 1000 * np.arange(8000, 72000) / 16000)
    assert np.abs(x[:, 8000:72000] - tone).max() < 0.02                       # in time: no delay from the resampler

def test_decoded_audio_is_not_shifted(tmp_path):
    "Sample n decoded is sample n written (AAC's priming removed), tested with noise: it matches one shift only."
    noise = (0.1 * np.random.default_rng(0).standard_normal((2, 80000))).astype(np.float32)
    p = write_clip(tmp_path/"noise.mp4", _video(), noise)
    for got, n in ((read_clip(p).audio, 80000), (read_clip_audio_int16(p), _aac_decoded(80000)),   # (the encoder's
                   (read_clip_audio_int16(p, encoder_tail=False), 80000)):                       # padding kept)
        assert got.shape == (2, n)
        seg = got[0, 20000:60000]
        shift = np.argmax([seg @ noise[0, 20000 + k:60000 + k] for k in range(-2048, 2049)]) - 2048
        assert shift == 0, shift

def test_foa_errors(tmp_path):
    with pytest.raises(AudioFormatError, match="does not exist"): read_foa(tmp_path/"none.wav")
    (tmp_path/"junk.wav").write_bytes(b"RIFF....")
    with pytest.raises(AudioFormatError, match="junk.wav"): read_foa(tmp_path/"junk.wav")

def test_missing_metadata(tmp_path):
    vid = tmp_path/"video_dev"/"clip.mp4"
    with pytest.raises(MetadataError, match="clip.csv"): read_clip_metadata(metadata_path_for(vid))
    with pytest.raises(MetadataError): metadata_path_for(tmp_path/"clips"/"clip.mp4")

def test_empty_csvs(tmp_path):
    (tmp_path/"e.csv").write_text("\n")
    with pytest.raises(MetadataError, match="empty"): read_clip_metadata(tmp_path/"e.csv")
    with pytest.raises(MetadataError, match="empty"): read_starss_metadata(tmp_path/"e.csv")
    assert len(read_seld_csv(tmp_path/"e.csv")) == 0 and len(read_detections_csv(tmp_path/"e.csv")) == 0

def test_clip_metadata_roundtrip(tmp_path):
    df = pd.DataFrame(dict(frame=[0, 1, 2], cls=[0, 0, 9], x=[10, 11, 12], y=[70, 70, 71], azi_rot=[40, 39, 38], ele_rot=[0, 0, 1]))
    write_clip_metadata(tmp_path/"m.csv", df)
    assert (tmp_path/"m.csv").read_text().splitlines()[0] == "0,0,10,70,40,0"
    pd.testing.assert_frame_equal(read_clip_metadata(tmp_path/"m.csv"), df)

def test_csv_wrong_columns_and_fractional_frames(tmp_path):
    (tmp_path/"w.csv").write_text("0,0,10\n")
    with pytest.raises(MetadataError, match=r"found 3, expected 4 or 6"): read_clip_metadata(tmp_path/"w.csv")
    (tmp_path/"f.csv").write_text("0.5,0,10,20\n")
    with pytest.raises(MetadataError, match="integers"): read_clip_metadata(tmp_path/"f.csv")
    (tmp_path/"n.csv").write_text("-1,0,10,20\n")
    with pytest.raises(MetadataError, match="negative"): read_clip_metadata(tmp_path/"n.csv")

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_csv_fuzz_never_crashes_uncontrolled(tmp_path, data):
    p = tmp_path/"fuzz.csv"; p.write_bytes(data)
    for reader in (read_clip_metadata, read_starss_metadata, read_seld_csv, read_detections_csv):
        try: df = reader(p)
        except SAVGBenchError as e: assert "fuzz.csv" in str(e)
        else: assert isinstance(df, pd.DataFrame)


def _timed_clip(path, video_times, audio_start=0.0):
    "A 256x256 clip whose video frames carry the given presentation times (s) and whose audio starts at `audio_start`."
    import av
    from fractions import Fraction
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=4)
        vs.width = vs.height = 256; vs.pix_fmt = "yuv420p"; vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        a = c.add_stream("aac", rate=16000)
        a.layout = "stereo"
        for i, t in enumerate(video_times):
            f = av.VideoFrame.from_ndarray(np.full((256, 256, 3), 10 * i, np.uint8), format="rgb24")
            f.pts, f.time_base = round(t * 1000), Fraction(1, 1000)
            for p in vs.encode(f): c.mux(p)
        for p in vs.encode(): c.mux(p)
        n, start = 0, round(audio_start * 16000)
        while n < 80000:
            f = av.AudioFrame.from_ndarray(np.zeros((1, 2 * 1024), np.int16), format="s16", layout="stereo")
            f.sample_rate, f.pts, f.time_base = 16000, start + n, Fraction(1, 16000)
            for p in a.encode(f): c.mux(p)
            n += 1024
        for p in a.encode(): c.mux(p)
    return path


def test_frame_times_not_the_container_average_decide_the_frame_rate(tmp_path):
    assert validate_clip(_timed_clip(tmp_path / "even.mp4", [k / 4 for k in range(20)])).n_frames == 20
    vfr = [k / 10 for k in range(10)] + [1.0 + k * (3.75 / 9) for k in range(10)]   # 20 frames over 5 s: "4 fps"
    with pytest.raises(ClipFormatError, match="not evenly spaced"):
        validate_clip(_timed_clip(tmp_path / "vfr.mp4", vfr))


def test_audio_and_video_must_start_together(tmp_path):
    with pytest.raises(ClipFormatError, match="do not start together"):
        validate_clip(_timed_clip(tmp_path / "late.mp4", [1 + k / 4 for k in range(20)]))


def _problems(path):
    from savgbench.io import clip_problems
    return [e.msg for e in clip_problems(path)[1]]

def test_frames_jittering_by_10_ms_are_not_evenly_spaced(tmp_path):
    "The steps may differ by at most 2 % of a frame (5 ms at 4 fps); alternating 245/255 ms steps differ by 10 ms."
    times = np.cumsum([0] + [0.245 if k % 2 else 0.255 for k in range(19)])
    assert "video frames are not evenly spaced (variable frame rate?)" in _problems(_timed_clip(tmp_path / "j.mp4", times))


def test_audio_a_little_over_half_a_frame_late_does_not_start_with_the_video(tmp_path):
    "Half a frame at 4 fps is 0.125 s: video at 0.2 s and audio at 0 are apart; 0.1 s is within it."
    late = _problems(_timed_clip(tmp_path / "late.mp4", [0.2 + k / 4 for k in range(20)]))
    assert "audio and video do not start together" in late
    near = _problems(_timed_clip(tmp_path / "near.mp4", [0.1 + k / 4 for k in range(20)]))
    assert "audio and video do not start together" not in near


def test_unreadable_file_message_has_no_errno_noise(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(ClipFormatError) as e: validate_clip(tmp_path / "x.mp4")
    assert "Errno" not in str(e.value)


def test_infinite_values_in_csvs_are_refused(tmp_path):
    (tmp_path / "m.csv").write_text("0,0,inf,70,0,0\n")
    with pytest.raises(MetadataError, match="infinite"): read_clip_metadata(tmp_path / "m.csv")


def test_writing_audio_beyond_full_scale_warns(tmp_path):
    a = _audio(); a[0, :10] = 1.5
    with pytest.warns(UserWarning, match="10 audio samples beyond"): write_clip(tmp_path / "loud.mp4", _video(), a)

# The same pixels on every machine: FFmpeg's swscale and OpenCV pick SIMD code by the CPU, and their default rounding
# differs with it. A second process with FFmpeg's SIMD code switched off (av_force_cpu_flags(0)) and OpenCV's AVX code
# disabled stands in for another machine: the clip written, the frames read and the flow magnitudes must be the same.
_PROBE = r'''
import glob, hashlib, os, sys
import av, numpy as np
from savgbench.io import _avutil
if sys.argv[1] == "plain": _avutil().av_force_cpu_flags(0)
import cv2
from savgbench.io import write_clip, read_clip, read_clip_video, read_clip_audio_int16, array_to_frame
from savgbench.align.temporal import read_video_bgr, flow_trajectory
yy, xx = np.mgrid[:256, :256]
video = np.stack([np.stack([(xx * 3 + 5 * t) % 256, (yy + xx // 2) % 256, (90 + 40 * np.sin(xx / 9.0 + t)).astype(int)], -1)
                  for t in range(20)]).astype(np.uint8)
audio = 0.2 * np.sin(np.arange(80000)[None] / 7.0 + np.array([[0.0], [1.0]]))
p = write_clip(os.path.join(sys.argv[2], "c.mp4"), video, audio.astype(np.float32))
out = dict(file=hashlib.sha256(p.read_bytes()).hexdigest(),
           rgb=hashlib.sha256(read_clip_video(p).tobytes()).hexdigest(),
           audio=hashlib.sha256(read_clip(p).audio.tobytes()).hexdigest(),
           audio16=hashlib.sha256(read_clip_audio_int16(p).tobytes()).hexdigest(),
           yuv=hashlib.sha256(b"".join(bytes(pl) for pl in array_to_frame(video[3]).planes)).hexdigest(),
           flow=repr(flow_trajectory(read_video_bgr(p)[0]).tolist()),
           default_rgb=hashlib.sha256(np.stack([f.to_ndarray(format="rgb24") for f in av.open(str(p)).decode(video=0)]).tobytes()).hexdigest(),
           flags=int(_avutil().av_get_cpu_flags()),
           cv2_optimized=cv2.useOptimized())
print(repr(out))
'''

def test_pixels_and_flow_are_the_same_without_simd_code(tmp_path):
    import ast, subprocess, sys
    from savgbench.io import _avutil
    if _avutil() is None: pytest.skip("FFmpeg's libavutil was not found: its SIMD code cannot be switched off")
    res = {}
    for mode in ("auto", "plain"):
        d = tmp_path / mode; d.mkdir()
        env = {**__import__("os").environ, **({"OPENCV_CPU_DISABLE": "AVX512_SKX,AVX2,FMA3,AVX"} if mode == "plain" else {})}
        r = subprocess.run([sys.executable, "-c", _PROBE, mode, str(d)], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        res[mode] = ast.literal_eval(r.stdout.strip().splitlines()[-1])
    assert res["plain"]["flags"] == 0 and res["auto"]["flags"] != 0      # the second process really runs FFmpeg's C code
    for k in ("file", "rgb", "audio", "audio16", "yuv", "flow"):
        assert res["auto"][k] == res["plain"][k], k
    # and the two processes do stand for two machines: FFmpeg's default conversion differs between them where the CPU
    # has AVX2 (x86-64 machines of the last decade)
    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx2" in cpu: assert res["auto"]["default_rgb"] != res["plain"]["default_rgb"]

def test_x264_writes_what_its_c_code_writes(tmp_path, monkeypatch):
    """x264 picks its SIMD code by the CPU itself (av_force_cpu_flags does not reach it), and its AVX-512 code gives other
    frames than its AVX2 or C code: clips are written with its cpu-independent option, the bytes of its C code (asm=0)."""
    import savgbench.io as IO
    yy, xx = np.mgrid[:256, :256]                        # a moving blob on a texture (x264's AVX-512 code differs here)
    video = np.stack([np.stack([128 + 100 * np.exp(-((xx - 60 - 7 * t) ** 2 + (yy - 128 + 3 * t) ** 2) / 800.0)
                                + 20 * np.sin(yy / 13.0)] * 3, -1) for t in range(20)]).astype(np.uint8)
    a = write_clip(tmp_path / "a.mp4", video, _audio())
    made = IO._h264_stream
    def c_code(*args, **kw):
        vs = made(*args, **kw)
        assert vs.options.get("x264-params") == "cpu-independent=1"
        vs.options = {**vs.options, "x264-params": "asm=0"}
        return vs
    monkeypatch.setattr(IO, "_h264_stream", c_code)
    b = write_clip(tmp_path / "b.mp4", video, _audio())
    assert a.read_bytes() == b.read_bytes()

def test_a_rotated_video_is_refused_not_read_sideways(good, tmp_path):
    "A display-matrix rotation (phones write one) is applied by OpenCV's reader, not by ours: such a clip is refused."
    import av
    if not hasattr(av.VideoFrame, "rotation"): pytest.skip("this PyAV does not report a frame's rotation")
    from savgbench.io import clip_problems, read_video_bgr
    data = bytearray(good.read_bytes())
    k = data.find(b"tkhd")                       # the video track's header (the video stream is written first)
    assert k > 0 and data[k + 4] == 0            # version 0: the matrix starts 40 bytes after the version byte
    m = k + 4 + 4 + 4 * 5 + 8 + 8                # version/flags, 5 words (times, id, reserved, duration), reserved, layer..volume
    data[m:m + 36] = b"".join(v.to_bytes(4, "big") for v in (0, 0x00010000, 0, 0xFFFF0000, 0, 0, 0, 0, 0x40000000))
    bad = tmp_path / "rotated.mp4"; bad.write_bytes(bytes(data))
    _, problems = clip_problems(bad)
    assert [p.msg for p in problems] == ["the video carries a rotation (display matrix)"], problems
    with pytest.raises(ClipFormatError, match="rotation"): read_video_bgr(bad)
    assert clip_problems(good)[1] == []

def test_check_clips_tells_a_damaged_clip_from_one_of_another_format(good, tmp_path, capsys):
    """A clip cut short (an interrupted export or download) is not told to be converted: its advice is to export or
    download it again; a clip of another format is told to be converted; a set with both gets both, each counted."""
    from savgbench.io import check_clips, check_clips_cli
    cut = tmp_path/"cut.mp4"; data = good.read_bytes(); cut.write_bytes(data[:len(data) * 2 // 3])
    other = write_clip(tmp_path/"other.mp4", _video(T=16), _audio(n=64000))            # 4 s: another format
    assert check_clips_cli([str(cut), "--quiet"]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("0 of 1 clips are SAVGBench clips; 1 is not: it cannot be read (damaged or cut short"), last
    assert "export or download it again" in last and "convert" not in last, last
    assert check_clips_cli([str(other), "--quiet"]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == ("0 of 1 clips are SAVGBench clips; 1 is not: convert it (the README's 'Scoring your own generator' "
                    "gives an ffmpeg command)"), last
    assert check_clips_cli([str(cut), str(other), str(good), "--quiet"]) == 1
    last, = [l for l in capsys.readouterr().out.splitlines() if "clips are SAVGBench clips" in l]
    assert last.startswith("1 of 3 clips are SAVGBench clips; 2 are not: convert the 1 in another format (the README's"), last
    assert "; export or download again the 1 that cannot be read (damaged or cut short" in last, last
    with pytest.raises(ClipFormatError) as e: check_clips([cut], progress=False)              # the error says it too
    assert "cut.mp4" in str(e.value) and "export or download it again" in str(e.value) and "convert" not in str(e.value), e.value
    with pytest.raises(ClipFormatError) as e: check_clips([other], progress=False)
    assert str(e.value).endswith("; convert it (the README's 'Scoring your own generator' gives an ffmpeg command), or "
                                 "leave it out"), e.value


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg command on PATH to compare with")
def test_the_reference_audio_reading_is_what_the_ffmpeg_command_line_gives(tmp_path):
    """The reference's librosa.load(mp4) reads a clip's audio through audioread, that is the FFmpeg command line to
    16-bit samples. read_clip_audio_int16 must give the same samples, the AAC encoder's padding at the end included
    (FFmpeg does not trim it), for AAC and PCM clips alike."""
    import subprocess
    from savgbench.io import read_clip_audio_int16
    audio = (np.random.default_rng(5).standard_normal((2, 80000)) * 0.1).astype(np.float32)
    for codec in ("aac", "pcm"):
        p = write_clip(tmp_path / f"{codec}.mp4", np.zeros((20, 64, 64, 3), np.uint8), audio, audio_codec=codec)
        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(p), "-map", "0:a", "-f", "s16le", "-ac", "2", "-"],
                             capture_output=True, check=True).stdout
        cli = np.frombuffer(raw, np.int16).reshape(-1, 2).T.astype(np.float32) / 32768.0
        ours = read_clip_audio_int16(p)
        assert ours.shape == cli.shape and np.array_equal(ours, cli), (codec, ours.shape, cli.shape)
        assert (ours.shape[1] > 80000) == (codec == "aac")


# ---- clips written as the reference's sampler wrote them (moviepy 1.0.3 write_videofile) ----------------------------
def _moviepy_chunks(audio_tc, fps=16000, nbytes=4, chunksize=2000):
    """The int32 chunks moviepy 1.0.3 pipes to FFmpeg for `AudioArrayClip(audio_tc, fps).write_audiofile(..., nbytes=4,
    buffersize=2000)`, step by step as its `iter_chunks`, `to_soundarray` and `AudioArrayClip.make_frame` do."""
    duration = 1.0 * len(audio_tc) / fps
    totalsize = int(fps * duration)
    nchunks = totalsize // chunksize + 1
    pospos = np.linspace(0, totalsize, nchunks + 1, endpoint=True, dtype=int)
    for i in range(nchunks):
        tt = (1.0 / fps) * np.arange(pospos[i], pospos[i + 1])
        inds = (fps * tt).astype(int)
        inside = (inds > 0) & (inds < len(audio_tc))
        snd = np.zeros((len(tt), 2))
        snd[inside] = audio_tc[inds[inside]]
        snd = np.maximum(-0.99, np.minimum(0.99, snd))
        yield (2 ** (8 * nbytes - 1) * snd).astype({1: "int8", 2: "int16", 4: "int32"}[nbytes])

def _ref_clips():
    "Synthetic clips: noise with loud peaks (clipped at 0.99), two tones, and silence after a click."
    rng = np.random.default_rng(11)
    noise = (0.4 * rng.standard_normal((2, 80000))).astype(np.float32)
    t = np.arange(80000) / 16000
    tones = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 1250 * t)]).astype(np.float32)
    click = np.zeros((2, 80000), np.float32); click[:, 4000:4010] = 0.8
    video = _video()
    video[:, :56] = 0; video[:, 200:] = 0                               # letterboxed, as SAVGBench frames are
    moving = video.copy(); moving[:, 100:140, 60:120] = rng.integers(0, 256, (20, 40, 60, 3), dtype=np.uint8)
    return {"noise": (moving, noise), "tones": (video, tones), "click": (video[:, ::-1].copy(), click)}

def test_moviepy_audio_is_moviepys_chunked_quantisation():
    from savgbench.io import moviepy_audio
    rng = np.random.default_rng(2)
    for n in (80000, 79999, 80001, 12345, 2000, 1):
        a = (0.6 * rng.standard_normal((2, n))).astype(np.float32)
        want = np.concatenate(list(_moviepy_chunks(a.T)))
        got = moviepy_audio(a)
        assert got.dtype == np.int32 and np.array_equal(got, want), n

def test_reference_writer_makes_savgbench_clips_with_mp3_audio(tmp_path):
    """A clip written the reference's way is a SAVGBench clip (MP3 audio accepted where AAC is), the same bytes twice,
    its MP3 priming cut by an edit list (no delay) and its last MP3 frame kept whole."""
    import av
    from savgbench.io import write_clip_reference, check_clips, read_clip_video, clip_writer, moviepy_audio
    video, audio = _ref_clips()["noise"]
    p = write_clip_reference(tmp_path / "r.mp4", video, audio)
    info = validate_clip(p)
    assert (info.audio_codec, info.n_samples, info.audio_start, info.n_frames) == ("mp3float", 80096, 0.0, 20)
    assert check_clips([p], progress=False) == ([p], {})
    with av.open(str(p)) as c:
        a = c.streams.audio[0]
        assert (a.codec_context.bit_rate, a.codec_context.frame_size) == (48000, 576)
        pkts = [k for k in c.demux(a) if k.size]
    assert pkts[0].pts == -1105 and {k.duration for k in pkts} == {576} and len(pkts) == 141
    tail = read_clip_audio_int16(p)
    assert tail.shape == (2, 141 * 576 - 1105)
    assert np.array_equal(read_clip_audio_int16(p, encoder_tail=False), tail[:, :80096])
    q = moviepy_audio(audio).T / 2 ** 31                               # no delay: the best match is at lag 0
    corr = [np.corrcoef(tail[0, 2000 + k:78000 + k], q[0, 2000:78000])[0, 1] for k in range(-3, 4)]
    assert int(np.argmax(corr)) == 3 and corr[3] > 0.6, corr
    assert np.abs(read_clip_video(p).astype(int) - video).mean() < 3
    assert write_clip_reference(tmp_path / "again.mp4", video, audio).read_bytes() == p.read_bytes()
    assert clip_writer("reference") is write_clip_reference and clip_writer("savgbench") is write_clip
    with pytest.raises(SAVGBenchError, match="unknown way of writing clips"): clip_writer("moviepy")
    with pytest.raises(AudioFormatError, match="stereo"): write_clip_reference(tmp_path / "m.mp4", video, audio[:1])

@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg command on PATH to compare with")
def test_reference_writer_decodes_as_moviepys_ffmpeg_command_lines(tmp_path):
    """moviepy 1.0.3's write_videofile runs two ffmpeg command lines (the audio to a temporary .mp3, then the frames with
    that .mp3 stream-copied into the mp4). Run them as moviepy builds them, fed through pipes as moviepy feeds them, and
    compare with write_clip_reference: the same MP3 packets, the same edit list, the same decoded audio sample for sample
    (with and without the encoder's tail), and frames within a fraction of a level (x264 threads and the command line's
    CPU-chosen conversion code differ)."""
    import subprocess as sp, av
    from savgbench.io import write_clip_reference, read_clip_video
    def packets(p):
        with av.open(str(p)) as c:
            s = c.streams.audio[0]
            return s.duration, [(k.pts, k.duration, bytes(k)) for k in c.demux(s) if k.size]
    for name, (video, audio) in _ref_clips().items():
        out, mp3 = tmp_path / f"{name}_moviepy.mp4", tmp_path / f"{name}TEMP_MPY_wvf_snd.mp3"
        cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "s32le", "-acodec", "pcm_s32le", "-ar", "16000", "-ac", "2",
               "-i", "-", "-vn", "-acodec", "libmp3lame", "-ar", "16000", "-strict", "-2", str(mp3)]
        sp.run(cmd, input=b"".join(c.tobytes() for c in _moviepy_chunks(audio.T)), check=True)
        cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-vcodec", "rawvideo", "-s", "256x256",
               "-pix_fmt", "rgb24", "-r", "%.02f" % 4, "-an", "-i", "-", "-i", str(mp3), "-acodec", "copy",
               "-vcodec", "libx264", "-preset", "medium", "-pix_fmt", "yuv420p", str(out)]
        sp.run(cmd, input=b"".join(np.ascontiguousarray(f).tobytes() for f in video), check=True)
        ours = write_clip_reference(tmp_path / f"{name}_ours.mp4", video, audio)
        assert packets(ours) == packets(out), name
        for tail in (True, False):
            a, b = read_clip_audio_int16(out, encoder_tail=tail), read_clip_audio_int16(ours, encoder_tail=tail)
            assert a.shape == b.shape and np.array_equal(a, b), (name, tail, a.shape, b.shape)
        for flags in ([], ["-cpuflags", "0"]):                   # as the reference's librosa.load reads it
            raw = sp.run(["ffmpeg", "-v", "error", *flags, "-i", str(ours), "-map", "0:a", "-f", "s16le", "-ac", "2", "-"],
                         capture_output=True, check=True).stdout
            d = np.abs(np.frombuffer(raw, np.int16).reshape(-1, 2).T / 32768.0 - read_clip_audio_int16(ours))
            # the MP3 decoder's SIMD code rounds a sample in ~1.4 % one step apart; its C code (ours) gives the same
            assert d.max() <= (1 / 32768 if not flags else 0), (name, flags, d.max())
        # the frames: converted to yuv420p by swscale's bicubic filter in its exact code here, in this CPU's code by the
        # command line (one level apart in ~2 % of the YUV samples, which x264 then codes a little differently: 0.36 to
        # 0.56 levels apart on average after decoding, on an AVX2 machine)
        diff = np.abs(read_clip_video(out).astype(int) - read_clip_video(ours))
        assert diff.mean() < 0.75, (name, diff.mean())
