"""Sampling speed of the joint baseline, eager against compiled (`savgbench.baselines.sample.compile_model`): joint
forward, one adaptive DPM-Solver++ batch, SR forward and DDIM loop, clips end to end; and the fp16 trainer.

    python benchmarks/bench_sampling.py                          # CPU: tiny sizes, aot_eager backend (a smoke test)
    python benchmarks/bench_sampling.py --gpu --log L            # GPU: paper sizes, inductor 'reduce-overhead'

Every time is the median of several runs after warm-up; the eager baseline runs in the same process. Compile times
are reported separately (they are paid once per process). Ratios against the reference's H200 numbers
(spec/perf_anchors.md) are printed for information and only mean something on an H200.
"""
from __future__ import annotations
import argparse, json, math, sys, tempfile, time, traceback
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _timing import sync, timeit    # benchmarks/ is the script's folder, first on sys.path
from savgbench.baselines.mmdiffusion import MMDiffusionConfig, CoupledUNet, CrossAttentionBlock, count_parameters
from savgbench.baselines.superres import SRConfig, SuperResUNet, super_resolve
from savgbench.baselines.sample import sample_joint, compile_model, to_clip_arrays, batch_seeds

ANCHORS_H200 = {'joint_forward_s': 0.257, 'sr_clip_s': 5.10, 'gen96_s': 10.4 * 60}
T0 = time.time()
RES: dict = {}
LOG_PATH = None


def log(msg=''):
    print(msg, flush=True)
    if LOG_PATH is not None:
        with open(LOG_PATH, 'a') as f: f.write(msg + '\n')


def save():
    if LOG_PATH is not None: Path(LOG_PATH).with_suffix('.json').write_text(json.dumps(RES, indent=1))


def peak(dev, reset=False):
    if dev.type != 'cuda': return float('nan')
    if reset: torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(); return 0.0
    return torch.cuda.max_memory_allocated() / 1e9


