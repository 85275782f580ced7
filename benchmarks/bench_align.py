"""Throughput of the whole Spatial AV-Align path on CPU: decode, SELD, person detection, matching.

    python benchmarks/bench_align.py [--n 96] [--detector hog|oracle] [--seld level|model] [--seld-checkpoint PATH]
                                     [--keep DIR]

Writes N synthetic clips (a bright figure walking across a dark picture; a noise-burst source panned with it;
labels in metadata_bench/), then times, per clip and per stage:
  ours      decode once (savgbench.io.read_clip: frames + audio), SELD, detector on the decoded frames, vectorised
            matching (savgbench.align.spatial.match_seld_rows);
  baseline  the reference's way: frames read again with OpenCV seeking to each frame, audio decoded separately,
            SELD, detector, and the matching rule row by row in Python.
SELD is the SELD model of savgbench.seld.infer with --seld model (its built-in weights unless --seld-checkpoint),
or by default a stand-in stereo-level localiser (x from the left/right RMS ratio per 100 ms frame), named in the
output. Prints clips/s, seconds per stage, the ratio ours/baseline, and both scores (which must be equal).
"""
import argparse, math, shutil, sys, tempfile, time
from pathlib import Path

import cv2
import numpy as np

from savgbench.core import CLIP
from savgbench.io import write_clip, read_clip, read_clip_audio_int16
from savgbench.detect import make_detector, boxes_to_rows
from savgbench.align.spatial import match_seld_rows, spatial_av_align


def synth_clip(path, meta_path, rng):
    "A walking figure (head + body) and a panned noise-burst source that follows it; labels at 10 fps."
    T, S = CLIP.n_frames, CLIP.size
    x0, v = rng.uniform(40, 216), rng.uniform(-30, 30)            # px, px/s
    xs = np.clip(x0 + v * np.arange(T) / CLIP.fps, 20, 236)
    video = np.zeros((T, S, S, 3), np.uint8)
    video[:, 56:200] = rng.integers(20, 60, (1, 144, S, 3), dtype=np.uint8)      # a textured backdrop
    for k, x in enumerate(xs.astype(int)):
        cv2.circle(video[k], (x, 95), 11, (230, 200, 180), -1)
        cv2.rectangle(video[k], (x - 14, 108), (x + 14, 170), (60, 90, 200), -1)
        cv2.rectangle(video[k], (x - 12, 170), (x - 3, 198), (40, 40, 40), -1)
        cv2.rectangle(video[k], (x + 3, 170), (x + 12, 198), (40, 40, 40), -1)
    n = CLIP.n_samples; t = np.arange(n) / CLIP.sample_rate
    env = (np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6)) > -0.3).astype(np.float32)
    src = (rng.standard_normal(n).astype(np.float32) * 0.15 * env)
    xa = np.interp(t, np.arange(T) / CLIP.fps, xs)
    theta = xa / S * np.pi / 2
    audio = np.stack([src * np.cos(theta), src * np.sin(theta)]).astype(np.float32)
    write_clip(path, video, audio)
    lab = [(f, 0, float(np.interp(f / 10, np.arange(T) / CLIP.fps, xs)), 95.0 - 56 + 40) for f in range(50)
           if env[int(f / 10 * CLIP.sample_rate):int((f + 1) / 10 * CLIP.sample_rate)].mean() > 0.5]
    Path(meta_path).write_text("".join(f"{f},{c},{x:.2f},{y:.2f}\n" for f, c, x, y in lab))


def level_seld_rows(audio, sr=CLIP.sample_rate, thr=0.01):
    "Stand-in SELD: per 100 ms frame with RMS above thr, x = 256·(2/π)·atan2(rms_R, rms_L), class 0."
    hop = sr // 10
    n = audio.shape[1] // hop
    a = audio[:, :n * hop].reshape(2, n, hop)
    rms = np.sqrt((a.astype(np.float64) ** 2).mean(-1))
    on = rms.sum(0) > thr
    x = CLIP.size * (2 / math.pi) * np.arctan2(rms[1], rms[0])
    f = np.flatnonzero(on)
    return np.column_stack([f, np.zeros(len(f)), x[f]])


