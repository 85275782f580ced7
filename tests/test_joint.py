"""Joint baseline: official state_dict names and shapes, parameter counts, RS-MMA against a per-frame loop,
thresholding, exact resumption, and the train -> sample -> valid clips path on CPU."""
import math, shutil
from pathlib import Path
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from savgbench.core import WeightsError
from savgbench.baselines.diffusion import dynamic_threshold
from savgbench.baselines.mmdiffusion import (MMDiffusionConfig, CoupledUNet, CrossAttentionBlock, rs_mma, _rs_mma_loop,
                                             load_joint_weights, paper_parameter_count)
from savgbench.baselines.superres import SRConfig, SuperResUNet, load_sr_weights, sr_parameter_count

torch.set_num_threads(1)


# --- the reference's parameter names and shapes, enumerated from the reference constructors -------------------------
# (MM-Diffusion `MultimodalUNet` and guided-diffusion `SuperResModel`; written independently of our modules)

def official_joint_shapes(frames=20, video_ch=3, audio_ch=2, mc=128, mult=(1, 2, 3, 4), nrb=2, video_attn=(2, 4, 8),
                          audio_attn=(), xattn_res=(2, 4, 8), middle_xattn=True):
    sd, ted = {}, mc
    def p(name, *shape): sd[name] = shape
    def gn(n, c): p(n + '.GroupNorm.weight', c); p(n + '.GroupNorm.bias', c)
    def conv(n, cout, cin, *k): p(n + '.weight', cout, cin, *k); p(n + '.bias', cout)
    def vconv(n, cin, cout): conv(n + '.video_conv_spatial', cout, cin, 3, 3); conv(n + '.video_conv_temporal', cout, cout, 3)
    def v3d(n, cin, cout, k): conv(n + '.video_conv', cout, cin, k, k, k)
    def aconv(n, cin, cout, k): conv(n + '.audio_conv', cout, cin, k)
    def attn(n, c): gn(n + '.norm', c); conv(n + '.qkv', 3 * c, c, 1); conv(n + '.proj_out', c, c, 1)
    def res(n, cin, cout, va=False, aa=False):
        gn(n + '.video_in_layers.0', cin); vconv(n + '.video_in_layers.2', cin, cout)
        gn(n + '.audio_in_layers.0', cin); aconv(n + '.audio_in_layers.2', cin, cout, 3)
        p(n + '.emb_layers.1.weight', 2 * cout, ted); p(n + '.emb_layers.1.bias', 2 * cout)
        gn(n + '.video_out_layers.0', cout); v3d(n + '.video_out_layers.3', cout, cout, 1)
        gn(n + '.audio_out_layers.0', cout); aconv(n + '.audio_out_layers.3', cout, cout, 1)
        if cin != cout: v3d(n + '.video_skip_connection', cin, cout, 1); aconv(n + '.audio_skip_connection', cin, cout, 1)
        if va: attn(n + '.spatial_attention_block', cout); attn(n + '.temporal_attention_block', cout)
        if aa: attn(n + '.audio_attention_block', cout)
    def xattn(n, c):
        gn(n + '.v_norm', c); gn(n + '.a_norm', c); conv(n + '.v_qkv', 3 * c, c, 1); conv(n + '.a_qkv', 3 * c, c, 1)
        v3d(n + '.video_proj_out', c, c, 1); aconv(n + '.audio_proj_out', c, c, 1)
    p('time_embed.0.weight', ted, mc); p('time_embed.0.bias', ted); p('time_embed.2.weight', ted, ted); p('time_embed.2.bias', ted)
    ch = inch = mult[0] * mc
    vconv('input_blocks.0.0.video_conv', video_ch, ch); aconv('input_blocks.0.0.audio_conv', audio_ch, ch, 3)
    chans, ds, b = [ch], 1, 1
    for level, m in enumerate(mult):
        for _ in range(nrb):
            res(f'input_blocks.{b}.0', ch, m * mc, ds in video_attn, ds in audio_attn); ch = m * mc
            if ds in xattn_res: xattn(f'input_blocks.{b}.1', ch)
            chans.append(ch); b += 1
        if level != len(mult) - 1:
            res(f'input_blocks.{b}.0', ch, ch); chans.append(ch); b += 1; ds *= 2
    res('middle_blocks.0', ch, ch, True, True)
    if middle_xattn: xattn('middle_blocks.1', ch)
    res(f'middle_blocks.{2 if middle_xattn else 1}', ch, ch, True, True)
    b = 0
    for level, m in list(enumerate(mult))[::-1]:
        for i in range(nrb + 1):
            res(f'output_blocks.{b}.0', ch + chans.pop(), m * mc, ds in video_attn, ds in audio_attn); ch = m * mc
            j = 1
            if ds in xattn_res: xattn(f'output_blocks.{b}.1', ch); j = 2
            if level and i == nrb: res(f'output_blocks.{b}.{j}', ch, ch); ds //= 2
            b += 1
    p('audio_out.0.GroupNorm.weight', ch); p('audio_out.0.GroupNorm.bias', ch); aconv('audio_out.2', inch, audio_ch, 3)
    p('video_out.0.GroupNorm.weight', ch); p('video_out.0.GroupNorm.bias', ch); v3d('video_out.2', inch, video_ch, 3)
    return sd


def official_sr_shapes(mc=192, mult=(1, 1, 2, 2, 4, 4), nrb=2, attn_ds=(8, 16, 32), out_ch=6, num_classes=None):
    sd, ted = {}, 4 * mc
    def p(name, *shape): sd[name] = shape
    def gn(n, c): p(n + '.weight', c); p(n + '.bias', c)
    def conv(n, cout, cin, *k): p(n + '.weight', cout, cin, *k); p(n + '.bias', cout)
    def res(n, cin, cout):
        gn(n + '.in_layers.0', cin); conv(n + '.in_layers.2', cout, cin, 3, 3)
        p(n + '.emb_layers.1.weight', 2 * cout, ted); p(n + '.emb_layers.1.bias', 2 * cout)
        gn(n + '.out_layers.0', cout); conv(n + '.out_layers.3', cout, cout, 3, 3)
        if cin != cout: conv(n + '.skip_connection', cout, cin, 1, 1)
    def attn(n, c): gn(n + '.norm', c); conv(n + '.qkv', 3 * c, c, 1); conv(n + '.proj_out', c, c, 1)
    p('time_embed.0.weight', ted, mc); p('time_embed.0.bias', ted); p('time_embed.2.weight', ted, ted); p('time_embed.2.bias', ted)
    if num_classes: p('label_emb.weight', num_classes, ted)
    ch = inch = mult[0] * mc
    conv('input_blocks.0.0', ch, 6, 3, 3)
    chans, ds, b = [ch], 1, 1
    for level, m in enumerate(mult):
        for _ in range(nrb):
            res(f'input_blocks.{b}.0', ch, m * mc); ch = m * mc
            if ds in attn_ds: attn(f'input_blocks.{b}.1', ch)
            chans.append(ch); b += 1
        if level != len(mult) - 1:
            res(f'input_blocks.{b}.0', ch, ch); chans.append(ch); b += 1; ds *= 2
    res('middle_block.0', ch, ch); attn('middle_block.1', ch); res('middle_block.2', ch, ch)
    b = 0
    for level, m in list(enumerate(mult))[::-1]:
        for i in range(nrb + 1):
            res(f'output_blocks.{b}.0', ch + chans.pop(), m * mc); ch = m * mc
            j = 1
            if ds in attn_ds: attn(f'output_blocks.{b}.1', ch); j = 2
            if level and i == nrb: res(f'output_blocks.{b}.{j}', ch, ch); ds //= 2
            b += 1
    gn('out.0', ch); conv('out.2', out_ch, inch, 3, 3)
    return sd


def _meta_shapes(model_cls, cfg):
    with torch.device('meta'): m = model_cls(cfg)
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}

def _random_sd(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) for k, s in shapes.items()}

TINY_OFFICIAL = dict(frames=4, mc=32, mult=(1, 2), nrb=1, video_attn=(2,), xattn_res=(2,))


def test_paper_joint_matches_official_names_and_count():
    off = official_joint_shapes()
    assert _meta_shapes(CoupledUNet, MMDiffusionConfig.paper()) == off
    assert sum(math.prod(s) for s in off.values()) == 133_676_293 == paper_parameter_count()


def test_paper_sr_matches_official_names_and_count():
    off = official_sr_shapes()
    assert _meta_shapes(SuperResUNet, SRConfig.paper()) == off
    assert sum(math.prod(s) for s in off.values()) == 311_027_910 == sr_parameter_count('paper')
    assert _meta_shapes(SuperResUNet, SRConfig.imagenet()) == official_sr_shapes(num_classes=1000)


def test_strict_load_official_joint_state_dict(tmp_path):
    sd = _random_sd(official_joint_shapes(**TINY_OFFICIAL))
    torch.save(sd, tmp_path / 'model330011.pt')            # the reference trainer saves a bare state_dict
    m = load_joint_weights(CoupledUNet(MMDiffusionConfig.tiny()), tmp_path / 'model330011.pt', strict=True)
    for k, v in m.state_dict().items(): assert torch.equal(v, sd[k]), k
    ddp = {'module.' + k: v for k, v in sd.items()}                # saved from a DistributedDataParallel wrapper
    m = load_joint_weights(CoupledUNet(MMDiffusionConfig.tiny()), ddp)
    for k, v in m.state_dict().items(): assert torch.equal(v, sd[k]), k
    with pytest.raises(WeightsError, match='shapes differ'):
        load_joint_weights(CoupledUNet(MMDiffusionConfig.tiny(model_channels=64)), sd)


def test_load_imagenet_upsampler_drops_label_embedding():
    shapes = official_sr_shapes(mc=32, mult=(1, 2), nrb=1, attn_ds=(2,), num_classes=1000)
    sd = _random_sd(shapes)
    m = load_sr_weights(SuperResUNet(SRConfig.tiny()), sd)
    assert torch.equal(m.input_blocks[0][0].weight, sd['input_blocks.0.0.weight'])
    with pytest.raises(WeightsError, match='missing'):
        load_sr_weights(SuperResUNet(SRConfig.tiny()), {k: v for k, v in sd.items() if not k.startswith('out.')})


# --- RS-MMA ---------------------------------------------------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(frames=st.integers(1, 6), window=st.integers(1, 6), shift=st.integers(0, 6), per=st.integers(1, 5),
       extra=st.integers(0, 4), hw=st.integers(1, 5), seed=st.integers(0, 1000))
def test_rs_mma_equals_per_frame_loop(frames, window, shift, per, extra, hw, seed):
    window = min(window, frames); shift = min(shift, frames - window)
    extra = min(extra, per - 1) if frames > 1 else 0
    L = frames * per + extra                                # includes the reference's floor quirk
    g = torch.Generator().manual_seed(seed)
    qv, kv, vv = (torch.randn(2, frames, hw, 2, 4, generator=g, dtype=torch.float64) for _ in range(3))
    qa, ka, va = (torch.randn(2, L, 2, 4, generator=g, dtype=torch.float64) for _ in range(3))
    ov, oa = rs_mma(qv, kv, vv, qa, ka, va, window, shift)
    rv, ra = _rs_mma_loop(qv, kv, vv, qa, ka, va, window, shift)
    torch.testing.assert_close(ov, rv); torch.testing.assert_close(oa, ra)


def test_middle_block_is_full_cross_attention():
    net = CoupledUNet(MMDiffusionConfig.tiny())
    mid = net.middle_blocks[1]
    assert mid.local_window == 4 and not mid.window_shift


