"""Training data: the time to turn one SAVGBench clip into a training item, for the joint model and for the SR model.

The baseline, run in the same process, is the way items used to be made: the whole clip decoded (`read_clip`, audio
included) and the frames converted with the general path (permute, float, scale, clamp). The SR model's items are
frames alone; `ClipDataset(..., audio_size=None)` now leaves the audio undecoded, and frames already at the model's size
go to [-1, 1] in one pass. Both must give the same tensors, which this script checks before it times anything.

    python benchmarks/bench_data.py [CLIPS_DIR] [--n 80]

Without CLIPS_DIR it writes 24 random clips into a temporary folder.
"""
import argparse, statistics, tempfile, time
from pathlib import Path

import numpy as np
import torch

from savgbench.baselines.train import ClipDataset
from savgbench.core import CLIP
from savgbench.io import read_clip, write_clip


def old_item(path, size):
    "The former path: the whole clip decoded, frames through permute/float/scale/clamp."
    v = torch.as_tensor(read_clip(path, validate=False).video).permute(0, 3, 1, 2).float()
    if v.shape[-1] != size:
        v = torch.nn.functional.interpolate(v, size=(size, size), mode='bicubic', antialias=True, align_corners=False)
    return (v / 127.5 - 1).clamp(-1, 1)


def per_item_ms(fn, n, reps=3):
    "Median over `reps` passes of the mean time per item over `n` items."
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for i in range(n): fn(i)
        ts.append((time.perf_counter() - t0) / n * 1000)
    return statistics.median(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="?", default=None)
    ap.add_argument("--n", type=int, default=80, help="items per timed pass")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)                                 # as in a DataLoader worker
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        if a.clips is None:
            root, rng = Path(tmp), np.random.default_rng(0)
            for i in range(24):
                write_clip(root / f"c{i:02d}.mp4", rng.integers(0, 255, (20, 256, 256, 3), dtype=np.uint8),
                           (0.1 * rng.standard_normal((2, CLIP.n_samples))).astype(np.float32))
        else: root = Path(a.clips)
        run(root, a.n)


def run(root: Path, n_items: int):
    "Check, then time, the items made from the clips under `root`."
    sr = ClipDataset(root, (CLIP.n_frames, 3, CLIP.size, CLIP.size), None, check=True)
    joint = ClipDataset(root, (CLIP.n_frames, 3, 64, 64), (2, CLIP.n_samples), check=True)
    n = min(n_items, len(sr))
    for i in range(min(n, 8)):                               # the same tensors before any timing
        assert torch.equal(sr[i]['video'], old_item(sr.files[i], CLIP.size)), sr.files[i]
    t_old = per_item_ms(lambda i: old_item(sr.files[i], CLIP.size), n)
    t_sr = per_item_ms(lambda i: sr[i], n)
    t_joint = per_item_ms(lambda i: joint[i], n)
    print(f"{n} clips from {root}, one thread")
    print(f"SR item (20x3x256x256), former path (read_clip + general conversion): {t_old:6.1f} ms")
    print(f"SR item, ClipDataset(audio_size=None):                                {t_sr:6.1f} ms  ({t_old / t_sr:.2f}x)")
    print(f"joint item (20x3x64x64 + 2x80000), ClipDataset:                        {t_joint:6.1f} ms")


if __name__ == "__main__":
    main()
