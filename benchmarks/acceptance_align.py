"""Acceptance numbers of the alignment metrics on a synthetic SAVGBench dataset (issue 4).

    python benchmarks/acceptance_align.py VIDEO_DIR [--seld-checkpoint PATH] [--every K] [--limit N] [--shift 0.5]
                                          [--work DIR] [--out FILE]

VIDEO_DIR is a built clip folder (`video_*/NAME.mp4`, with its labels in the sibling `metadata_*/`), e.g. the
synthetic dataset made by savgbench.synth + savgbench.build. SELD rows come from the built-in model
(savgbench.seld.infer.seld_predict_dir; --seld-checkpoint picks the weights). It reports:
  1. Spatial AV-Align, built-in SELD + oracle detector                      (expected >= 0.85)
  2. the same with the stereo channels of every clip swapped               (expected <  0.5)
  3. Spatial AV-Align, built-in SELD + HOG detector                         (reported)
  4. Temporal AV-Align of the clips, and with the audio delayed by --shift s (both reported)
and writes them as JSON with --out. Swapped and shifted copies are written (PCM audio, no second lossy encode)
under --work (a temporary folder by default).
"""
import argparse, json, shutil, sys, tempfile, time
from pathlib import Path

import numpy as np

from savgbench.core import CLIP
from savgbench.io import read_clip, write_clip
from savgbench.detect import list_videos, make_detector
from savgbench.align.spatial import spatial_av_align, seld_rows_for
from savgbench.align.temporal import temporal_av_align


def transformed_copies(paths, out_dir, fn):
    out_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        c = read_clip(p)
        q = out_dir / p.name
        write_clip(q, c.video, fn(c.audio), fps=c.fps, sample_rate=c.sample_rate, audio_codec="pcm")
        out.append(q)
    return out


def delay(audio, seconds, sr=CLIP.sample_rate):
    n = int(round(seconds * sr))
    return np.concatenate([np.zeros((audio.shape[0], n), audio.dtype), audio[:, :audio.shape[1] - n]], 1)


def spatial(paths, seld, detector):
    rows = detector(paths, progress=True)
    return spatial_av_align((p.stem, seld[p.stem], rows[p.stem]) for p in paths)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("video_dir")
    ap.add_argument("--seld-checkpoint", default="demo", help="SELD weights (default: the built-in demo model)")
    ap.add_argument("--every", type=int, default=1, help="take every K-th clip (sorted by name)")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--shift", type=float, default=0.5, help="audio delay for the temporal check (s)")
    ap.add_argument("--work")
    ap.add_argument("--out")
    a = ap.parse_args(argv)
    paths = list_videos(a.video_dir)[::a.every][:a.limit]
    video_dir = paths[0].parent
    meta_dir = video_dir.parent / video_dir.name.replace("video", "metadata")
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="acceptance_align_"))
    res, t0 = {"n_clips": len(paths), "video_dir": str(video_dir)}, time.time()

    seld = seld_rows_for(paths, a.seld_checkpoint)
    oracle = make_detector("oracle", metadata_dir=meta_dir)
    r = spatial(paths, seld, oracle)
    res["spatial_oracle"] = dict(score=r.score, tp=r.tp, fn=r.fn)
    print(f"1. Spatial AV-Align, SELD + oracle:         {r.score}  ({r.tp} TP / {r.total})  [want >= 0.85]")

    swapped = transformed_copies(paths, work / "video_swapped", lambda x: x[::-1].copy())
    seld_sw = seld_rows_for(swapped, a.seld_checkpoint)
    r = spatial(swapped, seld_sw, oracle)
    res["spatial_oracle_swapped"] = dict(score=r.score, tp=r.tp, fn=r.fn)
    print(f"2. ... with stereo channels swapped:        {r.score}  ({r.tp} TP / {r.total})  [want < 0.5]")

    r = spatial(paths, seld, make_detector("hog"))
    res["spatial_hog"] = dict(score=r.score, tp=r.tp, fn=r.fn)
    print(f"3. Spatial AV-Align, SELD + HOG:            {r.score}  ({r.tp} TP / {r.total})")

    t = temporal_av_align(paths)
    shifted = transformed_copies(paths, work / "video_shifted", lambda x: delay(x, a.shift))
    ts = temporal_av_align(shifted)
    res["temporal"] = dict(score=t.score, n_undefined=t.n_undefined)
    res["temporal_shifted"] = dict(score=ts.score, n_undefined=ts.n_undefined, shift_s=a.shift)
    print(f"4. Temporal AV-Align:                       {t.score}  ({t.n_undefined} files without peaks)")
    print(f"   ... audio delayed by {a.shift} s:            {ts.score}  ({ts.n_undefined} files without peaks)")

    res["checks"] = dict(oracle_ge_0_85=(res["spatial_oracle"]["score"] or 0) >= 0.85,
                         swapped_lt_0_5=(res["spatial_oracle_swapped"]["score"] or 1) < 0.5)
    res["seconds"] = round(time.time() - t0, 1)
    print(json.dumps(res["checks"]))
    if a.out: Path(a.out).write_text(json.dumps(res, indent=1) + "\n")
    if not a.work: shutil.rmtree(work)
    return 0 if all(res["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
