"""Equirectangular -> perspective conversion: savgbench's fast path versus py360convert.e2p called per frame.

Both convert the same uint8 RGB frames to the SAVGBench picture (100° FOV, 144x256) at several views, including
views across the ±180° seam. Prints frames per second of each, the speed ratio, and the largest absolute pixel
difference between the two outputs. Both sides are warmed up first (each caches its sampling maps per view), so the
numbers are steady-state throughput; the one-off cost of building a view's maps is printed separately.

    python benchmarks/bench_convert.py [--frames 40] [--repeats 3]
"""
import argparse, time

import cv2
import numpy as np
import py360convert

from savgbench.convert import equirect_to_perspective, PerspectiveView
from savgbench.geometry import v_fov_deg

VIEWS = (0, 90, 170, 180, 190, 300)

def make_frames(n, h, w, seed=0):
    "Frames with smooth structure (a natural image tiled into a panorama) plus noise, so interpolation matters."
    from skimage import data
    pano = cv2.resize(np.concatenate([data.astronaut(), data.astronaut()[:, ::-1]], axis=1), (w, h),
                      interpolation=cv2.INTER_AREA).astype(np.int16)
    rng = np.random.default_rng(seed)
    return np.stack([np.clip(np.roll(pano, 7 * t, axis=1) + rng.integers(-20, 21, pano.shape), 0, 255)
                     for t in range(n)]).astype(np.uint8)

def best_time(fn, repeats):
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t0)
    return best

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    fov = (100, v_fov_deg())
    print(f"OpenCV {cv2.__version__}, threads {cv2.getNumThreads()}; py360convert {py360convert.__version__ if hasattr(py360convert, '__version__') else '?'}")
    print(f"{'input':>9} {'view':>5} {'fast f/s':>10} {'e2p f/s':>9} {'ratio':>7} {'max|diff|':>9}")
    tot_fast = tot_ref = 0.0; worst = 0; n_total = 0
    for (h, w) in [(960, 1920), (480, 960)]:
        frames = make_frames(args.frames, h, w)
        for view in VIEWS:
            t0 = time.perf_counter(); PerspectiveView((h, w), view); build = time.perf_counter() - t0
            fast = equirect_to_perspective(frames, view, pad_to_square=False)           # warm-up (builds the maps)
            ref = np.stack([py360convert.e2p(f, fov, view, 0, (144, 256)) for f in frames])
            diff = int(np.abs(fast.astype(np.int16) - ref).max())
            t_fast = best_time(lambda: equirect_to_perspective(frames, view, pad_to_square=False), args.repeats)
            t_ref = best_time(lambda: [py360convert.e2p(f, fov, view, 0, (144, 256)) for f in frames], args.repeats)
            tot_fast += t_fast; tot_ref += t_ref; worst = max(worst, diff); n_total += len(frames)
            print(f"{w}x{h:<4} {view:>5} {len(frames) / t_fast:>10.0f} {len(frames) / t_ref:>9.0f} "
                  f"{t_ref / t_fast:>6.1f}x {diff:>9}   (maps built once in {build * 1e3:.1f} ms)")
    print(f"overall: fast {n_total / tot_fast:.0f} frames/s, e2p {n_total / tot_ref:.0f} frames/s, "
          f"ratio {tot_ref / tot_fast:.1f}x, largest |difference| {worst} grey level(s)")

if __name__ == "__main__":
    main()
