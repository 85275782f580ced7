"""Speed of the joint baseline: training step, joint forward, super-resolution, and the time to generate 96 clips.

    python benchmarks/bench_joint.py                 # CPU: tiny configs (a smoke test of the script)
    python benchmarks/bench_joint.py --gpu --log L   # GPU: paper sizes (133.7 M joint, 311.0 M SR), batch 4

Every measurement is the median of several runs after warm-up. Ratios are printed against a baseline measured in
the same process (our model run the way the reference runs: fp32, gradient checkpointing on) and, for information,
against the reference implementation's H200 numbers (spec/perf_anchors.md; only comparable on an H200).
"""
from __future__ import annotations
import argparse, json, math, sys, time
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _timing import sync, timeit    # benchmarks/ is the script's folder, first on sys.path
from savgbench.baselines.diffusion import GaussianDiffusion
from savgbench.baselines.mmdiffusion import (MMDiffusionConfig, CoupledUNet, CrossAttentionBlock, rs_mma, _rs_mma_loop,
                                             count_parameters)
from savgbench.baselines.superres import SRConfig, SuperResUNet, super_resolve
from savgbench.baselines.train import EMA, joint_loss_fn
from savgbench.baselines.sample import sample_joint, compile_model

ANCHORS_H200 = {'train_step_s': 0.991, 'joint_forward_s': 0.257, 'sr_clip_s': 5.10, 'gen96_s': 10.4 * 60}
T_START = time.time()
LOG = []


LOG_PATH = None


def log(msg=''):
    print(msg, flush=True); LOG.append(msg)
    if LOG_PATH is not None:
        with open(LOG_PATH, 'a') as f: f.write(msg + '\n')


def peak_reset(dev):
    if dev.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()


def peak_gb(dev):
    return torch.cuda.max_memory_allocated() / 1e9 if dev.type == 'cuda' else float('nan')


def autocast(dev, on):
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=on)