# --- thresholding ---------------------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(scale=st.floats(0.05, 20), seed=st.integers(0, 10_000))
def test_dynamic_threshold_formula(scale, seed):
    x = torch.randn(3, 257, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale
    y = dynamic_threshold(x)
    for i in range(3):
        s = max(1.0, float(np.quantile(np.abs(x[i].numpy()), 0.995)))
        np.testing.assert_allclose(y[i].numpy(), np.clip(x[i].numpy(), -s, s) / s, rtol=1e-12, atol=1e-12)


# --- training and sampling ------------------------------------------------------------------------------------------

def test_resume_is_exact(tmp_path):
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    cfg = TrainConfig(preset='tiny', batch_size=2, lr=1e-3, max_steps=6, mixed_precision='no', save_every=3, log_every=3)
    full = train_joint(SyntheticClips(5), tmp_path / 'a', cfg, progress=False)
    (tmp_path / 'b').mkdir()
    shutil.copy(tmp_path / 'a' / 'checkpoint_3.pt', tmp_path / 'b' / 'checkpoint_3.pt')
    resumed = train_joint(SyntheticClips(5), tmp_path / 'b', cfg, progress=False)
    assert resumed == full
    a = torch.load(tmp_path / 'a' / 'checkpoint_6.pt', weights_only=False)
    b = torch.load(tmp_path / 'b' / 'checkpoint_6.pt', weights_only=False)
    for k in a['ema']: assert torch.equal(a['ema'][k], b['ema'][k]), k


def test_loss_log_rows_survive_a_resume_and_a_fresh_start_keeps_the_old_run(tmp_path, capsys):
    "Rows at log steps, at checkpoints and at the end; a resume rewrites the rows after its checkpoint; --no-resume sets the old run aside."
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips, read_train_log
    cfg = TrainConfig(preset='tiny', batch_size=1, lr=1e-3, max_steps=11, mixed_precision='no', save_every=6,
                      log_every=4, keep_checkpoints=5)
    hist = train_joint(SyntheticClips(4), tmp_path / 'a', cfg, progress=False)
    log = read_train_log(tmp_path / 'a')
    assert log['step'].tolist() == [4, 6, 8, 11] and log['steps'].tolist() == [4, 2, 2, 3]
    bounds = [0, 4, 6, 8, 11]
    np.testing.assert_allclose(log['loss'], [np.mean(hist[a:b]) for a, b in zip(bounds, bounds[1:])], rtol=1e-6)
    shutil.copytree(tmp_path / 'a', tmp_path / 'b')
    (tmp_path / 'b' / 'checkpoint_11.pt').unlink()              # stopped after step 6's checkpoint, rows 8 and 11 written
    assert train_joint(SyntheticClips(4), tmp_path / 'b', cfg, progress=False) == hist
    again = read_train_log(tmp_path / 'b')
    assert again['step'].tolist() == log['step'].tolist()       # no duplicated rows
    losses = [c for c in log.columns if c.startswith('loss')]
    assert np.array_equal(again[losses].to_numpy(), log[losses].to_numpy(), equal_nan=True)
    # a fresh start in the same folder: the old run moves aside instead of being resumed later or pruning the new one
    fresh = TrainConfig(preset='tiny', batch_size=1, lr=1e-3, max_steps=4, mixed_precision='no', save_every=2,
                        log_every=4, keep_checkpoints=2)
    capsys.readouterr()
    train_joint(SyntheticClips(4), tmp_path / 'a', fresh, resume=False)
    assert 'previous_run_1' in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / 'a').glob('checkpoint_*.pt')) == ['checkpoint_2.pt', 'checkpoint_4.pt']
    assert sorted(p.name for p in (tmp_path / 'a' / 'previous_run_1').iterdir()) == \
        ['checkpoint_11.pt', 'checkpoint_6.pt', 'train_log.csv']
    assert read_train_log(tmp_path / 'a')['step'].tolist() == [2, 4]
    assert read_train_log(tmp_path / 'a' / 'previous_run_1')['step'].tolist() == [4, 6, 8, 11]


def test_train_cli_then_sample_cli_writes_valid_clips(tmp_path):
    from savgbench.io import write_clip, validate_clip
    from savgbench.baselines.train import train_joint_cli, train_sr_cli
    from savgbench.baselines.sample import sample_cli
    rng = np.random.default_rng(0)
    data = tmp_path / 'data' / 'video_dev'; data.mkdir(parents=True)
    for i in range(2):
        write_clip(data / f'clip{i}.mp4', rng.integers(0, 255, (20, 256, 256, 3), dtype=np.uint8),
                   (rng.standard_normal((2, 80000)) * 0.1).astype(np.float32))
    common = ['--preset', 'tiny', '--steps', '2', '--batch-size', '2', '--mixed-precision', 'no', '--save-every', '2',
              '--num-workers', '0']
    assert train_joint_cli([str(tmp_path / 'data'), '--out', str(tmp_path / 'joint'), *common]) == 0
    assert train_sr_cli([str(tmp_path / 'data'), '--out', str(tmp_path / 'sr'), *common]) == 0
    assert sample_cli(['--checkpoint', str(tmp_path / 'joint' / 'checkpoint_2.pt'),
                       '--sr-checkpoint', str(tmp_path / 'sr' / 'checkpoint_2.pt'), '--num', '2', '--batch-size', '2',
                       '--sr-steps', '3', '--sampler', 'dpm_solver++_2m', '--steps', '4', '--device', 'cpu',
                       '--out', str(tmp_path / 'clips')]) == 0
    clips = sorted((tmp_path / 'clips').glob('*.mp4'))
    assert [c.name for c in clips] == ['sample_00000.mp4', 'sample_00001.mp4']
    for c in clips: validate_clip(c)
    # the folder records its settings: the same command resumes (nothing rewritten), other settings are refused
    import json
    from savgbench.core import SAVGBenchError
    manifest = json.loads((tmp_path / 'clips' / 'sampling.json').read_text())['settings']
    assert (manifest['seed'], manifest['upscale'], manifest['sr_steps']) == (1010, 'super-resolution', 3)
    args = ['--checkpoint', str(tmp_path / 'joint' / 'checkpoint_2.pt'), '--sr-checkpoint', str(tmp_path / 'sr' / 'checkpoint_2.pt'),
            '--num', '2', '--batch-size', '2', '--sr-steps', '3', '--sampler', 'dpm_solver++_2m', '--steps', '4',
            '--device', 'cpu', '--out', str(tmp_path / 'clips')]
    mtimes = [c.stat().st_mtime_ns for c in clips]
    assert sample_cli(args) == 0 and [c.stat().st_mtime_ns for c in clips] == mtimes
    with pytest.raises(SAVGBenchError, match='seed: 1010 -> 7'):
        sample_cli(args + ['--seed', '7'])
    with pytest.raises(SAVGBenchError, match="upscale: 'super-resolution' -> 'bicubic'"):
        sample_cli([a for a in args if a not in ('--sr-checkpoint', str(tmp_path / 'sr' / 'checkpoint_2.pt'))])


def test_sampling_without_sr_says_so(tmp_path, capsys):
    from savgbench.baselines.sample import sample_cli
    net = CoupledUNet(MMDiffusionConfig.tiny())
    torch.save({'model': net.state_dict(), 'ema': None, 'model_kind': 'joint', 'model_config': vars(net.cfg)}, tmp_path / 'j.pt')
    assert sample_cli(['--checkpoint', str(tmp_path / 'j.pt'), '--num', '1', '--batch-size', '1', '--sampler',
                       'dpm_solver++_2m', '--steps', '1', '--device', 'cpu', '--out', str(tmp_path / 'c'),
                       '--sr-steps=10']) == 0
    err = capsys.readouterr().err
    assert 'the 16x16 frames are upsampled bicubically to 256x256' in err, err      # the tiny preset's frames
    assert '--sr-steps applies to super-resolution' in err, err                   # also written as --sr-steps=10
    assert '--steps applies to --sampler' not in err, err                        # dpm_solver++_2m takes --steps
    assert sample_cli(['--checkpoint', str(tmp_path / 'j.pt'), '--num', '1', '--batch-size', '1', '--ste', '3',
                       '--device', 'cpu', '--out', str(tmp_path / 'd')]) == 0        # abbreviated; the adaptive sampler
    assert '--steps applies to --sampler dpm_solver++_2m only; dpm_solver++ ignores it' in capsys.readouterr().err


def test_sample_writes_clips_as_the_reference_did_when_asked(tmp_path, capsys):
    """--write-as reference writes MP3 clips (crf 23) that pass check-clips, records the writer, and a folder is never
    finished by the other writer; --audio-codec belongs to savgbench's writer."""
    from savgbench.baselines.sample import sample_cli
    import json
    from savgbench.core import SAVGBenchError
    from savgbench.io import probe_clip, check_clips_cli
    net = CoupledUNet(MMDiffusionConfig.tiny())
    torch.save({'model': net.state_dict(), 'ema': None, 'model_kind': 'joint', 'model_config': vars(net.cfg)}, tmp_path / 'j.pt')
    args = ['--checkpoint', str(tmp_path / 'j.pt'), '--num', '1', '--batch-size', '1', '--sampler', 'dpm_solver++_2m',
            '--steps', '1', '--device', 'cpu', '--out', str(tmp_path / 'ref')]
    assert sample_cli(args + ['--write-as', 'reference']) == 0
    clip = tmp_path / 'ref' / 'sample_00000.mp4'
    assert probe_clip(clip).audio_codec == 'mp3float' and check_clips_cli([str(clip), '--quiet']) == 0
    rec = json.loads((tmp_path / 'ref' / 'sampling.json').read_text())['settings']
    assert (rec['writer'], rec['audio_codec']) == ('reference', 'mp3')
    with pytest.raises(SAVGBenchError, match="writer: 'reference' -> 'savgbench'"): sample_cli(args)
    capsys.readouterr()
    with pytest.raises(SystemExit): sample_cli(args + ['--write-as', 'reference', '--audio-codec', 'aac'])
    assert '--audio-codec: applies to --write-as savgbench' in capsys.readouterr().err


def test_sample_and_export_take_a_run_folder_and_a_plain_file_names_its_preset_option(tmp_path, capsys):
    "A run folder stands for its newest checkpoint; a plain state_dict of another preset says which option to give."
    from savgbench.baselines.sample import sample_cli
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips, export_weights_cli
    from savgbench.core import WeightsError, SAVGBenchError
    cfg = TrainConfig(preset='tiny', batch_size=2, max_steps=2, mixed_precision='no', save_every=1, keep_checkpoints=2)
    train_joint(SyntheticClips(2), tmp_path / 'run', cfg, progress=False)
    common = ['--num', '1', '--batch-size', '1', '--sampler', 'dpm_solver++_2m', '--steps', '1', '--device', 'cpu']
    assert sample_cli(['--checkpoint', str(tmp_path / 'run'), *common, '--out', str(tmp_path / 'a')]) == 0
    assert f"its newest checkpoint, {tmp_path / 'run' / 'checkpoint_2.pt'}" in capsys.readouterr().err
    assert sample_cli(['--checkpoint', str(tmp_path / 'run' / 'checkpoint_2.pt'), *common, '--out', str(tmp_path / 'b')]) == 0
    assert (tmp_path / 'a' / 'sample_00000.mp4').read_bytes() == (tmp_path / 'b' / 'sample_00000.mp4').read_bytes()
    train_joint(SyntheticClips(2), tmp_path / 'run', TrainConfig(**{**vars(cfg), 'max_steps': 3}), progress=False)
    with pytest.raises(SAVGBenchError, match="stands for the run's newest checkpoint, which is not the one those clips"):
        sample_cli(['--checkpoint', str(tmp_path / 'run'), *common, '--out', str(tmp_path / 'a')])
    assert export_weights_cli([str(tmp_path / 'run'), str(tmp_path / 'plain.pt'), '--plain']) == 0
    assert 'at step 3' in capsys.readouterr().out
    with pytest.raises(WeightsError, match="the 'paper' preset's does not fit: give the one it was trained with "
                                           r"\(--preset tiny / paper\)"):
        sample_cli(['--checkpoint', str(tmp_path / 'plain.pt'), *common, '--out', str(tmp_path / 'c')])
    assert sample_cli(['--checkpoint', str(tmp_path / 'plain.pt'), '--preset', 'tiny', *common, '--out', str(tmp_path / 'c')]) == 0