def rowwise_match(seld, det):
    "The rule written row by row, as the reference script runs it."
    tp = fn = 0
    for f, _, x in seld:
        f, x = int(f), int(x)
        hit = False
        if len(det):
            fo = int(np.round(f / 10 * 4)); fo = 19 if fo == 20 else fo
            for r in det:
                if fo - 1 <= r[0] <= fo + 1 and int(r[4]) >= x - 40 and int(r[2]) <= x + 40: hit = True; break
        tp += hit; fn += not hit
    return tp, fn


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--detector", choices=("hog", "oracle"), default="hog")
    ap.add_argument("--seld", choices=("level", "model"), default="level")
    ap.add_argument("--seld-checkpoint", default="demo", help="SELD weights (default: the built-in demo model)")
    ap.add_argument("--keep", help="keep the synthetic clips in this folder")
    a = ap.parse_args(argv)
    root = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="bench_align_"))
    vdir, mdir = root / "video_bench", root / "metadata_bench"
    vdir.mkdir(parents=True, exist_ok=True); mdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    paths = []
    for i in range(a.n):
        p = vdir / f"clip{i:04d}.mp4"
        if not p.exists(): synth_clip(p, mdir / f"clip{i:04d}.csv", rng)
        paths.append(p)
    print(f"{a.n} synthetic clips in {root} ({time.perf_counter() - t:.1f} s to write)")

    seld_fn, seld_name = None, "stand-in stereo-level localiser"
    if a.seld == "model":
        from savgbench.align.spatial import seld_rows_for
        seld_fn = lambda ps: seld_rows_for(ps, a.seld_checkpoint, progress=False)
        seld_name = f"savgbench.seld.infer ({'built-in weights' if a.seld_checkpoint == 'demo' else a.seld_checkpoint})"
    det = make_detector(a.detector)
    print(f"SELD: {seld_name}; detector: {a.detector}; torch threads: {__import__('torch').get_num_threads()}")
    det.boxes(paths[0], read_clip(paths[0]).video[..., ::-1])           # warm-up (OpenCV, imports)

    # ours: decode once, batched SELD (when the model is used), vectorised matching
    st = dict(decode=0.0, seld=0.0, detect=0.0, match=0.0)
    t0 = time.perf_counter()
    clips = []
    for p in paths:
        s = time.perf_counter(); c = read_clip(p); st["decode"] += time.perf_counter() - s
        clips.append((p, c))
    s = time.perf_counter()
    seld = seld_fn(paths) if seld_fn else {p.stem: level_seld_rows(c.audio) for p, c in clips}
    st["seld"] += time.perf_counter() - s
    triples = []
    for p, c in clips:
        s = time.perf_counter(); d = boxes_to_rows(det.boxes(p, np.ascontiguousarray(c.video[..., ::-1])))
        st["detect"] += time.perf_counter() - s
        triples.append((p.stem, seld[p.stem], d))
    s = time.perf_counter(); res = spatial_av_align(triples); st["match"] += time.perf_counter() - s
    ours = time.perf_counter() - t0
    del clips

    # baseline: the reference's reading pattern and row-by-row matching
    sb = dict(decode=0.0, seld=0.0, detect=0.0, match=0.0)
    t0 = time.perf_counter()
    tp = fn = 0
    for p in paths:
        s = time.perf_counter()
        cap = cv2.VideoCapture(str(p)); frames = []
        for k in range(CLIP.n_frames):
            cap.set(cv2.CAP_PROP_POS_FRAMES, k); ok, f = cap.read(); frames.append(f)
        cap.release()
        audio = read_clip_audio_int16(p)
        sb["decode"] += time.perf_counter() - s
        s = time.perf_counter()
        rows = seld_fn([p])[p.stem] if seld_fn else level_seld_rows(audio)
        sb["seld"] += time.perf_counter() - s
        s = time.perf_counter(); d = boxes_to_rows(det.boxes(p, np.stack(frames))); sb["detect"] += time.perf_counter() - s
        s = time.perf_counter(); a_, b_ = rowwise_match(rows, d); tp += a_; fn += b_; sb["match"] += time.perf_counter() - s
    base = time.perf_counter() - t0

    print(f"\n{'':10s}{'clips/s':>9s}{'decode':>9s}{'seld':>9s}{'detect':>9s}{'match':>9s}   (s per clip)")
    for name, tot, stages in (("ours", ours, st), ("baseline", base, sb)):
        print(f"{name:10s}{a.n / tot:9.2f}" + "".join(f"{stages[k] / a.n:9.4f}" for k in ("decode", "seld", "detect", "match")))
    print(f"\nspeed-up ours/baseline: {base / ours:.2f}x overall; matching {sb['match'] / max(st['match'], 1e-9):.1f}x; "
          f"decode {sb['decode'] / st['decode']:.2f}x")
    print(f"Spatial AV-Align ours: {res.score} ({res.tp} TP / {res.total});  baseline: {tp / max(tp + fn, 1)} ({tp} TP / {tp + fn})")
    if not a.keep: shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
