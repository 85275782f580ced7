"""Synthetic STARSS23 scenes: generation speed, kept (window, view) pairs, levels and HOG detectability.

Times the parts of one recording (scene + FOA audio, equirectangular video) and, as the baseline run in the same
process, encoding the same number of background-only frames: their ratio is the cost of drawing the people on top of
h264 encoding. With --set it also writes the default scene set (4 x 30 s) and prints how many (5 s window, 10° view)
pairs pass the dataset's label rules, the share of those whose stereo peak after +38 dB stays <= 0.9999, and with
--hog the HOG people-detector hit rate on onscreen persons.

    python benchmarks/bench_synth.py [--seconds 30] [--set] [--hog] [--out /tmp/synth_bench]
"""
import argparse, math, tempfile, time
from pathlib import Path

import numpy as np
import soundfile as sf

from savgbench.synth import (make_scene, render_foa, render_video, synth_starss, label_rule_views, hog_detection_rate,
                             SYNTH_VIDEO_FPS)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--set", action="store_true", help="also write and measure the default 4 x 30 s scene set")
    ap.add_argument("--hog", action="store_true", help="with --set: measure the HOG detection rate (minutes)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    out = Path(a.out or tempfile.mkdtemp(prefix="synth_bench_"))
    rng = np.random.default_rng(0); S = a.seconds
    t0 = time.perf_counter(); events = make_scene(S, rng); foa = render_foa(events, S, rng); t_audio = time.perf_counter() - t0
    t0 = time.perf_counter(); n = render_video(out / "v.mp4", events, S); t_video = time.perf_counter() - t0
    t0 = time.perf_counter(); render_video(out / "bg.mp4", [], S); t_bg = time.perf_counter() - t0
    print(f"one {S:g} s recording, {len(events)} events, {n} video frames at 960x480:")
    print(f"  audio {t_audio:.2f} s, video {t_video:.2f} s ({n / t_video:.0f} frames/s), total {t_audio + t_video:.2f} s "
          f"= {S / (t_audio + t_video):.1f}x real time")
    print(f"  baseline, background-only video (encoding alone): {t_bg:.2f} s; drawing people costs x{t_video / t_bg:.2f}")
    if not a.set: return 0
    t0 = time.perf_counter(); recs = synth_starss(out / "starss", recordings=4, seconds=30, seed=0, progress=False)
    print(f"default set 4 x 30 s written in {time.perf_counter() - t0:.1f} s under {out / 'starss'}")
    kept = total = 0; peaks = []
    for r in recs:
        k = label_rule_views(r["labels"], 300); kept += len(k); total += 51 * 36
        x, _ = sf.read(r["paths"]["wav"], dtype="float64")
        for s, d in k:
            seg = x[s * 2400:(s + 50) * 2400]; c, sn = math.cos(math.radians(d)), math.sin(math.radians(d))
            y_rot = sn * seg[:, 3] + c * seg[:, 1]
            peaks.append(max(np.abs(seg[:, 0] + y_rot).max(), np.abs(seg[:, 0] - y_rot).max()) * 10 ** (38 / 20))
        print(f"  {r['split']}/{r['name']}: {len(r['events'])} events, {len(r['labels'])} label rows, {len(k)} pairs kept, "
              f"FOA W peak {np.abs(x[:, 0]).max():.4f}")
    peaks = np.array(peaks)
    print(f"(window, view) pairs passing the label rules: {kept} of {total}; stereo peak after +38 dB <= 0.9999: "
          f"{(peaks <= 0.9999).mean():.1%} (median {np.median(peaks):.2f})")
    if a.hog:
        t0 = time.perf_counter(); h = hog_detection_rate(recs, every=1.0)
        print(f"HOG hit rate on onscreen persons: {h['hits']}/{h['total']} = {h['rate']:.1%}; within |a| <= 40°: "
              f"{h['hits_core']}/{h['total_core']} = {h['rate_core']:.1%} ({time.perf_counter() - t0:.0f} s)")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
