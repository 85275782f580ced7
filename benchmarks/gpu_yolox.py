"""YOLOX-tiny on a GPU: agreement with a float64 CPU run, and frames per second of the whole detection step.

    python benchmarks/gpu_yolox.py [--frames 1920] [--batch 64,256]

Random weights with exactly the checkpoint's layout (no pretrained file can be downloaded), a realistic picture
(the astronaut photograph placed in a SAVGBench frame, plus noise per frame). Prints the largest relative
difference of the raw head outputs (GPU float32 vs CPU float64), whether the person boxes agree, and frames/s of
preprocessing + network + post-processing + NMS on the GPU for each batch size against the CPU in the same process.
"""
import argparse, copy, sys, time, types

try: import tqdm.auto  # noqa: F401
except ImportError:     # the GPU machine may lack tqdm; the detection package only needs its name
    m = types.ModuleType("tqdm.auto"); m.tqdm = lambda it=None, **k: it
    sys.modules["tqdm"] = types.ModuleType("tqdm"); sys.modules["tqdm.auto"] = m

import numpy as np
import torch

from savgbench.detect.yolox import YOLOX, YOLOXConfig, preprocess, detect_persons


def frames(n, seed=0):
    import cv2
    try:
        import skimage.data
        pic = cv2.resize(skimage.data.astronaut()[..., ::-1], (144, 144), interpolation=cv2.INTER_AREA)
    except ImportError:
        pic = np.random.default_rng(1).integers(0, 255, (144, 144, 3), dtype=np.uint8)
    f = np.zeros((256, 256, 3), np.uint8); f[56:200, 56:200] = pic
    rng = np.random.default_rng(seed)
    noise = rng.integers(-8, 9, (n, 256, 256, 3))
    return np.clip(f[None].astype(int) + noise, 0, 255).astype(np.uint8)[..., ::-1].copy()   # RGB


@torch.no_grad()
def calibrate(m, f):
    "Rescale the random predictors so that their logits vary like a trained detector's: few objects, some persons."
    x, _ = preprocess(f[..., ::-1].copy())
    cls, _, obj = m(x)
    for i, (c, o) in enumerate(zip(m.bbox_head.multi_level_conv_cls, m.bbox_head.multi_level_conv_obj)):
        for conv, out, mean in ((o, obj[i], -4.5), (c, cls[i], -3.0)):
            mu, sd = out.mean((0, 2, 3)), out.std((0, 2, 3)) + 1e-12
            k = 1.5 / sd
            conv.weight.mul_(k[:, None, None, None]); conv.bias.copy_((conv.bias - mu) * k + mean)
        c.bias[0] += 6.0

def same_boxes(a, b):
    "Equal sets of boxes up to float rounding (NMS order may differ on exact ties)."
    if a.shape != b.shape: return False
    key = lambda d: d[np.lexsort(np.round(d.T[::-1], 2))]
    return np.allclose(key(a), key(b), rtol=1e-3, atol=1e-2)

def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=1920)
    ap.add_argument("--batch", default="64,256")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available(): print("no GPU"); return 1
    torch.manual_seed(0)
    m = YOLOX(YOLOXConfig.yolox_tiny()).eval()
    calibrate(m, frames(2, seed=5))
    torch.backends.cudnn.allow_tf32 = False; torch.backends.cuda.matmul.allow_tf32 = False
    gpu = copy.deepcopy(m).cuda(); cpu64 = copy.deepcopy(m).double()
    f = frames(8)
    x, sf = preprocess(f[..., ::-1].copy())
    with torch.no_grad(): og, oc = gpu(x.cuda()), cpu64(x.double())
    rel = max(((g.double().cpu() - c).abs().max() / (c.abs().max() + 1e-12)).item()
              for a_, b_ in zip(og, oc) for g, c in zip(a_, b_))
    print(f"{torch.cuda.get_device_name()}: raw head outputs, GPU float32 vs CPU float64: max rel. diff {rel:.2e}")
    dg, dc = detect_persons(gpu, f), detect_persons(m, f)
    same = all(same_boxes(a_, b_) for a_, b_ in zip(dg, dc))
    print(f"person boxes GPU vs CPU (8 frames, {sum(len(d) for d in dg)} boxes): {'same' if same else 'DIFFERENT'}")

    allf = frames(a.frames, seed=2)
    n_cpu = min(64, a.frames)
    t = time.perf_counter(); detect_persons(m, allf[:n_cpu], batch_size=32); cpu_fps = n_cpu / (time.perf_counter() - t)
    print(f"CPU ({torch.get_num_threads()} threads): {cpu_fps:.1f} frames/s")
    xb, _ = preprocess(allf[:256, ..., ::-1].copy())
    with torch.no_grad():
        gpu(xb.cuda()); torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(5): gpu(xb.cuda())
        torch.cuda.synchronize()
    print(f"GPU network alone, batch 256: {5 * 256 / (time.perf_counter() - t):.0f} frames/s")
    for bs in map(int, a.batch.split(",")):
        detect_persons(gpu, allf[:bs], batch_size=bs); torch.cuda.synchronize()
        t = time.perf_counter(); d = detect_persons(gpu, allf, batch_size=bs); torch.cuda.synchronize()
        fps = a.frames / (time.perf_counter() - t)
        print(f"GPU batch {bs}: {fps:.1f} frames/s = {fps / 20:.1f} clips/s ({fps / cpu_fps:.1f}x CPU), "
              f"{sum(len(x) for x in d)} boxes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