@pytest.mark.parametrize('cli,bad', [('sample', ['--num', '0']), ('sample', ['--batch-size', '0']),
                                     ('sample', ['--num', '-3']), ('sample', ['--steps', '0']),
                                     ('sample', ['--sr-steps', '0']), ('sample', ['--writers', '-1']),
                                     ('train', ['--batch-size', '0']), ('train', ['--steps', '-1']),
                                     ('train', ['--save-every', '0']), ('train', ['--log-every', 'x'])])
def test_bad_counts_are_usage_errors(tmp_path, capsys, cli, bad):
    from savgbench.baselines.sample import sample_cli
    from savgbench.baselines.train import train_joint_cli
    if cli == 'sample': run = lambda: sample_cli(['--checkpoint', str(tmp_path / 'none.pt'), '--out', str(tmp_path / 'o'), *bad])
    else: run = lambda: train_joint_cli([str(tmp_path), '--out', str(tmp_path / 'o'), '--preset', 'tiny', *bad])
    with pytest.raises(SystemExit) as e: run()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert bad[0] in err and ('at least' in err or 'not an integer' in err)
    assert not (tmp_path / 'o').exists()


def test_trackers_that_are_not_installed_are_refused_before_any_work(tmp_path, capsys):
    from accelerate.tracking import get_available_trackers
    from savgbench.baselines.train import train_joint_cli, train_sr_cli
    have = {str(getattr(t, 'value', t)) for t in get_available_trackers()}
    for cli in (train_joint_cli, train_sr_cli):
        if 'tensorboard' not in have:
            with pytest.raises(SystemExit) as e: cli([str(tmp_path), '--out', str(tmp_path / 'o'), '--log-with', 'tensorboard'])
            assert e.value.code == 2 and 'pip install tensorboard' in capsys.readouterr().err
        with pytest.raises(SystemExit) as e: cli([str(tmp_path), '--out', str(tmp_path / 'o'), '--log-with', 'tensorbored'])
        assert e.value.code == 2 and "invalid choice: 'tensorbored'" in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()


def test_resuming_with_another_model_is_a_clear_error(tmp_path):
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    from savgbench.core import SAVGBenchError
    cfg = TrainConfig(preset='tiny', batch_size=2, max_steps=1, mixed_precision='no', save_every=1)
    train_joint(SyntheticClips(2), tmp_path, cfg, progress=False)
    other = MMDiffusionConfig.tiny(model_channels=64)
    with pytest.raises(SAVGBenchError, match=r'holds a model of another configuration \(model_channels: 32 -> 64\).*--no-resume'):
        train_joint(SyntheticClips(2), tmp_path, TrainConfig(preset='tiny', batch_size=2, max_steps=2,
                                                             mixed_precision='no'), model_cfg=other, progress=False)
    assert other.gradient_checkpointing is False                 # the caller's configuration is not changed
    train_joint(SyntheticClips(2), tmp_path, TrainConfig(preset='tiny', batch_size=2, max_steps=2, mixed_precision='no',
                gradient_checkpointing=True), model_cfg=other, resume=False, progress=False)
    assert other.gradient_checkpointing is False


def test_clip_audio_a_little_short_is_zero_padded_not_stretched(tmp_path, monkeypatch):
    import types, savgbench.io
    from savgbench.baselines.train import ClipDataset
    (tmp_path / 'c.mp4').touch()
    tone = torch.sin(torch.arange(79000) * 0.05).repeat(2, 1)             # 1000 samples short of 5 s
    clip = types.SimpleNamespace(video=np.zeros((20, 64, 64, 3), np.uint8), audio=tone.numpy())
    monkeypatch.setattr(savgbench.io, 'read_clip', lambda path: clip)
    a = ClipDataset(tmp_path, (20, 3, 64, 64), (2, 80000))[0]['audio']
    assert a.shape == (2, 80000) and torch.equal(a[:, :79000], tone) and not a[:, 79000:].any()
    clip.audio = torch.sin(torch.arange(81000) * 0.05).repeat(2, 1).numpy()   # too long: cut, not squeezed
    assert torch.equal(ClipDataset(tmp_path, (20, 3, 64, 64), (2, 80000))[0]['audio'], torch.as_tensor(clip.audio[:, :80000]))
    small = ClipDataset(tmp_path, (20, 3, 64, 64), (2, 1024))[0]['audio']      # a smaller model: resampled to fit
    assert small.shape == (2, 1024)



def test_joint_sampling_is_seeded():
    from savgbench.baselines.sample import sample_joint
    net = CoupledUNet(MMDiffusionConfig.tiny())
    torch.nn.init.normal_(net.video_out[2].video_conv.weight, std=0.05)
    torch.nn.init.normal_(net.audio_out[2].audio_conv.weight, std=0.05)
    net.eval()
    a, _ = sample_joint(net, 1, seed=5, sampler='dpm_solver++_2m', steps=3)
    b, _ = sample_joint(net, 1, seed=5, sampler='dpm_solver++_2m', steps=3)
    c, _ = sample_joint(net, 1, seed=6, sampler='dpm_solver++_2m', steps=3)
    assert torch.equal(a['video'], b['video']) and not torch.equal(a['video'], c['video'])


def test_sharded_clip_generation_writes_each_clip_once_and_as_one_process_would(tmp_path):
    "Two processes' shares (rank 0 and 1 of 2) hold every clip once, different clips, the bytes one process writes."
    from savgbench.baselines.sample import generate_clips
    torch.manual_seed(0)
    net = CoupledUNet(MMDiffusionConfig.tiny())
    torch.nn.init.normal_(net.video_out[2].video_conv.weight, std=0.05)
    torch.nn.init.normal_(net.audio_out[2].audio_conv.weight, std=0.05)
    net.eval()
    kw = dict(num=5, batch_size=2, sampler='dpm_solver++_2m', steps=1, writers=0, validate=False, progress=False,
              audio_codec='pcm')
    whole = generate_clips(net, None, tmp_path / 'one', **kw)
    shares = [generate_clips(net, None, tmp_path / 'two', rank=r, world=2, **kw) for r in (0, 1)]
    names = [[p.name for p in share] for share in shares]
    # batches of 2 over 5 clips: batches 0 and 2 (clips 0, 1, 4) are rank 0's, batch 1 (clips 2, 3) rank 1's
    assert names == [['sample_00000.mp4', 'sample_00001.mp4', 'sample_00004.mp4'], ['sample_00002.mp4', 'sample_00003.mp4']]
    assert sorted(p.name for p in (tmp_path / 'two').glob('*.mp4')) == [p.name for p in whole]
    for p in whole: assert (tmp_path / 'two' / p.name).read_bytes() == p.read_bytes(), p.name
    contents = {p.read_bytes() for p in whole}
    assert len(contents) == 5                                   # no clip repeats another (no batch seed reused)


def test_loader_rejects_wrong_checkpoint_kind(tmp_path):
    from savgbench.baselines.sample import load_sr_model
    torch.save({'model': {}, 'model_kind': 'joint', 'model_config': {}}, tmp_path / 'x.pt')
    with pytest.raises(WeightsError, match='not an SR checkpoint'):
        load_sr_model(tmp_path / 'x.pt')
    with pytest.raises(WeightsError, match='not found'):
        load_sr_model(tmp_path / 'missing.pt')
    from savgbench.baselines.sample import load_joint_model
    torch.save({'model': {}, 'model_kind': 'sr', 'model_config': {}}, tmp_path / 'y.pt')
    with pytest.raises(WeightsError, match='not a joint-model checkpoint'):
        load_joint_model(tmp_path / 'y.pt')


def test_a_bare_state_dict_of_the_other_model_is_named_as_such(tmp_path):
    "Plain weights (the official files' format, export-weights --plain) given as the other model's say whose they are."
    from savgbench.baselines.sample import load_joint_model, load_sr_model
    torch.save(SuperResUNet(SRConfig.tiny()).state_dict(), tmp_path / 'sr.pt')
    torch.save(CoupledUNet(MMDiffusionConfig.tiny()).state_dict(), tmp_path / 'joint.pt')
    with pytest.raises(WeightsError, match=r'not a joint-model checkpoint: these are the weights of a super-resolution '
                                           r'U-Net \(no audio layers\): give them as --sr-checkpoint'):
        load_joint_model(tmp_path / 'sr.pt', preset='tiny')
    with pytest.raises(WeightsError, match=r'not an SR checkpoint: these are the weights of the joint model'):
        load_sr_model(tmp_path / 'joint.pt', preset='tiny')
    assert load_sr_model(tmp_path / 'sr.pt', preset='tiny').cfg.small_size == 16      # each in its place: loaded
    with pytest.raises(WeightsError, match="wrong preset"):                             # another preset: the old hint
        load_sr_model(tmp_path / 'sr.pt', preset='paper')


def test_compiled_models_sample_what_eager_models_sample():
    "One graph each (fullgraph): the compiled joint and SR models, through both samplers, give the eager results."
    from savgbench.baselines.sample import sample_joint, compile_model
    from savgbench.baselines.superres import super_resolve
    torch._dynamo.reset()
    net = CoupledUNet(MMDiffusionConfig.tiny())
    torch.nn.init.normal_(net.video_out[2].video_conv.weight, std=0.05)
    torch.nn.init.normal_(net.audio_out[2].audio_conv.weight, std=0.05)
    net.eval()
    # aot_eager runs the traced graph with eager kernels, so even the device-drawn shifts come from the same stream
    cnet = compile_model(net, backend='aot_eager')
    ref, n_ref = sample_joint(net, 2, seed=3, sampler='dpm_solver++_2m', steps=3)
    out, n_out = sample_joint(cnet, 2, seed=3, sampler='dpm_solver++_2m', steps=3)
    assert n_ref == n_out == 3
    for k in ref: assert torch.equal(ref[k], out[k]), k
    sr = SuperResUNet(SRConfig.tiny()).eval()
    torch.nn.init.normal_(sr.out[2].weight, std=0.05)
    lo = ref["video"]
    a = super_resolve(sr, lo, steps=3, generator=torch.Generator().manual_seed(1))
    b = super_resolve(compile_model(sr, backend='aot_eager'), lo, steps=3, generator=torch.Generator().manual_seed(1))
    assert (a - b).abs().max() < 1e-4   # decomposed bilinear upsampling: float rounding only