def unit_heads(model):
    "Give the zero-initialised output heads a small random scale so samplers see a non-trivial model."
    g = torch.Generator().manual_seed(0)
    for conv in (model.video_out[2].video_conv, model.audio_out[2].audio_conv):
        with torch.no_grad(): conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.02)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--gpu', action='store_true', help='paper sizes on CUDA')
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--reps', type=int, default=5)
    p.add_argument('--budget', type=float, default=380, help='seconds; optional parts are skipped past it')
    p.add_argument('--compile', action='store_true', help="also time compile_model(..., 'reduce-overhead') of the joint forward "
                   "(benchmarks/bench_sampling.py measures compiled sampling in full)")
    p.add_argument('--log', default=None, help='write the log (and a .json of the numbers) here')
    p.add_argument('--profile', action='store_true', help='print the costliest kernels of a bf16 joint forward')
    a = p.parse_args(argv)
    global LOG_PATH
    if a.log:
        Path(a.log).parent.mkdir(parents=True, exist_ok=True); Path(a.log).write_text(''); LOG_PATH = a.log
    dev = torch.device('cuda' if a.gpu else 'cpu')
    if a.gpu and not torch.cuda.is_available(): sys.exit('no CUDA device')
    if dev.type == 'cuda':
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
        card = torch.cuda.get_device_name()
    else:
        torch.set_num_threads(1); card = 'CPU'
    left = lambda: a.budget - (time.time() - T_START)
    jcfg = MMDiffusionConfig.paper() if a.gpu else MMDiffusionConfig.tiny()
    scfg = SRConfig.paper() if a.gpu else SRConfig.tiny()
    B, R = a.batch, a.reps
    res = {'device': card, 'torch': torch.__version__, 'batch': B, 'preset': 'paper' if a.gpu else 'tiny'}
    log(f"# bench_joint on {card} (torch {torch.__version__}), {res['preset']} sizes, batch {B}")

    # --- correctness on this device: batched RS-MMA against the per-frame loop ------------------------------------
    g = torch.Generator().manual_seed(0)
    qv, kv, vv = (torch.randn(2, 5, 6, 2, 8, generator=g).to(dev) for _ in range(3))
    qa, ka, va = (torch.randn(2, 53, 2, 8, generator=g).to(dev) for _ in range(3))
    err = max((x - y).abs().max().item() for x, y in zip(rs_mma(qv, kv, vv, qa, ka, va, 3, 1),
                                                          _rs_mma_loop(qv, kv, vv, qa, ka, va, 3, 1)))
    log(f"RS-MMA batched vs loop on {dev.type}: max abs diff {err:.2e}")

    # --- joint model ------------------------------------------------------------------------------------------------
    model = CoupledUNet(jcfg).to(dev)
    unit_heads(model)
    log(f"joint model: {count_parameters(model):,} parameters")
    video = torch.randn(B, *jcfg.video_size, device=dev); audio = torch.randn(B, *jcfg.audio_size, device=dev)
    t = torch.randint(0, 1000, (B,), device=dev)
    model.eval()
    with torch.no_grad():
        with autocast(dev, True): v16, a16 = model(video, audio, t)
        for blk in model.modules():
            if isinstance(blk, CrossAttentionBlock): blk.shift = 0
        v32, a32 = model(video, audio, t)
        with autocast(dev, True): v16, a16 = model(video, audio, t)
        for blk in model.modules():
            if isinstance(blk, CrossAttentionBlock): blk.shift = None
    rel = lambda x, y: ((x.float() - y).norm() / y.norm().clamp(min=1e-12)).item()
    log(f"bf16 vs fp32 forward (same shifts): relative error video {rel(v16, v32):.2e}, audio {rel(a16, a32):.2e}")

    def fwd(bf16):
        def f():
            with torch.no_grad(), autocast(dev, bf16): model(video, audio, t)
        return f
    peak_reset(dev)
    res['joint_forward_s'] = timeit(fwd(True), dev, 3, 2 * R); res['joint_forward_peak_gb'] = peak_gb(dev)
    log(f"joint forward, bf16 autocast, batch {B}: {res['joint_forward_s'] * 1e3:.1f} ms (peak {res['joint_forward_peak_gb']:.1f} GB)")
    res['joint_forward_fp32_s'] = timeit(fwd(False), dev, 2, R)
    log(f"joint forward, fp32, batch {B}: {res['joint_forward_fp32_s'] * 1e3:.1f} ms")
    model.use_channels_last(True)
    peak_reset(dev)
    res['joint_forward_cl_s'] = timeit(fwd(True), dev, 3, 2 * R); res['joint_forward_cl_peak_gb'] = peak_gb(dev)
    log(f"joint forward, bf16 autocast, channels-last video, batch {B}: {res['joint_forward_cl_s'] * 1e3:.1f} ms "
        f"(peak {res['joint_forward_cl_peak_gb']:.1f} GB)")
    cl_joint = res['joint_forward_cl_s'] < res['joint_forward_s']
    model.use_channels_last(cl_joint)
    res['joint_channels_last'] = cl_joint
    log(f"-> {'channels-last' if cl_joint else 'default'} memory for the joint model below")
    if a.profile:
        from torch.profiler import profile, ProfilerActivity
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
        with profile(activities=acts) as prof:
            for _ in range(2): fwd(True)()
            sync(dev)
        for key in (('self_device_time_total', 'self_cuda_time_total') if dev.type == 'cuda' else ('self_cpu_time_total',)):
            try: log(prof.key_averages().table(sort_by=key, row_limit=25)); break
            except Exception: continue
    if left() > 250:
        B2 = 4 * B
        v2, a2 = torch.randn(B2, *jcfg.video_size, device=dev), torch.randn(B2, *jcfg.audio_size, device=dev)
        t2 = torch.randint(0, 1000, (B2,), device=dev)
        def f16():
            with torch.no_grad(), autocast(dev, True): model(v2, a2, t2)
        res['joint_forward_b4x_s'] = timeit(f16, dev, 1, R)
        log(f"joint forward, bf16, batch {B2}: {res['joint_forward_b4x_s'] * 1e3:.1f} ms "
            f"({res['joint_forward_b4x_s'] / B2 * 1e3:.1f} ms per sample vs {min(res['joint_forward_s'], res['joint_forward_cl_s']) / B * 1e3:.1f} at batch {B})")
        del v2, a2, t2

    # --- training step ----------------------------------------------------------------------------------------------
    diffusion = GaussianDiffusion(1000)
    loss_fn = joint_loss_fn(diffusion)
    batch = {'video': video.clamp(-1, 1), 'audio': audio.clamp(-1, 1)}

    def train_step_fn(bf16, ckpt):
        for m in model.modules():
            if hasattr(m, 'checkpointing'): m.checkpointing = ckpt
        opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=0.0, fused=dev.type == 'cuda')
        ema = EMA(model, 0.9999)
        gen = torch.Generator(device=dev).manual_seed(0)
        model.train()
        def f():
            with autocast(dev, bf16): loss = loss_fn(model, batch, gen)['loss'].mean()
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True); ema.update(model)
        return f, opt, ema
    f, opt, ema = train_step_fn(True, False)
    peak_reset(dev)
    res['train_step_s'] = timeit(f, dev, 3, R); res['train_peak_gb'] = peak_gb(dev)
    log(f"training step (fwd+bwd+AdamW+EMA), bf16 autocast, no checkpointing, batch {B}{', channels-last' if cl_joint else ''}: {res['train_step_s']:.3f} s "
        f"(peak {res['train_peak_gb']:.1f} GB)")
    del f, opt, ema
    f, opt, ema = train_step_fn(False, True)
    peak_reset(dev)
    res['train_step_fp32_ckpt_s'] = timeit(f, dev, 1, max(2, R // 2)); res['train_fp32_ckpt_peak_gb'] = peak_gb(dev)
    log(f"training step, fp32 + gradient checkpointing (the reference's way), batch {B}: {res['train_step_fp32_ckpt_s']:.3f} s "
        f"(peak {res['train_fp32_ckpt_peak_gb']:.1f} GB)")
    del f, opt, ema
    for m in model.modules():
        if hasattr(m, 'checkpointing'): m.checkpointing = False
    model.eval(); model.zero_grad(set_to_none=True)
    peak_reset(dev)

    # --- joint sampling: adaptive DPM-Solver++ (the reference sampler) ------------------------------------------------
    sync(dev); t0 = time.perf_counter()
    _, nfe = sample_joint(model, B, seed=1010, sampler='dpm_solver++', precision='bf16' if a.gpu else 'fp32')
    sync(dev); res['joint_batch_adaptive_s'] = time.perf_counter() - t0; res['joint_batch_adaptive_nfe'] = nfe
    log(f"joint sampling, adaptive DPM-Solver++ order 2, batch {B}: {res['joint_batch_adaptive_s']:.2f} s, NFE {nfe} "
        f"(random weights with small output heads: the NFE of a trained model differs)")

    # --- super-resolution -------------------------------------------------------------------------------------------
    del model; peak_reset(dev)
    sr = SuperResUNet(scfg).to(dev).eval()
    unit = sr.out[2]
    with torch.no_grad(): unit.weight.normal_(0, 0.02)
    log(f"SR model: {count_parameters(sr):,} parameters")
    Fr = jcfg.video_size[0]
    lo = torch.rand(1, Fr, 3, scfg.small_size, scfg.small_size, device=dev) * 2 - 1
    x = torch.randn(Fr, 3, scfg.large_size, scfg.large_size, device=dev)
    tt = torch.full((Fr,), 500, device=dev)
    def srf(bf16, cl):
        xin = x.contiguous(memory_format=torch.channels_last) if cl else x
        def f():
            with torch.no_grad(), autocast(dev, bf16): sr(xin, tt, lo[0])
        return f
    res['sr_forward_fp32_s'] = timeit(srf(False, False), dev, 1, max(2, R // 2))
    log(f"SR forward, fp32, one clip ({Fr} frames): {res['sr_forward_fp32_s'] * 1e3:.1f} ms")
    if a.gpu:
        res['sr_forward_s'] = timeit(srf(True, False), dev, 2, R)
        log(f"SR forward, bf16, one clip: {res['sr_forward_s'] * 1e3:.1f} ms")
    else:   # bf16 convolutions without native CPU support run ~45x slower (the tiny SR: 33 s against 0.73 s a forward
            # on 2 cores), so the CPU smoke test runs the SR model in fp32
        log("SR forward, bf16: not timed on a CPU (about 45x slower than fp32 there); fp32 below")
    cl = False
    if dev.type == 'cuda':
        sr = sr.to(memory_format=torch.channels_last)
        res['sr_forward_cl_s'] = timeit(srf(True, True), dev, 2, R)
        log(f"SR forward, bf16 + channels-last, one clip: {res['sr_forward_cl_s'] * 1e3:.1f} ms")
        cl = res['sr_forward_cl_s'] < res['sr_forward_s']
        if not cl: sr = sr.to(memory_format=torch.contiguous_format)
    steps = 25 if a.gpu else 4
    res['sr_loop_precision'] = 'bf16' if a.gpu else 'fp32'
    def sr_clip(n_clips):
        def f():
            with autocast(dev, a.gpu):
                super_resolve(sr, lo.expand(n_clips, *lo.shape[1:]), steps=steps, generator=torch.Generator().manual_seed(0))
        return f
    peak_reset(dev)
    res['sr_clip_s'] = timeit(sr_clip(1), dev, 1, max(2, R // 2)); res['sr_peak_gb'] = peak_gb(dev)
    log(f"SR DDIM-{steps} loop, {'bf16' if a.gpu else 'fp32'}{' + channels-last' if cl else ''}, one clip: {res['sr_clip_s']:.2f} s (peak {res['sr_peak_gb']:.1f} GB)")
    if left() > 60:
        res['sr_2clips_s'] = timeit(sr_clip(2), dev, 1, 2)
        log(f"SR DDIM-{steps} loop, two clips per batch: {res['sr_2clips_s']:.2f} s ({res['sr_2clips_s'] / 2:.2f} s per clip)")
    sr_per_clip = min(res['sr_clip_s'], res.get('sr_2clips_s', 1e9) / 2)
    n_batches = math.ceil(96 / B)
    res['gen96_est_s'] = n_batches * res['joint_batch_adaptive_s'] + 96 * sr_per_clip
    res['gen96_joint_22nfe_est_s'] = n_batches * 22 * min(res['joint_forward_s'], res['joint_forward_cl_s']) + 96 * sr_per_clip
    log(f"96 clips, estimate: {res['gen96_est_s'] / 60:.2f} min with the NFE measured above; "
        f"{res['gen96_joint_22nfe_est_s'] / 60:.2f} min at the reference's 22 NFE "
        f"(joint {n_batches} x batch {B}, SR {sr_per_clip:.2f} s per clip)")
    del sr; peak_reset(dev)

    if a.log: Path(a.log).with_suffix('.json').write_text(json.dumps(res, indent=1))

    # --- optional: torch.compile of the joint forward ----------------------------------------------------------------
    if a.compile and left() > 150:
        model = CoupledUNet(jcfg).to(dev).eval(); unit_heads(model)
        cm = compile_model(model, 'reduce-overhead')      # channels-last video on a GPU
        t0 = time.perf_counter()
        with torch.no_grad(), autocast(dev, True): cm(video, audio, t)
        sync(dev); log(f"torch.compile warm-up: {time.perf_counter() - t0:.1f} s")
        def cf():
            with torch.no_grad(), autocast(dev, True): cm(video, audio, t)
        res['joint_forward_compiled_s'] = timeit(cf, dev, 2, 2 * R)
        log(f"joint forward, bf16, compile_model reduce-overhead, batch {B}: {res['joint_forward_compiled_s'] * 1e3:.1f} ms")

    # --- ratios ------------------------------------------------------------------------------------------------------
    log("")
    log(f"same process: training step bf16 vs fp32+checkpointing: {res['train_step_fp32_ckpt_s'] / res['train_step_s']:.2f}x; "
        f"joint forward bf16 vs fp32: {res['joint_forward_fp32_s'] / min(res['joint_forward_s'], res['joint_forward_cl_s']):.2f}x; "
        + (f"SR forward bf16 vs fp32: {res['sr_forward_fp32_s'] / min(res['sr_forward_s'], res.get('sr_forward_cl_s', 1e9)):.2f}x"
           if a.gpu else "SR forward bf16: not timed on a CPU"))
    if a.gpu:
        best_fwd = min(res['joint_forward_s'], res['joint_forward_cl_s'], res.get('joint_forward_compiled_s', 1e9))
        log(f"vs the reference on an H200 (perf_anchors.md; this card: {card}): training step {ANCHORS_H200['train_step_s'] / res['train_step_s']:.2f}x "
            f"(target >= 3x), joint forward {ANCHORS_H200['joint_forward_s'] / best_fwd:.2f}x (target >= 5x), "
            f"SR per clip {ANCHORS_H200['sr_clip_s'] / sr_per_clip:.2f}x, 96 clips {ANCHORS_H200['gen96_s'] / res['gen96_est_s']:.2f}x (target >= 5x)")
    res['wall_s'] = time.time() - T_START
    log(f"total {res['wall_s']:.0f} s")
    if a.log:
        Path(a.log).with_suffix('.json').write_text(json.dumps(res, indent=1))
    return res


if __name__ == '__main__':
    main()
