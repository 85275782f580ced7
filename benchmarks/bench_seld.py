"""SELD inference throughput on CPU (clips of 5 s per second), batched across clips versus the reference's way
(one clip at a time, its 5 windows in a zero-filled batch of 8), measured in the same process.

Usage: python benchmarks/bench_seld.py [N_CLIPS] [--reference-size] [--cuda]
"""
import sys, time
import numpy as np
import torch
from savgbench.seld.infer import load_seld_model, predict_seld
from savgbench.seld.features import clip_features
from savgbench.seld.model import SELDNet

def timed(f):
    t = time.perf_counter(); out = f(); return time.perf_counter() - t, out

def main(n=16, reference_size=False, device="cpu"):
    rng = np.random.default_rng(0)
    clips = [(rng.standard_normal((2, 80000)) * 0.1).astype(np.float32) for _ in range(n)]
    model = (SELDNet("reference").eval() if reference_size else load_seld_model("demo")).to(device)
    name = "reference size (random weights)" if reference_size else "built-in demo (small)"
    print(f"SELD network on {device}: {name}, {sum(p.numel() for p in model.parameters()):,} parameters, torch threads {torch.get_num_threads()}")
    predict_seld(clips[:2], model, batch_size=40); predict_seld(clips[:1], model, batch_size=8)   # warm-up
    t_feat, _ = timed(lambda: [clip_features(c) for c in clips])
    t_base, base = timed(lambda: [predict_seld([c], model, batch_size=8)[0] for c in clips])
    t_fast, fast = timed(lambda: predict_seld(clips, model, batch_size=40))
    print(f"features only:                     {n / t_feat:8.2f} clips/s")
    print(f"one clip at a time, batch 8:       {n / t_base:8.2f} clips/s   (baseline)")
    print(f"batched across clips, batch 40:    {n / t_fast:8.2f} clips/s   ({t_base / t_fast:.2f}x the baseline)")
    same = all(len(a) == len(b) and np.allclose(a.x, b.x, atol=1e-4) for a, b in zip(base, fast))
    print(f"same rows as the baseline (x within 1e-4 px): {same}")

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 16, "--reference-size" in sys.argv, "cuda" if "--cuda" in sys.argv else "cpu")