@pytest.mark.parametrize("audio", [False, True, "2d"])
def test_every_memory_layout_compiles_to_one_graph_with_eager_numbers(audio):
    "Channels-last video with each audio layout traces as one graph (fullgraph) and computes the NCDHW numbers."
    from savgbench.baselines.sample import compile_model
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = CoupledUNet(MMDiffusionConfig.tiny()).eval()
    torch.nn.init.normal_(net.video_out[2].video_conv.weight, std=0.05)
    torch.nn.init.normal_(net.audio_out[2].audio_conv.weight, std=0.05)
    for m in net.modules():
        if isinstance(m, CrossAttentionBlock): m.shift = 1 if m.window_shift else None
    cfg = net.cfg
    v, a, t = torch.randn(2, *cfg.video_size), torch.randn(2, *cfg.audio_size), torch.tensor([5, 600])
    with torch.no_grad():
        ref = net(v, a, t)
        net.use_channels_last(True, audio=audio)
        out = compile_model(net, backend="aot_eager", channels_last=True)(v, a, t)
    assert net.channels_last and net.audio_channels_last == (audio is True) and net.audio_2d == (audio == "2d")
    for r, o in zip(ref, out):
        assert o.shape == r.shape
        torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-5)


def test_background_writers_raise_encoding_errors(tmp_path, monkeypatch):
    """An error in a writer thread stops the run with that error (no half-written files left behind). A codec the
    writer cannot write is refused before any sampling; let through, the writer's own error is raised."""
    from savgbench.core import SAVGBenchError
    from savgbench.baselines import sample
    net = CoupledUNet(MMDiffusionConfig.tiny()).eval()
    kw = dict(num=4, batch_size=2, sampler='dpm_solver++_2m', steps=1, progress=False, audio_codec='mp3', writers=2)
    with pytest.raises(ValueError, match="audio_codec 'mp3' cannot be written with write_as='savgbench'"):
        sample.generate_clips(net, None, tmp_path / 'early', **kw)
    assert not (tmp_path / 'early').exists()
    monkeypatch.setattr(sample, '_clip_audio_codec', lambda write_as, codec: codec)     # (the early check skipped)
    with pytest.raises(SAVGBenchError, match='unknown audio codec'):
        sample.generate_clips(net, None, tmp_path, **kw)
    assert not list(tmp_path.glob('*.mp4')) and not list(tmp_path.glob('.*'))


def test_a_built_dataset_root_trains_on_its_dev_split_only(tmp_path):
    from savgbench.baselines.train import ClipDataset
    for split, names in (('dev', ('a', 'b')), ('eval', ('c',))):
        (tmp_path / f'video_{split}').mkdir()
        for n in names: (tmp_path / f'video_{split}' / f'{n}.mp4').touch()
    ds = ClipDataset(tmp_path)
    assert ds.root == tmp_path / 'video_dev' and [f.name for f in ds.files] == ['a.mp4', 'b.mp4']
    assert [f.name for f in ClipDataset(tmp_path / 'video_eval').files] == ['c.mp4']      # named explicitly: used


def test_resuming_with_other_training_settings_is_refused(tmp_path):
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    from savgbench.core import SAVGBenchError
    cfg = TrainConfig(preset='tiny', batch_size=2, max_steps=1, mixed_precision='no', save_every=1)
    train_joint(SyntheticClips(2), tmp_path, cfg, progress=False)
    for change in (dict(lr=1e-3), dict(seed=7), dict(hflip='none'), dict(batch_size=1)):
        with pytest.raises(SAVGBenchError, match=f"{next(iter(change))}: "):
            train_joint(SyntheticClips(2), tmp_path, TrainConfig(**{**vars(cfg), 'max_steps': 2, **change}), progress=False)
    hist = train_joint(SyntheticClips(2), tmp_path, TrainConfig(**{**vars(cfg), 'max_steps': 2, 'save_every': 5}), progress=False)
    assert len(hist) == 2                                              # a longer run with other intervals resumes


def test_gradient_checkpointing_may_be_turned_on_when_resuming(tmp_path):
    "It recomputes the same activations with the same random state (dropout, shifts): the same weights, so not refused."
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    cfg = TrainConfig(preset='tiny', batch_size=2, max_steps=2, mixed_precision='no', save_every=1)
    train_joint(SyntheticClips(3), tmp_path / 'a', cfg, progress=False)
    (tmp_path / 'b').mkdir(); shutil.copy(tmp_path / 'a' / 'checkpoint_1.pt', tmp_path / 'b')
    train_joint(SyntheticClips(3), tmp_path / 'b', TrainConfig(**{**vars(cfg), 'gradient_checkpointing': True}), progress=False)
    a, b = (torch.load(tmp_path / r / 'checkpoint_2.pt', weights_only=False) for r in 'ab')
    assert a['history'] == b['history'] and b['train_config']['gradient_checkpointing']
    for k in a['model']: assert torch.equal(a['model'][k], b['model'][k]), k


def _tiny_dataset(root, n=2):
    from savgbench.io import write_clip
    rng = np.random.default_rng(0)
    data = root / 'data' / 'video_dev'; data.mkdir(parents=True)
    for i in range(n):
        write_clip(data / f'clip{i}.mp4', rng.integers(0, 255, (20, 256, 256, 3), dtype=np.uint8),
                   (rng.standard_normal((2, 80000)) * 0.1).astype(np.float32))
    return root / 'data'

_COMMON = ['--preset', 'tiny', '--steps', '2', '--batch-size', '2', '--mixed-precision', 'no', '--save-every', '2',
           '--num-workers', '0']

def test_sr_schedule_and_init_reach_the_checkpoint(tmp_path, capsys, monkeypatch):
    "The SR checkpoint records the T it trained on (sampling uses it); --init loads every weight or fails, also with --no-resume."
    from savgbench.baselines.train import train_sr_cli
    data = _tiny_dataset(tmp_path)
    assert train_sr_cli([str(data), '--out', str(tmp_path / 'sr'), *_COMMON]) == 0
    ck = torch.load(tmp_path / 'sr' / 'checkpoint_2.pt', weights_only=False)
    assert (ck['model_config']['diffusion_steps'], ck['train_config']['diffusion_steps']) == (1000, 1000)
    assert train_sr_cli([str(data), '--out', str(tmp_path / 'sr1100'), *_COMMON, '--diffusion-steps', '1100']) == 0
    assert torch.load(tmp_path / 'sr1100' / 'checkpoint_2.pt', weights_only=False)['model_config']['diffusion_steps'] == 1100
    torch.save({'foo.weight': torch.zeros(3)}, tmp_path / 'garbage.pt')             # matches no weight of the model
    with pytest.raises(WeightsError, match='missing and 1 unexpected keys'):
        train_sr_cli([str(data), '--out', str(tmp_path / 'sr_garbage'), *_COMMON, '--init', str(tmp_path / 'garbage.pt')])
    monkeypatch.setenv('SAVGBENCH_HOME', str(tmp_path / 'cache')); monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsError, match='savgbench weights install guided-diffusion-64-256-upsampler'):   # said first,
        train_sr_cli([str(tmp_path / 'no_data'), '--out', 'sr_x', *_COMMON, '--init', '64_256_upsampler.pt'])  # not the data
    init = SuperResUNet(SRConfig.tiny()).state_dict()
    init['input_blocks.0.0.weight'] = torch.full_like(init['input_blocks.0.0.weight'], 0.123)
    torch.save(init, tmp_path / 'init.pt')
    (tmp_path / 'cache').mkdir(); shutil.copy(tmp_path / 'init.pt', tmp_path / 'cache' / '64_256_upsampler.pt')
    capsys.readouterr()
    assert train_sr_cli([str(data), '--out', str(tmp_path / 'sr'), *_COMMON, '--init', str(tmp_path / 'init.pt')]) == 0
    assert 'not used: resuming' in capsys.readouterr().out                         # a resumed run keeps its weights
    assert train_sr_cli([str(data), '--out', str(tmp_path / 'sr'), *_COMMON, '--init', 'guided-diffusion-64-256-upsampler',
                         '--no-resume']) == 0                  # starting afresh starts from --init (here from the cache)
    w = torch.load(tmp_path / 'sr' / 'checkpoint_2.pt', weights_only=False)['ema']['input_blocks.0.0.weight']
    assert abs(float(w.mean()) - 0.123) < 1e-3, float(w.mean())


def test_train_sr_defaults_are_the_reference_sr_recipe_as_the_command_has_it(tmp_path, monkeypatch):
    "train_sr without a TrainConfig trains as `savgbench train-sr` does: the reference SR recipe (spec §3, §4.3)."
    import savgbench.baselines.train as tr
    seen = {}
    monkeypatch.setattr(tr, 'train_loop', lambda model, loss_fn, data, cfg, *a, **k: seen.setdefault('cfg', cfg) and [])
    tr.train_sr(tr.SyntheticClips(2, video_size=(4, 3, 64, 64)), tmp_path / 'sr', model_cfg=SRConfig.tiny(), progress=False)
    py = seen['cfg']
    assert (py.lr, py.batch_size, py.max_steps, py.ema_rate, py.weight_decay) == (1e-4, 6, 120_000, 0.9999, 0.0)
    _, cli = tr._parse_train('savgbench train-sr', [str(tmp_path), '--out', str(tmp_path / 'cli'), '--preset', 'tiny'], sr=True)
    same = ('lr', 'batch_size', 'max_steps', 'ema_rate', 'weight_decay', 'hflip', 'diffusion_steps', 'save_every',
            'log_every', 'frames_per_clip', 'seed')
    assert {k: getattr(py, k) for k in same} == {k: getattr(cli, k) for k in same}


def test_impossible_sr_settings_are_refused_before_sampling(tmp_path, capsys):
    from savgbench.baselines.sample import sample_cli
    net = CoupledUNet(MMDiffusionConfig.tiny())
    torch.save({'model': net.state_dict(), 'ema': None, 'model_kind': 'joint', 'model_config': vars(net.cfg)}, tmp_path / 'j.pt')
    for name, cfg in (('sr.pt', SRConfig.tiny()), ('sr8.pt', SRConfig.tiny(small_size=8))):
        sm = SuperResUNet(cfg)
        torch.save({'model': sm.state_dict(), 'ema': None, 'model_kind': 'sr', 'model_config': vars(sm.cfg)}, tmp_path / name)
    base = ['--checkpoint', str(tmp_path / 'j.pt'), '--num', '1', '--batch-size', '1', '--sampler', 'dpm_solver++_2m',
            '--steps', '1', '--device', 'cpu', '--out', str(tmp_path / 'c')]
    for extra, says in ((['--sr-checkpoint', str(tmp_path / 'sr.pt'), '--sr-steps', '60'], 'nearest possible: 58 or 62'),
                        (['--sr-checkpoint', str(tmp_path / 'sr.pt'), '--sr-T', '10', '--sr-steps', '25'], 'T=10'),
                        (['--sr-checkpoint', str(tmp_path / 'sr8.pt'), '--sr-steps', '2'], 'upsamples 8x8'),
                        (['--sr-preset', 'huge'], 'invalid choice')):
        with pytest.raises(SystemExit) as e: sample_cli(base + extra)
        assert e.value.code == 2, extra
        assert says in capsys.readouterr().err, extra
        assert not (tmp_path / 'c' / 'sampling.json').exists()
    assert sample_cli(base + ['--sr-checkpoint', str(tmp_path / 'sr.pt'), '--sr-steps', '2', '--sr-frames-per-batch', '3']) == 0
    import json
    s = json.loads((tmp_path / 'c' / 'sampling.json').read_text())['settings']
    assert (s['sr_T'], s['sr_input']) == (1100, 'raw')                  # the effective T; SR reads the sampler's raw output


def test_a_damaged_checkpoint_is_named_when_resuming(tmp_path, capsys):
    from savgbench.cli import main
    data = _tiny_dataset(tmp_path)
    assert main(['train-joint', str(data), '--out', str(tmp_path / 'run'), *_COMMON]) == 0
    ck = tmp_path / 'run' / 'checkpoint_2.pt'
    ck.write_bytes(ck.read_bytes()[:5000])                                            # a copy cut short
    capsys.readouterr()
    assert main(['train-joint', str(data), '--out', str(tmp_path / 'run'), *_COMMON[:-4], '--steps', '4']) == 1
    err = capsys.readouterr().err
    assert 'checkpoint_2.pt: cannot read this checkpoint' in err and '--no-resume' in err and 'Traceback' not in err, err


