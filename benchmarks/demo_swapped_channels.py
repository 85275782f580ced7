"""The benchmark demo: evaluate a ground-truth set against itself and against a copy with the stereo channels swapped,
and print both Table-1 rows with every metric that can run offline here.

    python benchmarks/demo_swapped_channels.py [--n 16] [--source scenes|dataset] [--protocol v2] [--workdir DIR] [--seld-checkpoint demo|PATH] [--detector oracle|hog|yolox-tiny]

Clips: SELD's synthetic scenes (`savgbench.seld.train.synthetic_scene`: speech-like or instrument-like sound at a fixed
azimuth, with 10 fps labels) and a figure drawn at the label position; Spatial AV-Align uses the built-in demo SELD model
and the oracle detector by default (the benchmark's SELD and YOLOX weights cannot be downloaded here). Both sets are written by the same
encoder from the same decoded frames, so they differ only in the audio channel order. Expected: FVD/KVD equal (the
video is the same), FAD equal (AudioCLIP sums the two channels), Spatial AV-Align lower for the swapped copy (SELD
mirrors x), Temporal AV-Align equal (it downmixes to mono). Metrics whose weights or modules are missing are printed as
skipped with the reason.
"""
import argparse, json, tempfile, time
from pathlib import Path
import numpy as np

from savgbench.evaluate import evaluate, swapped_channel_pair, TABLE_HEADER, format_row
from savgbench.io import read_clip, write_clip


def scene_clips(folder: Path, n: int, seed: int = 0) -> str:
    """`n` clips of one speaker or instrument at a fixed azimuth (SELD's synthetic scenes: audio and 10 fps labels), a
    figure drawn at the label position (jittering, so the video has motion), labels in metadata_raw/."""
    from savgbench.seld.train import synthetic_scene
    from savgbench.io import write_clip_metadata
    from savgbench.core import CLIP
    rng = np.random.default_rng(seed)
    vdir, mdir = folder / "video_raw", folder / "metadata_raw"
    for i in range(n):
        audio, rows = synthetic_scene(rng, azimuth=float(rng.uniform(-40, 40)), cls=(0, 9)[i % 2])
        x, y = float(rows["x"].median()), float(rows["y"].median()) + CLIP.pad_top
        video = np.zeros((CLIP.n_frames, CLIP.size, CLIP.size, 3), np.uint8)
        video[:, CLIP.pad_top:CLIP.pad_top + CLIP.picture_h] = 50
        for f in range(CLIP.n_frames):
            dx, dy = rng.integers(-3, 4, 2)
            x0, y0 = int(np.clip(x - 12 + dx, 0, 230)), int(np.clip(y - 30 + dy, CLIP.pad_top, 170))
            video[f, y0:y0 + 60, x0:x0 + 24] = (220, 180, 150)
        write_clip(vdir / f"scene_{i:03d}.mp4", video, audio, audio_codec="pcm")
        write_clip_metadata(mdir / f"scene_{i:03d}.csv", rows)
    return f"{n} synthetic scenes (savgbench.seld.train.synthetic_scene) with labels"


def make_ground_truth(folder: Path, n: int, source: str) -> str:
    "Ground-truth clips in folder/video_gt (+ metadata_gt) and the channel-swapped copy in folder/video_swapped."
    if source == "dataset":       # synthetic STARSS23 recordings -> the dataset builder -> SAVGBench clips
        from savgbench.synth import synth_starss
        from savgbench.build import build_dataset
        synth_starss(folder / "starss", recordings=2, seconds=20, progress=False)
        build_dataset(folder / "starss", folder / "savgbench", split="eval", progress=False, verbose=False)
        src = folder / "savgbench" / "video_eval"
        clips = sorted(src.glob("*.mp4"))[:n]
        for p in sorted(src.glob("*.mp4"))[n:]: p.unlink()           # keep the first n
        what = f"{len(clips)} SAVGBench eval clips built from synthetic STARSS23 recordings"
    else:
        what = scene_clips(folder, n); src = folder / "video_raw"
    swapped_channel_pair(src, folder)
    return what


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--source", choices=["scenes", "dataset"], default="scenes",
                    help="scenes: SELD's synthetic scenes written as clips; dataset: synthetic STARSS23 -> dataset builder")
    ap.add_argument("--protocol", default="v2")
    ap.add_argument("--workdir")
    ap.add_argument("--seld-checkpoint", default="demo", help="'demo' (built-in demo model) or a checkpoint path")
    ap.add_argument("--detector", default="oracle", help="oracle (boxes at the labels), hog or yolox-tiny")
    ap.add_argument("--json")
    a = ap.parse_args()
    work = Path(a.workdir or tempfile.mkdtemp(prefix="savg_demo_"))
    t0 = time.perf_counter()
    source = make_ground_truth(work, a.n, a.source) if not (work / "video_gt").is_dir() else "existing clips"
    print(f"clips: {source}; {time.perf_counter() - t0:.1f} s")
    kw = dict(protocol=a.protocol, cache_dir=work / "cache", seld_checkpoint=a.seld_checkpoint, detector=a.detector,
              progress=False, verbose=False)
    rows = {"ground truth vs itself": evaluate(work / "video_gt", work / "video_gt", **kw),
            "stereo channels swapped": evaluate(work / "video_swapped", work / "video_gt", **kw)}
    print(TABLE_HEADER)
    for name, r in rows.items(): print(format_row(r, name))
    for k, why in next(iter(rows.values()))["skipped"].items(): print(f"skipped {k}: {why.splitlines()[0][:200]}")
    for name, r in rows.items():
        print(f"{name}: {r['timings_s']['total_s']:.1f} s; spatial {r.get('spatial_detail')}; "
              f"temporal {r.get('temporal_detail')}; weights {json.dumps(r['weights'])}")
    if a.json: Path(a.json).write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