def section(name, fn):
    "Run one part; a failure is logged with its traceback and the next part still runs."
    t0 = time.time()
    try: fn()
    except Exception:
        log(f"!! {name} failed:\n{traceback.format_exc()}"); RES[f'{name}_error'] = traceback.format_exc(limit=3)
    log(f"   ({name}: {time.time() - t0:.0f} s, {time.time() - T0:.0f} s in all)"); save()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--gpu', action='store_true')
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--mode', default='reduce-overhead', help='compile mode for both models')
    p.add_argument('--sr-mode', default=None, help="compile mode for the SR U-Net (default: --mode), e.g. 'max-autotune'")
    p.add_argument('--no-cudnn-benchmark', action='store_true',
                   help="cuDNN's heuristic algorithm choice (torch's default) instead of timing them, as savgbench does")
    p.add_argument('--backend', default=None, help="compile backend (default inductor; 'aot_eager' on CPU)")
    p.add_argument('--clips', type=int, default=8, help='clips generated end to end with the compiled models')
    p.add_argument('--reps', type=int, default=5)
    p.add_argument('--budget', type=float, default=480, help='seconds; optional parts are skipped past it')
    p.add_argument('--no-train', action='store_true', help='skip the fp16 trainer check')
    p.add_argument('--variants', default='cl',
                   help="compiled joint variants, comma-separated: 'default' (NCDHW memory), 'cl' (channels-last video, "
                        "compile_model's choice on a GPU), 'cl+audio' (audio in (B,L,C) memory too), 'cl+audio2d' "
                        "(audio convolutions as 2-D convolutions, layout left to the compiler)")
    p.add_argument('--profile-compiled', action='store_true',
                   help='kernel tables of the fastest compiled joint variant and of the compiled SR U-Net')
    p.add_argument('--only', default=None, choices=('joint', 'sr'),
                   help="measure only the joint forward, or only the SR forward and DDIM loop")
    p.add_argument('--log', default=None)
    a = p.parse_args(argv)
    global LOG_PATH
    if a.log: Path(a.log).parent.mkdir(parents=True, exist_ok=True); Path(a.log).write_text(''); LOG_PATH = a.log
    dev = torch.device('cuda' if a.gpu else 'cpu')
    if a.gpu and not torch.cuda.is_available(): sys.exit('no CUDA device')
    backend = a.backend or (None if a.gpu else 'aot_eager')
    if dev.type == 'cuda':
        torch.backends.cudnn.benchmark = not a.no_cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
        card = torch.cuda.get_device_name()
    else: card = 'CPU'; torch.set_num_threads(2)
    left = lambda: a.budget - (time.time() - T0)
    jcfg = MMDiffusionConfig.paper() if a.gpu else MMDiffusionConfig.tiny()
    scfg = SRConfig.paper() if a.gpu else SRConfig.tiny()
    B, R = a.batch, a.reps
    sr_mode = a.sr_mode or a.mode
    RES.update(device=card, torch=torch.__version__, batch=B, preset='paper' if a.gpu else 'tiny', mode=a.mode,
               sr_mode=sr_mode, backend=backend or 'inductor', cudnn_benchmark=not a.no_cudnn_benchmark)
    log(f"# bench_sampling on {card} (torch {torch.__version__}), {RES['preset']} sizes, batch {B}, "
        f"compile mode {a.mode!r} (SR {sr_mode!r}), backend {RES['backend']}, cudnn.benchmark {not a.no_cudnn_benchmark}")
    # bf16 on a GPU, as sampling runs there; fp32 on a CPU, where bf16 convolutions without native support run ~45x
    # slower (the tiny SR forward: 33 s against 0.73 s on this project's 2-core CPU) and the smoke test would take an hour
    PREC = 'bf16' if a.gpu else 'fp32'
    RES['precision'] = PREC
    amp = lambda: torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.gpu)   # PREC's autocast
    lowp = lambda: torch.autocast(dev.type, dtype=torch.bfloat16)     # the accuracy check's bf16, on any device
    st = {}

    def unit_heads(m, convs):
        g = torch.Generator().manual_seed(0)
        for c in convs:
            with torch.no_grad(): c.weight.copy_(torch.randn(c.weight.shape, generator=g) * 0.02)

    # --- joint forward: eager (both layouts), profile, compiled ---------------------------------------------------
    def joint():
        torch.manual_seed(0)
        m = CoupledUNet(jcfg).to(dev).eval()
        unit_heads(m, [m.video_out[2].video_conv, m.audio_out[2].audio_conv])
        log(f"joint model: {count_parameters(m):,} parameters")
        g = torch.Generator().manual_seed(1)
        v = torch.randn(B, *jcfg.video_size, generator=g).to(dev); au = torch.randn(B, *jcfg.audio_size, generator=g).to(dev)
        t = torch.full((B,), 500, device=dev, dtype=torch.long)
        def fwd(model):
            def f():
                with torch.no_grad(), amp(): return model(v, au, t)
            return f
        peak(dev, True)
        RES['joint_eager_s'] = timeit(fwd(m), dev, 3, 2 * R); RES['joint_eager_peak_gb'] = peak(dev)
        log(f"joint forward, eager {PREC}, batch {B}: {RES['joint_eager_s'] * 1e3:.1f} ms (peak {RES['joint_eager_peak_gb']:.1f} GB)")
        m.use_channels_last(True)
        RES['joint_eager_cl_s'] = timeit(fwd(m), dev, 3, 2 * R)
        log(f"joint forward, eager {PREC}, channels-last video: {RES['joint_eager_cl_s'] * 1e3:.1f} ms")
        cl = RES['joint_eager_cl_s'] < RES['joint_eager_s']
        m.use_channels_last(cl)
        if dev.type == 'cuda':
            from torch.profiler import profile, ProfilerActivity
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(2): fwd(m)()
                sync(dev)
            log(prof.key_averages().table(sort_by='self_cuda_time_total', row_limit=18, max_name_column_width=60))
        st['joint'], st['joint_inputs'] = m, (v, au, t)
        # compiled: the real configuration (random shifts drawn inside the graph), in each layout variant asked for
        best = None
        for i, var in enumerate(a.variants.split(',')):
            if i and left() < 200: log(f"(variant {var} skipped: budget)"); continue
            flags = set(var.split('+'))
            if not flags <= {'default', 'cl', 'audio', 'audio2d'}: raise ValueError(f"unknown variant {var!r}")
            mc = CoupledUNet(jcfg).to(dev).eval(); mc.load_state_dict(m.state_dict())
            mc.use_channels_last('cl' in flags, audio='2d' if 'audio2d' in flags else 'audio' in flags)
            cm = compile_model(mc, a.mode, backend, channels_last='cl' in flags)
            t0 = time.perf_counter()
            try: fwd(cm)(); sync(dev)
            except Exception: log(f"!! variant {var} failed:\n{traceback.format_exc()}"); continue
            key = '' if var == 'default' else '_' + var.replace('+', '_')
            RES[f'joint_compile{key}_s'] = time.perf_counter() - t0
            log(f"joint compile + first call ({var}): {RES[f'joint_compile{key}_s']:.1f} s")
            peak(dev, True)
            RES[f'joint_compiled{key}_s'] = tc = timeit(fwd(cm), dev, 3, 4 * R); RES[f'joint_compiled{key}_peak_gb'] = peak(dev)
            log(f"joint forward, compiled {PREC} ({a.mode}, {var}), batch {B}: {tc * 1e3:.1f} ms "
                f"(peak {RES[f'joint_compiled{key}_peak_gb']:.1f} GB); {min(RES['joint_eager_s'], RES['joint_eager_cl_s']) / tc:.2f}x eager")
            if best is None or tc < best[0]: best = (tc, var, cm, RES[f'joint_compile{key}_s'])
            else: del cm, mc
        RES['joint_compiled_best_variant'], RES['joint_compile_best_s'] = best[1], best[3]
        st['cjoint'] = best[2]
        if a.profile_compiled and dev.type == 'cuda':
            from torch.profiler import profile, ProfilerActivity
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(3): fwd(best[2])()
                sync(dev)
            table = prof.key_averages().table(sort_by='self_cuda_time_total', row_limit=80, max_name_column_width=110)
            log(f"compiled ({best[1]}) profile, 3 forwards:")
            log('\n'.join(table.splitlines()[:40]))
            if a.log: Path(a.log).with_suffix('.profile.txt').write_text(table)
    if a.only != 'sr': section('joint', joint)

    # --- one batch of the reference sampler, eager and compiled ---------------------------------------------------
    def sampling():
        m, cm = st['joint'], st.get('cjoint')
        prec = PREC
        for name, model in (('eager', m), ('compiled', cm)):
            if model is None: continue
            sync(dev); t0 = time.perf_counter()
            x, nfe = sample_joint(model, B, seed=1010, sampler='dpm_solver++', precision=prec)
            sync(dev); dt = time.perf_counter() - t0
            ok = all(torch.isfinite(y).all().item() for y in x.values())
            RES[f'joint_batch_{name}_s'], RES[f'joint_batch_{name}_nfe'] = dt, nfe
            log(f"adaptive DPM-Solver++ batch {B}, {name}: {dt:.2f} s, NFE {nfe}, {dt / nfe * 1e3:.1f} ms per NFE, finite {ok}")
    if a.only != 'sr': section('sampling', sampling)

    # --- compiled forward against eager with the same (fixed) shifts: accuracy -------------------------------------
    def accuracy():
        m = st['joint']; v, au, t = st['joint_inputs']
        for blk in m.modules():
            if isinstance(blk, CrossAttentionBlock): blk.shift = 1 if blk.window_shift else None
        with torch.no_grad():
            ref = m(v, au, t)                                                   # fp32 eager
            with lowp(): e16 = m(v, au, t)
            cm = compile_model(m, 'default' if a.gpu else a.mode, backend)
            with lowp(): c16 = cm(v, au, t)
        rel = lambda x, y: ((x.float() - y).norm() / y.norm().clamp(min=1e-12)).item()
        for i, k in enumerate(('video', 'audio')):
            RES[f'accuracy_{k}_eager_bf16'] = rel(e16[i], ref[i]); RES[f'accuracy_{k}_compiled_bf16'] = rel(c16[i], ref[i])
            log(f"relative error vs eager fp32, {k}: eager bf16 {RES[f'accuracy_{k}_eager_bf16']:.2e}, "
                f"compiled bf16 {RES[f'accuracy_{k}_compiled_bf16']:.2e}")
        for blk in m.modules():
            if isinstance(blk, CrossAttentionBlock): blk.shift = None

    # --- super-resolution -------------------------------------------------------------------------------------------
    def superres():
        peak(dev, True)
        torch.manual_seed(0)
        sr = SuperResUNet(scfg).to(dev).eval()
        unit_heads(sr, [sr.out[2]])
        log(f"SR model: {count_parameters(sr):,} parameters")
        Fr = jcfg.video_size[0]
        lo = (torch.rand(B, Fr, 3, scfg.small_size, scfg.small_size, generator=torch.Generator().manual_seed(2)) * 2 - 1).to(dev)
        x = torch.randn(B * Fr, 3, scfg.large_size, scfg.large_size, device=dev)
        tt = torch.full((B * Fr,), 500, device=dev)
        def fwd(model):
            def f():
                with torch.no_grad(), amp(): return model(x, tt, lo.flatten(0, 1))
            return f
        RES['sr_eager_s'] = timeit(fwd(sr), dev, 2, R)
        log(f"SR forward, eager {PREC}, {B} clips ({B * Fr} frames): {RES['sr_eager_s'] * 1e3:.1f} ms")
        if dev.type == 'cuda':
            sr = sr.to(memory_format=torch.channels_last)
            RES['sr_eager_cl_s'] = timeit(fwd(sr), dev, 2, R)
            log(f"SR forward, eager {PREC} + channels-last: {RES['sr_eager_cl_s'] * 1e3:.1f} ms")
            if RES['sr_eager_cl_s'] >= RES['sr_eager_s']: sr = sr.to(memory_format=torch.contiguous_format)
        eager_best = min(RES['sr_eager_s'], RES.get('sr_eager_cl_s', 1e9))
        flops = 1.263e12 * B * Fr if a.gpu else float('nan')
        log(f"   eager best {flops / eager_best / 1e12:.0f} TFLOP/s (1,263 GFLOP per frame)")
        cs = compile_model(sr, sr_mode, backend)
        t0 = time.perf_counter(); fwd(cs)(); sync(dev)
        RES['sr_compile_s'] = time.perf_counter() - t0
        log(f"SR compile + first call: {RES['sr_compile_s']:.1f} s")
        peak(dev, True)
        RES['sr_compiled_s'] = timeit(fwd(cs), dev, 2, 2 * R); RES['sr_compiled_peak_gb'] = peak(dev)
        log(f"SR forward, compiled {PREC} ({sr_mode}), {B * Fr} frames: {RES['sr_compiled_s'] * 1e3:.1f} ms "
            f"({flops / RES['sr_compiled_s'] / 1e12:.0f} TFLOP/s, peak {RES['sr_compiled_peak_gb']:.1f} GB); "
            f"{eager_best / RES['sr_compiled_s']:.2f}x eager")
        if a.profile_compiled and dev.type == 'cuda':
            from torch.profiler import profile, ProfilerActivity
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(2): fwd(cs)()
                sync(dev)
            table = prof.key_averages().table(sort_by='self_cuda_time_total', row_limit=80, max_name_column_width=110)
            log("compiled SR profile, 2 forwards:"); log('\n'.join(table.splitlines()[:40]))
            if a.log: Path(a.log).with_suffix('.sr_profile.txt').write_text(table)
        steps = 25 if a.gpu else 3
        def loop():
            with amp(): return super_resolve(cs, lo, steps=steps, generator=torch.Generator().manual_seed(0))
        RES['sr_steps'] = steps
        RES['sr_loop_compiled_s'] = timeit(loop, dev, 1, 2)
        RES['sr_clip_compiled_s'] = RES['sr_loop_compiled_s'] / B
        log(f"SR DDIM-{steps} loop, compiled, {B} clips: {RES['sr_loop_compiled_s']:.2f} s = {RES['sr_clip_compiled_s']:.2f} s per clip")
        st['sr'], st['csr'] = sr, cs
    # --- end to end: joint batches + SR, as generate_clips does them (mp4 writing left out) --------------------------
    def end_to_end():
        cm, cs = st['cjoint'], st['csr']
        prec = PREC
        n_batches = math.ceil(a.clips / B)
        sync(dev); t0 = time.perf_counter(); nfes = []
        for b in range(n_batches):
            joint_seed, sr_seed = batch_seeds(1010, b)
            xs, nfe = sample_joint(cm, B, seed=joint_seed, sampler='dpm_solver++', precision=prec); nfes.append(nfe)
            with amp():
                video = super_resolve(cs, xs['video'], steps=25 if a.gpu else 3,
                                      generator=torch.Generator().manual_seed(sr_seed))
            for j in range(B): to_clip_arrays(video[j], xs['audio'][j])
        sync(dev); dt = time.perf_counter() - t0
        per = dt / (n_batches * B)
        RES['e2e_clips'], RES['e2e_s'], RES['e2e_nfe'] = n_batches * B, dt, nfes
        RES['gen96_est_s'] = 96 * per
        log(f"end to end, compiled, {n_batches * B} clips (NFE {nfes}): {dt:.1f} s = {per:.2f} s per clip "
            f"-> 96 clips {RES['gen96_est_s'] / 60:.2f} min (+ one-off compile {RES['joint_compile_best_s'] + RES['sr_compile_s']:.0f} s)")

    def trainer_fp16():
        from savgbench.baselines.train import TrainConfig, SyntheticClips, train_loop, joint_loss_fn
        from savgbench.baselines.diffusion import GaussianDiffusion
        st.clear(); peak(dev, True)
        torch.manual_seed(0)
        data = SyntheticClips(8, jcfg.video_size, jcfg.audio_size)
        cfg = TrainConfig(preset=RES['preset'], batch_size=B, max_steps=6, mixed_precision='fp16' if a.gpu else 'no',
                          save_every=10 ** 9, log_every=10 ** 9)
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            hist = train_loop(CoupledUNet(jcfg), joint_loss_fn(GaussianDiffusion(1000)), data, cfg, d, progress=False)
            dt = time.perf_counter() - t0
            size = sum(f.stat().st_size for f in Path(d).glob('*.pt')) / 1e9
        RES['train_fp16_losses'] = hist; RES['train_fp16_wall_s'] = dt; RES['train_fp16_peak_gb'] = peak(dev)
        log(f"train_loop {cfg.mixed_precision}, {len(hist)} steps at batch {B} (+ model build and a {size:.1f} GB checkpoint): "
            f"{dt:.1f} s, losses {[round(h, 4) for h in hist]}, all finite {all(math.isfinite(h) for h in hist)}, "
            f"peak {RES['train_fp16_peak_gb']:.1f} GB")

    if a.only == 'joint':
        log(f"## joint only ({card}): eager {min(RES['joint_eager_s'], RES['joint_eager_cl_s']) * 1e3:.1f} ms; compiled "
            + ', '.join(f"{k[len('joint_compiled'):-2].strip('_') or 'default'} {v * 1e3:.1f} ms" for k, v in RES.items()
                        if k.startswith('joint_compiled') and k.endswith('_s')))
        save(); return RES
    section('superres', superres)
    if a.only == 'sr':
        log(f"## SR only ({card}): forward eager {RES.get('sr_eager_s', float('nan')) * 1e3:.1f} ms, compiled ({sr_mode}) "
            f"{RES.get('sr_compiled_s', float('nan')) * 1e3:.1f} ms; DDIM-{RES.get('sr_steps')} per clip {RES.get('sr_clip_compiled_s', float('nan')):.2f} s "
            f"(compile {RES.get('sr_compile_s', float('nan')):.0f} s)")
        save(); return RES
    if 'csr' in st and 'cjoint' in st and left() > 60: section('end_to_end', end_to_end)
    if not a.no_train and left() > 60: section('trainer_fp16', trainer_fp16)
    if left() > 150 or not a.gpu:
        st.clear(); torch.manual_seed(0)
        m = CoupledUNet(jcfg).to(dev).eval(); unit_heads(m, [m.video_out[2].video_conv, m.audio_out[2].audio_conv])
        g = torch.Generator().manual_seed(1)
        st['joint'] = m
        st['joint_inputs'] = (torch.randn(B, *jcfg.video_size, generator=g).to(dev),
                              torch.randn(B, *jcfg.audio_size, generator=g).to(dev), torch.full((B,), 500, device=dev, dtype=torch.long))
        section('accuracy', accuracy)

    # --- summary ------------------------------------------------------------------------------------------------------
    log("")
    log(f"## summary ({card})")
    fwd_best = min(v for k, v in RES.items() if k.startswith('joint_') and k.endswith('_s') and 'compile_' not in k
                   and 'batch' not in k)
    log(f"joint forward batch {B}: eager {min(RES.get('joint_eager_s', 1e9), RES.get('joint_eager_cl_s', 1e9)) * 1e3:.1f} ms, "
        f"compiled {min(v for k, v in RES.items() if k.startswith('joint_compiled') and k.endswith('_s')) * 1e3:.1f} ms "
        f"({RES.get('joint_compiled_best_variant')})")
    if 'sr_clip_compiled_s' in RES: log(f"SR per clip (DDIM-{RES['sr_steps']}), compiled: {RES['sr_clip_compiled_s']:.2f} s")
    if 'gen96_est_s' in RES: log(f"96 clips: {RES['gen96_est_s'] / 60:.2f} min (measured on {RES['e2e_clips']} clips)")
    if a.gpu:
        log(f"vs the reference on an H200 (this card: {card}): joint forward {ANCHORS_H200['joint_forward_s'] / fwd_best:.2f}x "
            f"(target 5x)" + (f", SR per clip {ANCHORS_H200['sr_clip_s'] / RES['sr_clip_compiled_s']:.2f}x" if 'sr_clip_compiled_s' in RES else '')
            + (f", 96 clips {ANCHORS_H200['gen96_s'] / RES['gen96_est_s']:.2f}x (target 5x)" if 'gen96_est_s' in RES else ''))
    from torch._dynamo.utils import counters
    RES['dynamo_unique_graphs'] = counters['stats']['unique_graphs']
    log(f"graphs compiled in this process: {RES['dynamo_unique_graphs']} (one per model and shape is the ideal)")
    RES['wall_s'] = time.time() - T0
    log(f"total {RES['wall_s']:.0f} s"); save()
    return RES


if __name__ == '__main__':
    main()