def test_bad_clips_are_found_before_training_starts(tmp_path, capsys):
    from savgbench.cli import main
    data = _tiny_dataset(tmp_path)
    good = (data / 'video_dev' / 'clip0.mp4').read_bytes()
    (data / 'video_dev' / 'zz_bad.mp4').write_bytes(good[:20000])                     # sorted last: met late in a run
    assert main(['train-joint', str(data), '--out', str(tmp_path / 'run'), *_COMMON]) == 1
    err = capsys.readouterr().err
    assert '1 of 3 clips cannot be used' in err and 'zz_bad.mp4' in err and '--skip-bad' in err, err
    assert not list((tmp_path / 'run').glob('checkpoint_*.pt'))
    assert main(['train-joint', str(data), '--out', str(tmp_path / 'run'), *_COMMON, '--skip-bad']) == 0
    assert 'skipping 1 bad clip(s) of 3' in capsys.readouterr().out


def test_weights_do_not_depend_on_the_number_of_data_loader_workers(tmp_path):
    "Resized frames came out permuted in memory in the main process but contiguous from workers: other rounding."
    from savgbench.baselines.train import train_joint, TrainConfig
    data = _tiny_dataset(tmp_path, n=3)
    runs = {}
    for nw in (0, 2):
        cfg = TrainConfig(preset='tiny', batch_size=2, max_steps=2, mixed_precision='no', save_every=2, seed=3, num_workers=nw)
        train_joint(data, tmp_path / f'run{nw}', cfg, progress=False)
        runs[nw] = torch.load(tmp_path / f'run{nw}' / 'checkpoint_2.pt', weights_only=False)['model']
    assert [k for k in runs[0] if not torch.equal(runs[0][k], runs[2][k])] == []


def test_resuming_on_other_data_says_so(tmp_path, capsys):
    from savgbench.baselines.train import train_joint_cli
    a = _tiny_dataset(tmp_path / 'a'); b = _tiny_dataset(tmp_path / 'b', n=3)
    assert train_joint_cli([str(a), '--out', str(tmp_path / 'run'), *_COMMON]) == 0
    ck = torch.load(tmp_path / 'run' / 'checkpoint_2.pt', weights_only=False)
    assert ck['data'] == {'root': str((a / 'video_dev').resolve()), 'items': 2}
    capsys.readouterr()
    assert train_joint_cli([str(b), '--out', str(tmp_path / 'run'), *_COMMON[:2], '--steps', '3', *_COMMON[4:]]) == 0
    out = capsys.readouterr().out
    assert f"was trained on {(a / 'video_dev').resolve()} (2 items); now {(b / 'video_dev').resolve()} (3 items)" in out, out


def test_exported_weights_sample_the_same_clips(tmp_path, capsys):
    "export-weights: the slim file samples exactly what its checkpoint samples; the plain one too, given the preset."
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    from savgbench.baselines.sample import sample_cli
    from savgbench.cli import main
    from savgbench.io import read_clip
    cfg = TrainConfig(preset='tiny', batch_size=1, lr=1e-3, max_steps=2, mixed_precision='no', save_every=2, ema_rate=0.5)
    train_joint(SyntheticClips(4), tmp_path / 'run', cfg, progress=False)
    ck = tmp_path / 'run' / 'checkpoint_2.pt'
    assert main(['export-weights', str(ck), str(tmp_path / 'ema.pt')]) == 0
    assert main(['export-weights', str(ck), str(tmp_path / 'plain.pt'), '--plain']) == 0
    out = capsys.readouterr().out
    assert 'ema weights of the joint model at step 2' in out and '(plain state_dict)' in out
    common = ['--num', '1', '--batch-size', '1', '--sampler', 'dpm_solver++_2m', '--steps', '2', '--device', 'cpu']
    clips = {}
    for name, extra in (('checkpoint', [str(ck)]), ('ema', [str(tmp_path / 'ema.pt')]),
                        ('plain', [str(tmp_path / 'plain.pt'), '--preset', 'tiny'])):
        assert sample_cli(['--checkpoint', *extra, *common, '--out', str(tmp_path / name)]) == 0
        clips[name] = read_clip(tmp_path / name / 'sample_00000.mp4')
    for name in ('ema', 'plain'):
        assert np.array_equal(clips[name].video, clips['checkpoint'].video), name
        assert np.array_equal(clips[name].audio, clips['checkpoint'].audio), name
    # the raw (non-EMA) weights differ from the EMA ones after training, so they sample something else
    assert main(['export-weights', str(ck), str(tmp_path / 'raw.pt'), '--weights', 'model']) == 0
    assert sample_cli(['--checkpoint', str(tmp_path / 'raw.pt'), *common, '--out', str(tmp_path / 'raw')]) == 0
    assert not np.array_equal(read_clip(tmp_path / 'raw' / 'sample_00000.mp4').audio, clips['checkpoint'].audio)


def test_seed_fixes_the_initial_weights(tmp_path):
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    run = lambda seed, name: train_joint(SyntheticClips(4), tmp_path / name, TrainConfig(
        preset='tiny', batch_size=1, max_steps=2, mixed_precision='no', save_every=2, seed=seed), progress=False)
    torch.manual_seed(123); a = run(0, 'a')
    torch.manual_seed(456); b = run(0, 'b')            # whatever the caller's random state
    assert a == b
    assert run(1, 'c') != a


def test_no_resume_sets_aside_a_log_without_checkpoints_and_tracker_folders(tmp_path, capsys):
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips, read_train_log
    run = tmp_path / 'run'; (run / 'savgbench-joint').mkdir(parents=True)
    (run / 'savgbench-joint' / 'events.out').write_text('old curves')
    (run / 'train_log.csv').write_text('step,steps,loss\n100,100,0.9\n200,100,0.8\n')    # stopped before a checkpoint
    cfg = TrainConfig(preset='tiny', batch_size=1, max_steps=2, mixed_precision='no', save_every=2)
    train_joint(SyntheticClips(4), run, cfg, resume=False)
    assert 'moved to' in capsys.readouterr().out
    aside = run / 'previous_run_1'
    assert (aside / 'savgbench-joint' / 'events.out').read_text() == 'old curves'
    assert read_train_log(aside)['step'].tolist() == [100, 200]
    assert read_train_log(run)['step'].tolist() == [2] and not (run / 'savgbench-joint').exists()


def test_a_failing_tracker_warns_once_and_training_goes_on(tmp_path, capsys):
    from accelerate import Accelerator
    from accelerate.tracking import GeneralTracker
    from savgbench.baselines.train import train_loop, joint_loss_fn, TrainConfig, SyntheticClips, read_train_log
    from savgbench.baselines.diffusion import GaussianDiffusion

    class Flaky(GeneralTracker):
        name, requires_logging_directory = 'flaky', False
        def __init__(self): super().__init__(); self.calls = 0
        @property
        def tracker(self): return self
        def log(self, values, step=None, **kwargs):
            self.calls += 1
            if self.calls == 2: raise ConnectionError('tracker server unreachable')
    tr = Flaky()
    cfg = TrainConfig(preset='tiny', batch_size=1, max_steps=5, mixed_precision='no', save_every=5, log_every=1)
    hist = train_loop(CoupledUNet(MMDiffusionConfig.tiny()), joint_loss_fn(GaussianDiffusion(1000)), SyntheticClips(4), cfg,
                      tmp_path / 'run', accelerator=Accelerator(mixed_precision='no', log_with=[tr]), progress=False)
    assert len(hist) == 5 and tr.calls == 2                      # not called again after it failed
    err = capsys.readouterr().err
    assert err.count('logging to the experiment trackers failed at step 2') == 1 and 'tracker server unreachable' in err
    assert read_train_log(tmp_path / 'run')['step'].tolist() == [1, 2, 3, 4, 5]
    assert TrainConfig(log_with='tensorboard').log_with == ('tensorboard',)


def test_exported_sr_weights_sample_the_same_clips(tmp_path, capsys, monkeypatch):
    "An SR model trained on T=1000: the slim export samples as its checkpoint; the plain one with the options printed."
    from savgbench.io import write_clip, read_clip
    from savgbench.baselines.train import train_joint, train_sr_cli, TrainConfig, SyntheticClips
    from savgbench.baselines.sample import sample_cli
    from savgbench.cli import main
    rng = np.random.default_rng(0)
    (tmp_path / 'data').mkdir()
    for i in range(2):
        write_clip(tmp_path / 'data' / f'c{i}.mp4', rng.integers(0, 255, (20, 256, 256, 3), dtype=np.uint8),
                   (rng.standard_normal((2, 80000)) * 0.1).astype(np.float32))
    assert train_sr_cli([str(tmp_path / 'data'), '--out', str(tmp_path / 'sr'), '--preset', 'tiny', '--steps', '2',
                         '--batch-size', '2', '--mixed-precision', 'no', '--save-every', '2', '--num-workers', '0']) == 0
    train_joint(SyntheticClips(2), tmp_path / 'joint', TrainConfig(preset='tiny', batch_size=1, max_steps=1,
                mixed_precision='no', save_every=1), progress=False)
    ck = tmp_path / 'sr' / 'checkpoint_2.pt'
    assert main(['export-weights', str(ck), str(tmp_path / 'sr_ema.pt')]) == 0
    capsys.readouterr()
    assert main(['export-weights', str(ck), str(tmp_path / 'sr_plain.pt'), '--plain']) == 0
    note = capsys.readouterr().err
    assert '--sr-preset tiny --sr-T 1000' in note, note
    common = ['--checkpoint', str(tmp_path / 'joint' / 'checkpoint_1.pt'), '--num', '1', '--batch-size', '1',
              '--sampler', 'dpm_solver++_2m', '--steps', '2', '--sr-steps', '3', '--device', 'cpu']
    audio, video = {}, {}
    for name, extra in (('checkpoint', [str(ck)]), ('ema', [str(tmp_path / 'sr_ema.pt')]),
                        ('plain', [str(tmp_path / 'sr_plain.pt'), '--sr-preset', 'tiny', '--sr-T', '1000'])):
        assert sample_cli([*common, '--sr-checkpoint', *extra, '--out', str(tmp_path / name)]) == 0
        c = read_clip(tmp_path / name / 'sample_00000.mp4'); video[name], audio[name] = c.video, c.audio
    for name in ('ema', 'plain'): assert np.array_equal(video[name], video['checkpoint']), name
    # the official file name, or its registry name, finds the file in the weights cache (not in the current folder)
    monkeypatch.setenv('SAVGBENCH_HOME', str(tmp_path / 'cache')); monkeypatch.chdir(tmp_path)
    plain = ['--sr-preset', 'tiny', '--sr-T', '1000']
    with pytest.raises(WeightsError, match='neither in the current folder nor in the weights cache.*Google Drive'):
        sample_cli([*common, '--sr-checkpoint', 'model_SR_mmdiff_120000.pt', *plain, '--out', 'x'])
    assert not (tmp_path / 'x').exists()                                   # refused before any work
    (tmp_path / 'cache').mkdir(); shutil.copy(tmp_path / 'sr_plain.pt', tmp_path / 'cache' / 'model_SR_mmdiff_120000.pt')
    for i, arg in enumerate(('model_SR_mmdiff_120000.pt', 'mmdiffusion-savg-sr')):
        assert sample_cli([*common, '--sr-checkpoint', arg, *plain, '--out', f'cached{i}']) == 0
        assert np.array_equal(read_clip(tmp_path / f'cached{i}' / 'sample_00000.mp4').video, video['checkpoint']), arg


class _CtrlCAt(torch.utils.data.Dataset):
    "`data` that presses Ctrl-C (sends this process SIGINT) once, when its `at`-th item is read."
    def __init__(self, data, at): self.data, self.at, self.reads = data, at, 0
    def __len__(self): return len(self.data)
    def __getitem__(self, i):
        import os, signal
        self.reads += 1
        if self.reads == self.at: os.kill(os.getpid(), signal.SIGINT)
        return self.data[i]

def _ckpt_steps(run): return sorted(int(p.stem.split('_')[1]) for p in run.glob('checkpoint_*.pt'))

def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(tmp_path, capsys):
    """Ctrl-C during step 7: the step finishes, checkpoint_7 is saved, and the run started again ends as one never
    stopped; checkpoint_7 goes once a newer one of the --save-every grid exists, so it pushes out none of the grid's."""
    import signal
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips, read_train_log
    cfg = TrainConfig(preset='tiny', batch_size=2, lr=1e-3, max_steps=12, mixed_precision='no', save_every=5,
                      log_every=5, keep_checkpoints=3)
    ref = train_joint(SyntheticClips(8), tmp_path / 'ref', cfg, progress=False)
    before = signal.getsignal(signal.SIGINT)
    ds = _CtrlCAt(SyntheticClips(8), at=14)      # train_joint reads item 0 to check its sizes, then batches of 2:
                                                  # the 14th read is by step 7
    with pytest.raises(KeyboardInterrupt): train_joint(ds, tmp_path / 'stopped', cfg, progress=False)
    err = capsys.readouterr().err
    assert 'interrupt: finishing this step' in err and 'checkpoint_7.pt at step 7' in err, err
    assert signal.getsignal(signal.SIGINT) is before                      # the usual Ctrl-C again
    assert _ckpt_steps(tmp_path / 'stopped') == [5, 7]
    assert read_train_log(tmp_path / 'stopped')['step'].tolist() == [5, 7]
    assert train_joint(ds, tmp_path / 'stopped', cfg, progress=False) == ref
    assert _ckpt_steps(tmp_path / 'stopped') == _ckpt_steps(tmp_path / 'ref') == [5, 10, 12]
    a, b = (torch.load(r / 'checkpoint_12.pt', weights_only=False) for r in (tmp_path / 'stopped', tmp_path / 'ref'))
    for part in ('model', 'ema'): assert all(torch.equal(a[part][k], b[part][k]) for k in b[part]), part
    # Ctrl-C during the last step: the run completes (its checkpoint and log row), then ends as interrupted
    with pytest.raises(KeyboardInterrupt): train_joint(_CtrlCAt(SyntheticClips(8), at=24), tmp_path / 'last', cfg, progress=False)
    assert _ckpt_steps(tmp_path / 'last') == [5, 10, 12] and read_train_log(tmp_path / 'last')['step'].tolist() == [5, 10, 12]
    # a process that ignores Ctrl-C (a background job of a shell script) keeps ignoring it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try: assert train_joint(_CtrlCAt(SyntheticClips(8), at=13), tmp_path / 'deaf', cfg, progress=False) == ref
    finally: signal.signal(signal.SIGINT, before)

@pytest.mark.parametrize('sig', ['SIGINT', 'SIGTERM'])
def test_ctrl_c_on_train_joint_keeps_the_steps_done(tmp_path, sig, kill_at_end):
    """Ctrl-C, or SIGTERM (`kill`, a batch system's time limit), to the process group of `savgbench train-joint
    --num-workers 1` (command and data worker, as a terminal or `kill -- -PGID` sends it): a checkpoint at the step
    reached, one message, ended by the same signal; the same command resumes from there."""
    import os, signal, subprocess, sys, time
    sig = getattr(signal, sig)
    from savgbench.baselines.train import read_train_log
    data, run = _tiny_dataset(tmp_path), tmp_path / 'run'
    cmd = [sys.executable, '-m', 'savgbench', 'train-joint', str(data), '--out', str(run), '--preset', 'tiny',
           '--batch-size', '2', '--mixed-precision', 'no', '--save-every', '1000', '--log-every', '1', '--num-workers', '1']
    p = subprocess.Popen([*cmd, '--steps', '1000'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    kill_at_end(p)
    t0, log = time.monotonic(), run / 'train_log.csv'
    while time.monotonic() - t0 < 180 and p.poll() is None and \
            (not log.is_file() or len(log.read_text().splitlines()) < 4): time.sleep(0.1)
    assert p.poll() is None, p.communicate()[1]
    os.killpg(p.pid, sig)
    if sig == signal.SIGTERM:           # senders repeat SIGTERM (Slurm, and a launcher passing its own on): no change
        time.sleep(0.3); os.killpg(p.pid, sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == -sig, err
    ckpts = list(run.glob('checkpoint_*.pt'))
    assert len(ckpts) == 1, err
    k = int(ckpts[0].stem.split('_')[1])
    said = 'interrupted' if sig == signal.SIGINT else 'stopped by SIGTERM'
    assert 3 <= k < 1000 and f'checkpoint_{k}.pt at step {k}' in err and said in err, err
    assert 'Traceback' not in err and 'exited unexpectedly' not in err, err
    assert read_train_log(run)['step'].tolist() == list(range(1, k + 1))
    r = subprocess.run([*cmd, '--steps', str(k + 2)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f'resuming from {ckpts[0]}' in r.stdout, r.stdout
    assert read_train_log(run)['step'].tolist() == list(range(1, k + 3))

_SLOW_DATA_RUN = '''
import sys, time, torch
from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
class SlowClips(SyntheticClips):          # data slower than the model: the loop mostly waits for its worker
    def __getitem__(self, i): time.sleep(0.3); return super().__getitem__(i)
cfg = TrainConfig(preset='tiny', batch_size=2, max_steps=1000, mixed_precision='no', save_every=1000, log_every=1,
                  num_workers=1)
try: train_joint(SlowClips(8), sys.argv[1], cfg, progress=False)
except KeyboardInterrupt: sys.exit(7)
'''

def test_ctrl_c_while_the_loop_waits_for_its_data_worker(tmp_path, kill_at_end):
    """The data worker ignores Ctrl-C (a forked worker would otherwise run the loop's handler too, a spawned one would
    die): the batch being loaded arrives, the step finishes and its checkpoint is saved."""
    import os, signal, subprocess, sys, time
    run = tmp_path / 'run'
    p = subprocess.Popen([sys.executable, '-c', _SLOW_DATA_RUN, str(run)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    kill_at_end(p)
    t0, log = time.monotonic(), run / 'train_log.csv'
    while time.monotonic() - t0 < 180 and p.poll() is None and \
            (not log.is_file() or len(log.read_text().splitlines()) < 3): time.sleep(0.05)
    assert p.poll() is None, p.communicate()[1]
    time.sleep(0.2)                                     # inside the next item's 0.3 s
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 7, err
    assert 'Traceback' not in err and 'exited unexpectedly' not in err, err
    assert err.count('interrupt: finishing this step') == 1, err     # said by the loop, not by its worker as well
    assert len(list(run.glob('checkpoint_*.pt'))) == 1, err


def test_a_second_run_in_the_same_folder_is_refused_while_the_first_holds_it(tmp_path, capsys):
    """Another process holding the run folder (as a training run does) makes `train-joint` there exit 1 at once,
    naming that process; once it ends, the same command trains. The lock file stays when a run is set aside."""
    import subprocess, sys
    pytest.importorskip('fcntl')                                          # no run-folder lock without it (Windows)
    from savgbench.cli import main
    from savgbench.core import RUN_LOCK
    data, run = _tiny_dataset(tmp_path), tmp_path / 'run'
    run.mkdir()
    holder = subprocess.Popen([sys.executable, '-c', 'import sys, time; from savgbench.core import lock_run; '
                               'f = lock_run(sys.argv[1]); print("held", flush=True); time.sleep(60)', str(run)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        assert main(['train-joint', str(data), '--out', str(run), *_COMMON]) == 1
        err = capsys.readouterr().err
        assert f'another training run is using this run folder (process {holder.pid} on' in err, err
        assert not list(run.glob('checkpoint_*.pt'))
        assert main(['train-joint', str(tmp_path / 'no_data'), '--out', str(run), *_COMMON]) == 1   # before the clips
        assert 'another training run is using this run folder' in capsys.readouterr().err
    finally: holder.kill(); holder.wait()
    assert main(['train-joint', str(data), '--out', str(run), *_COMMON]) == 0
    assert (run / 'checkpoint_2.pt').is_file()
    assert main(['train-joint', str(data), '--out', str(run), *_COMMON, '--no-resume']) == 0
    assert (run / RUN_LOCK).is_file() and not (run / 'previous_run_1' / RUN_LOCK).exists()
    assert main(['train-joint', str(tmp_path / 'no_data'), '--out', str(tmp_path / 'new'), *_COMMON]) == 1
    assert not (tmp_path / 'new').exists()                    # a folder made for a run that never started goes


def test_a_run_folder_of_the_other_model_is_named_as_such(tmp_path, capsys):
    from savgbench.cli import main
    data = _tiny_dataset(tmp_path)
    assert main(['train-joint', str(data), '--out', str(tmp_path / 'joint'), *_COMMON]) == 0
    capsys.readouterr()
    assert main(['train-sr', str(data), '--out', str(tmp_path / 'joint'), *_COMMON]) == 1
    err = capsys.readouterr().err
    assert 'holds a joint model (train-joint), and this run trains a super-resolution model (train-sr)' in err, err


def test_test_clips_are_never_trained_on_by_accident(tmp_path, capsys):
    """A folder whose clips lie in video_eval/ (a dataset root without video_dev/, or a folder above the demo's
    output) is refused; the video_eval/ folder itself, named on purpose, is taken."""
    from savgbench.cli import main
    data = _tiny_dataset(tmp_path)
    (data / 'video_dev').rename(data / 'video_eval')
    assert main(['train-joint', str(data), '--out', str(tmp_path / 'run'), *_COMMON]) == 1
    err = capsys.readouterr().err
    assert "2 of the 2 clips below this folder are in video_eval/ folders, the benchmark's test clips" in err, err
    assert main(['train-joint', str(data / 'video_eval'), '--out', str(tmp_path / 'run'), *_COMMON]) == 0


def test_a_short_run_is_told_that_its_ema_weights_are_still_the_initial_ones(tmp_path, capsys):
    from savgbench.cli import main
    data = _tiny_dataset(tmp_path)
    assert main(['train-joint', str(data), '--out', str(tmp_path / 'a'), *_COMMON]) == 0
    err = capsys.readouterr().err
    assert 'EMA weights (EMA rate 0.9999), which `sample` and `export-weights` use, are still 100% the initial' in err
    assert 'train with an EMA rate of 0.1 or lower (--ema-rate, TrainConfig.ema_rate; 1% of them left)' in err, err
    assert main(['train-joint', str(data), '--out', str(tmp_path / 'b'), *_COMMON, '--ema-rate', '0.1']) == 0
    assert 'EMA weights' not in capsys.readouterr().err                      # 0.1 ** 2: 1 % of the initial weights
    # from Python too (train_joint, train_loop), where a run's progress is shown
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    cfg = TrainConfig(preset='tiny', batch_size=2, max_steps=2, save_every=2, mixed_precision='no')
    train_joint(SyntheticClips(2), tmp_path / 'c', cfg, progress=True)
    assert 'are still 100% the initial weights' in capsys.readouterr().err
    train_joint(SyntheticClips(2), tmp_path / 'd', cfg, progress=False)
    assert 'EMA weights' not in capsys.readouterr().err


def test_fp16_on_a_cpu_is_said_to_have_no_effect(tmp_path, capsys):
    """... also after a run in the same process with another precision (a notebook training twice), which accelerate
    alone refuses ("AcceleratorState has already been initialized")."""
    from savgbench.cli import main
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    train_joint(SyntheticClips(2), tmp_path / 'first', TrainConfig(preset='tiny', batch_size=2, max_steps=1,
                mixed_precision='no', save_every=1), progress=False)
    data = _tiny_dataset(tmp_path)
    args = [a if a != 'no' else 'fp16' for a in _COMMON]                    # --mixed-precision fp16
    assert main(['train-joint', str(data), '--out', str(tmp_path / 'run'), *args]) == 0
    assert 'fp16 mixed precision does not apply on a CPU' in capsys.readouterr().err


def test_the_default_precision_suits_the_device_and_a_resumed_run_keeps_its_own(tmp_path):
    "No --mixed-precision: 'no' on a CPU (bf16 runs slower there); a run started in bf16 resumes in bf16 unasked."
    from savgbench.cli import main
    from savgbench.baselines.train import _gpu_available
    data = _tiny_dataset(tmp_path)
    args = [a for a in _COMMON if a not in ('--mixed-precision', 'no')]
    assert main(['train-joint', str(data), '--out', str(tmp_path / 'a'), *args]) == 0
    ck = torch.load(tmp_path / 'a' / 'checkpoint_2.pt', weights_only=False)
    assert ck['train_config']['mixed_precision'] == ('bf16' if _gpu_available() else 'no')
    assert main(['train-joint', str(data), '--out', str(tmp_path / 'b'), *args, '--mixed-precision', 'bf16']) == 0
    more = [a if a != '2' else '3' for a in args[:4]] + args[4:]             # --steps 3
    assert main(['train-joint', str(data), '--out', str(tmp_path / 'b'), *more]) == 0
    ck = torch.load(tmp_path / 'b' / 'checkpoint_3.pt', weights_only=False)
    assert (ck['step'], ck['train_config']['mixed_precision']) == (3, 'bf16')


class _Gated(CoupledUNet):
    "One's own variant of the joint model: a learned gain on both outputs."
    def __init__(self, cfg):
        super().__init__(cfg); self.gate = torch.nn.Parameter(torch.ones(()))
    def forward(self, v, a, t):
        vo, ao = super().forward(v, a, t)
        return vo * self.gate, ao * self.gate

def test_a_model_of_ones_own_trains_resumes_and_loads(tmp_path):
    """`train_joint(..., model=)` trains a CoupledUNet subclass from its own weights; its checkpoints resume into it and
    load with `load_joint_model(..., model_cls=)`, and not into the plain class, whose weights lack its parameter."""
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips, newest_checkpoint
    from savgbench.baselines.sample import load_joint_model
    cfg = TrainConfig(preset='tiny', batch_size=2, max_steps=2, save_every=2, mixed_precision='no', ema_rate=0.5, lr=1e-2)
    net = _Gated(MMDiffusionConfig.tiny())
    with pytest.raises(ValueError, match='not both'):
        train_joint(SyntheticClips(2), tmp_path / 'run', cfg, model_cfg=MMDiffusionConfig.tiny(dropout=0.3), model=net)
    with pytest.raises(TypeError, match='needs an MMDiffusionConfig'):
        train_joint(SyntheticClips(2), tmp_path / 'run', cfg, model=torch.nn.Linear(2, 2))
    hist = train_joint(SyntheticClips(2), tmp_path / 'run', cfg, model=net, progress=False)
    assert len(hist) == 2 and float(net.gate.detach()) != 1.0                           # the gate itself was trained
    from dataclasses import replace
    hist4 = train_joint(SyntheticClips(2), tmp_path / 'run', replace(cfg, max_steps=4),
                        model=_Gated(MMDiffusionConfig.tiny()), progress=False)
    assert hist4[:2] == hist and len(hist4) == 4                                # resumed into a fresh instance
    with pytest.raises(WeightsError, match='gate'): load_joint_model(tmp_path / 'run')
    m = load_joint_model(tmp_path / 'run', model_cls=_Gated)
    ck = torch.load(newest_checkpoint(tmp_path / 'run'), weights_only=False)
    assert type(m) is _Gated and not m.training and torch.equal(m.gate.detach(), ck['ema']['gate'])


def test_a_configuration_with_lists_resumes_as_one_with_tuples(tmp_path):
    """A model configuration written with lists (from JSON or YAML) equals the same one with tuples: the run resumes,
    and model= with that model_cfg is not refused as a second, different configuration."""
    from dataclasses import replace
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    cfg = TrainConfig(preset='tiny', batch_size=2, max_steps=1, save_every=1, mixed_precision='no')
    listed = MMDiffusionConfig.tiny(channel_mult=[1, 2], cross_attention_windows=[1])
    h1 = train_joint(SyntheticClips(2), tmp_path / 'run', cfg, model_cfg=listed, progress=False)
    h2 = train_joint(SyntheticClips(2), tmp_path / 'run', replace(cfg, max_steps=2), model_cfg=MMDiffusionConfig.tiny(),
                     progress=False)
    assert h2[:1] == h1 and len(h2) == 2
    net = CoupledUNet(MMDiffusionConfig.tiny())
    assert len(train_joint(SyntheticClips(2), tmp_path / 'own', cfg, model_cfg=listed, model=net, progress=False)) == 1


def test_the_command_and_generate_clips_go_on_with_each_others_folders(tmp_path):
    """`savgbench sample` records the checkpoint file's sha256 and the weights'; generate_clips the weights': either
    goes on with a folder the other began, with the same settings, keeping its clips; other weights are refused."""
    from savgbench.baselines.sample import sample_cli, generate_clips, load_joint_model
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    from savgbench.core import SAVGBenchError
    train_joint(SyntheticClips(2), tmp_path / 'run', TrainConfig(preset='tiny', batch_size=2, max_steps=1, save_every=1,
                                                                  mixed_precision='no'), progress=False)
    ck = tmp_path / 'run' / 'checkpoint_1.pt'
    cli = lambda out, n: sample_cli(['--checkpoint', str(ck), '--num', str(n), '--batch-size', '1', '--sampler',
                                     'dpm_solver++_2m', '--steps', '1', '--device', 'cpu', '--out', str(out)])
    py = lambda out, n, model=None: generate_clips(model or load_joint_model(ck), None, out, num=n, batch_size=1,
                                                   sampler='dpm_solver++_2m', steps=1, progress=False)
    assert cli(tmp_path / 'a', 1) == 0
    first = (tmp_path / 'a' / 'sample_00000.mp4').read_bytes()
    assert len(py(tmp_path / 'a', 2)) == 2 and (tmp_path / 'a' / 'sample_00000.mp4').read_bytes() == first
    py(tmp_path / 'b', 1)
    assert cli(tmp_path / 'b', 2) == 0
    assert (tmp_path / 'a' / 'sample_00001.mp4').read_bytes() == (tmp_path / 'b' / 'sample_00001.mp4').read_bytes()
    with pytest.raises(SAVGBenchError, match='model_sha256'):
        py(tmp_path / 'a', 3, model=CoupledUNet(MMDiffusionConfig.tiny()))


def test_a_run_extended_with_another_save_every_keeps_the_earlier_runs_checkpoints(tmp_path, capsys):
    """A 4-step run saved at 2 and 4; extended to 20 steps with --save-every 10 and stopped by Ctrl-C at step 6, its
    checkpoints 2 and 4 stay (they were on its grid, and keep_checkpoints is 2); once step 10 is saved, 6 goes."""
    from dataclasses import replace
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    first = TrainConfig(preset='tiny', batch_size=2, max_steps=4, mixed_precision='no', save_every=2, log_every=2)
    train_joint(SyntheticClips(4), tmp_path / 'run', first, progress=False)
    assert _ckpt_steps(tmp_path / 'run') == [2, 4]
    longer = TrainConfig(preset='tiny', batch_size=2, max_steps=20, mixed_precision='no', save_every=10, log_every=2)
    with pytest.raises(KeyboardInterrupt):        # item 0 is read to check sizes, then 2 per step from step 5: read 4 is in step 6
        train_joint(_CtrlCAt(SyntheticClips(4), at=4), tmp_path / 'run', longer, progress=False)
    assert _ckpt_steps(tmp_path / 'run') == [2, 4, 6]
    train_joint(SyntheticClips(4), tmp_path / 'run', replace(longer, max_steps=10), progress=False)
    assert _ckpt_steps(tmp_path / 'run') == [4, 10]


def test_a_run_folder_is_blamed_only_when_its_newest_checkpoint_made_the_difference(tmp_path):
    "Other settings, or an --out that is a file, are refused without a note about the run's newest checkpoint."
    from savgbench.baselines.sample import sample_cli
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    from savgbench.core import SAVGBenchError
    cfg = TrainConfig(preset='tiny', batch_size=2, max_steps=1, mixed_precision='no', save_every=1)
    train_joint(SyntheticClips(2), tmp_path / 'run', cfg, progress=False)
    common = ['--checkpoint', str(tmp_path / 'run'), '--num', '1', '--batch-size', '1', '--sampler', 'dpm_solver++_2m',
              '--steps', '1', '--device', 'cpu', '--writers', '0']
    assert sample_cli([*common, '--out', str(tmp_path / 'a')]) == 0
    with pytest.raises(SAVGBenchError, match='seed: 1010 -> 7') as e:
        sample_cli([*common, '--out', str(tmp_path / 'a'), '--seed', '7'])
    assert 'newest checkpoint' not in str(e.value)
    (tmp_path / 'file').touch()
    with pytest.raises(SAVGBenchError, match='a file stands where a folder is needed') as e:
        sample_cli([*common, '--out', str(tmp_path / 'file')])
    assert 'newest checkpoint' not in str(e.value)
    from dataclasses import replace
    train_joint(SyntheticClips(2), tmp_path / 'run', replace(cfg, max_steps=2), progress=False)   # a newer checkpoint
    with pytest.raises(SAVGBenchError, match='stands for the run.s newest checkpoint'):
        sample_cli([*common, '--out', str(tmp_path / 'a')])
    # a folder begun by generate_clips names its model by the weights alone: the note comes all the same
    from savgbench.baselines.sample import generate_clips, load_joint_model
    generate_clips(load_joint_model(tmp_path / 'run' / 'checkpoint_1.pt', preset='tiny'), None, tmp_path / 'g', num=1,
                   batch_size=1, sampler='dpm_solver++_2m', steps=1, writers=0, progress=False)
    with pytest.raises(SAVGBenchError, match='stands for the run.s newest checkpoint'):
        sample_cli([*common, '--out', str(tmp_path / 'g')])


@pytest.mark.parametrize('sampler,steps,bar', [('dpm_solver++', None, 'dpm-solver++ (adaptive)'),
                                                ('dpm_solver++_2m', 2, 'dpm-solver++')])
def test_sampling_shows_the_denoising_steps_of_a_batch(tmp_path, capsys, sampler, steps, bar):
    "Each batch's denoising loop has its own bar (ddpm's 1000 steps took 30 s per tiny batch with none), gone when done."
    from savgbench.baselines.sample import generate_clips
    net = CoupledUNet(MMDiffusionConfig.tiny()).eval()
    generate_clips(net, None, tmp_path / 'a', num=1, batch_size=1, sampler=sampler, steps=steps, writers=0)
    err = capsys.readouterr().err
    assert f'{bar}:' in err and 'sampling (process 0)' in err, err
    generate_clips(net, None, tmp_path / 'b', num=1, batch_size=1, sampler=sampler, steps=steps, writers=0, progress=False)
    assert capsys.readouterr().err == ''


def test_resuming_with_another_number_of_processes_says_the_batch_changes(tmp_path, capsys):
    """Checkpoints record how many processes trained them. A run resumed by another number goes on (fewer GPUs left is
    a reason to), with a note that each step now takes another number of clips (the batch size is per process)."""
    from savgbench.baselines.train import train_joint_cli, read_train_log
    from savgbench.core import save_torch
    data, run = _tiny_dataset(tmp_path), tmp_path / 'run'
    common = [str(data), '--out', str(run), '--preset', 'tiny', '--batch-size', '1', '--save-every', '1', '--log-every', '1',
              '--mixed-precision', 'no', '--num-workers', '0']
    assert train_joint_cli([*common, '--steps', '1']) == 0
    ck = torch.load(run / 'checkpoint_1.pt', weights_only=False)
    assert ck['processes'] == 1
    save_torch({**ck, 'processes': 2}, run / 'checkpoint_1.pt')          # as a launch of two processes writes it
    capsys.readouterr()
    assert train_joint_cli([*common, '--steps', '2']) == 0
    out = capsys.readouterr().out
    assert out.count('checkpoint_1.pt was trained by 2 processes, now 1: each step now takes 1 x 1 clips instead of '
                     '2 x 1') == 1, out
    assert torch.load(run / 'checkpoint_2.pt', weights_only=False)['processes'] == 1
    assert read_train_log(run)['step'].tolist() == [1, 2]
    assert train_joint_cli([*common, '--steps', '3']) == 0                # the same number again: nothing to say
    assert 'was trained by' not in capsys.readouterr().out


def test_clips_past_num_in_the_folder_are_named_and_kept(tmp_path, capsys):
    """A folder sampled with --num 3, then sampled again with --num 1: the two clips past --num are kept, and the note
    and the summary say that scoring the folder takes them too."""
    from savgbench.baselines.sample import sample_cli
    net = CoupledUNet(MMDiffusionConfig.tiny())
    torch.save({'model': net.state_dict(), 'ema': None, 'model_kind': 'joint', 'model_config': vars(net.cfg)}, tmp_path / 'j.pt')
    args = ['--checkpoint', str(tmp_path / 'j.pt'), '--batch-size', '1', '--sampler', 'dpm_solver++_2m', '--steps', '1',
            '--device', 'cpu', '--out', str(tmp_path / 'c'), '--writers', '0']
    assert sample_cli(args + ['--num', '3']) == 0
    cap = capsys.readouterr()
    assert 'past --num' not in cap.err + cap.out, cap
    assert sample_cli(args + ['--num', '1']) == 0
    cap = capsys.readouterr()
    assert 'holds 2 clips past --num 1 (sample_00001.mp4 ... sample_00002.mp4)' in cap.err, cap.err
    assert 'will be scored with the others unless removed' in cap.err, cap.err
    assert '2 more past --num 1 left as they are' in cap.out, cap.out
    assert sorted(p.name for p in (tmp_path / 'c').glob('*.mp4')) == [f'sample_{i:05d}.mp4' for i in range(3)]


def test_joint_and_sr_checkpoints_that_do_not_fit_are_named_with_their_sizes(tmp_path, capsys):
    """A joint checkpoint making 16x16 frames and an SR checkpoint upsampling 8x8 ones: the usage error names each
    file with its size, and what to give instead; generate_clips refuses the two models before sampling anything."""
    from savgbench.baselines.sample import sample_cli, generate_clips
    net = CoupledUNet(MMDiffusionConfig.tiny())
    torch.save({'model': net.state_dict(), 'ema': None, 'model_kind': 'joint', 'model_config': vars(net.cfg)}, tmp_path / 'j.pt')
    sm = SuperResUNet(SRConfig.tiny(small_size=8))
    torch.save({'model': sm.state_dict(), 'ema': None, 'model_kind': 'sr', 'model_config': vars(sm.cfg)}, tmp_path / 'sr8.pt')
    with pytest.raises(SystemExit) as e:
        sample_cli(['--checkpoint', str(tmp_path / 'j.pt'), '--sr-checkpoint', str(tmp_path / 'sr8.pt'), '--num', '1',
                    '--device', 'cpu', '--out', str(tmp_path / 'c')])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"--checkpoint {tmp_path / 'j.pt'} (the joint model) makes 16x16 frames" in err, err
    assert f"--sr-checkpoint {tmp_path / 'sr8.pt'} (the super-resolution model) upsamples 8x8 frames to 64x64" in err, err
    assert 'an SR checkpoint trained on 16x16 frames' in err and 'leave out --sr-checkpoint' in err, err
    assert not (tmp_path / 'c').exists()
    with pytest.raises(ValueError, match='the joint model makes 16x16 frames but the SR model upsamples 8x8 ones'):
        generate_clips(net, sm, tmp_path / 'd', num=1, batch_size=1, sampler='dpm_solver++_2m', steps=1, progress=False)
    assert not (tmp_path / 'd').exists()


def test_tqdm_disable_turns_off_the_sampling_bars(capsys, monkeypatch):
    "TQDM_DISABLE=1 turns off the bars of the sampler and of super-resolution, which are shown when `progress` is true."
    from savgbench.baselines.sample import sample_joint
    from savgbench.baselines.superres import super_resolve
    net, sm = CoupledUNet(MMDiffusionConfig.tiny()), SuperResUNet(SRConfig.tiny())
    def run():
        x, _ = sample_joint(net, 1, sampler='dpm_solver++_2m', steps=1, progress=True)
        super_resolve(sm, x['video'], steps=2, progress=True)
        return capsys.readouterr().err
    monkeypatch.delenv('TQDM_DISABLE', raising=False)
    shown = run()
    assert 'dpm-solver++' in shown and 'super-resolution' in shown, shown
    monkeypatch.setenv('TQDM_DISABLE', '1')
    assert run() == ''


def _reference_degrade_steps(hr_u8, small, u, noise):
    """The reference's low-resolution frame (MM-Diffusion `RealImageDataset.__getitem__`) from a uint8 RGB frame, with
    its draws given: OpenCV INTER_CUBIC resize, Gaussian noise added in float and left unclipped, and a JPEG round trip
    of the frame as OpenCV converts it (cvRound, saturation), handed over in RGB order as if it were BGR."""
    import cv2
    lr = cv2.resize(hr_u8, (small, small), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    if u[0] < 0.5: lr = lr + noise * (float(u[1]) * 20)
    if u[2] < 0.5:
        u8 = np.clip(np.rint(lr), 0, 255).astype(np.uint8)
        lr = cv2.imdecode(cv2.imencode('.jpg', u8, (cv2.IMWRITE_JPEG_QUALITY, int(20 + float(u[3]) * 60)))[1],
                          cv2.IMREAD_COLOR).astype(np.float64)
    return lr / 127.5 - 1


def test_degrade_makes_the_reference_low_resolution_frames_in_each_branch():
    "Every combination of noise and JPEG, replayed from the same draws, gives the reference's frame (1e-6)."
    from savgbench.baselines.train import degrade
    g = torch.Generator().manual_seed(0)
    hr = (torch.randint(0, 256, (24, 3, 48, 48), generator=g).float() / 127.5 - 1)
    hr[:, 0] = hr[:, 0].clamp(max=0.2); hr[:, 2] = hr[:, 2].clamp(min=-0.2)   # unlike channels: the colour order counts
    got = degrade(hr, 12, torch.Generator().manual_seed(5))
    replay, seen = torch.Generator().manual_seed(5), set()
    for x, y in zip(hr, got):
        u = torch.rand(4, generator=replay)
        noise = torch.randn(12, 12, 3, generator=replay, dtype=torch.float64).numpy() if u[0] < 0.5 else None
        u8 = ((x.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        np.testing.assert_allclose(y.permute(1, 2, 0).numpy(), _reference_degrade_steps(u8, 12, u, noise), atol=1e-6)
        seen.add((bool(u[0] < 0.5), bool(u[2] < 0.5)))
    assert seen == {(a, b) for a in (False, True) for b in (False, True)}, seen
    assert got.max() > 1 or got.min() < -1            # noise without JPEG is not clipped, as the reference's


def test_degrade_hands_jpeg_the_rgb_frame_as_the_reference_does():
    "A JPEG round trip of a colourful frame in RGB order differs from one in BGR order; degrade's is the former."
    import cv2
    from savgbench.baselines.train import degrade
    img = np.zeros((16, 16, 3), np.uint8)                                       # red texture, little blue: chroma detail
    img[..., 0] = np.random.default_rng(0).integers(128, 256, (16, 16)); img[..., 1] = 40; img[..., 2] = 10
    big = np.repeat(np.repeat(img, 2, 0), 2, 1)
    img = cv2.resize(big, (16, 16), interpolation=cv2.INTER_CUBIC)             # the frame the JPEG step gets
    hr = torch.from_numpy(big).permute(2, 0, 1).float().div(127.5).sub(1).expand(64, 3, 32, 32)
    got = degrade(hr, 16, torch.Generator().manual_seed(1))
    replay = torch.Generator().manual_seed(1)
    checked = 0
    for y in got:
        u = torch.rand(4, generator=replay)
        if u[0] < 0.5: torch.randn(16, 16, 3, generator=replay, dtype=torch.float64); continue
        if u[2] >= 0.5: continue                                                  # JPEG alone, noise-free frames
        q = [cv2.IMWRITE_JPEG_QUALITY, int(20 + float(u[3]) * 60)]
        as_rgb = cv2.imdecode(cv2.imencode('.jpg', img, q)[1], cv2.IMREAD_COLOR) / 127.5 - 1
        as_bgr = cv2.imdecode(cv2.imencode('.jpg', img[..., ::-1].copy(), q)[1], cv2.IMREAD_COLOR)[..., ::-1] / 127.5 - 1
        assert np.abs(as_rgb - as_bgr).max() > 0                                 # the order changes the result
        np.testing.assert_allclose(y.permute(1, 2, 0).numpy(), as_rgb, atol=1e-6)
        checked += 1
    assert checked >= 3, checked


def test_gradient_checkpointing_replays_the_window_shift_its_forward_drew():
    """Checkpointed blocks recompute their cross-attention with the shift the forward drew (the reference's reentrant
    checkpoint draws a new one in the backward pass, so its gradients belong to another shift than its loss): the
    gradients equal those of the same step without checkpointing, and the shift does change them."""
    torch.manual_seed(0)
    net = CoupledUNet(MMDiffusionConfig.tiny())
    ckp = CoupledUNet(MMDiffusionConfig.tiny(gradient_checkpointing=True)); ckp.load_state_dict(net.state_dict())
    for p in (*net.parameters(), *ckp.parameters()): p.data.add_(0.05 * torch.randn_like(p))   # no zero output layers
    ckp.load_state_dict(net.state_dict())
    g = torch.Generator().manual_seed(1)
    v, a, t = torch.randn(2, 4, 3, 16, 16, generator=g), torch.randn(2, 2, 1024, generator=g), torch.tensor([3, 700])

    def grads(m, seed):
        m.zero_grad(); torch.manual_seed(seed)
        ev, ea = m(v, a, t); (ev.square().mean() + ea.square().mean()).backward()
        return torch.cat([p.grad.flatten() for p in m.parameters()])
    torch.testing.assert_close(grads(ckp, 5), grads(net, 5))
    assert any(not torch.allclose(grads(net, 5), grads(net, s)) for s in range(6, 12))   # other shifts, other gradients
