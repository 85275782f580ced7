"""Joint baseline training and sampling: values the spec fixes (defaults, the optimiser's step, the EMA formula, the
flip probability, seeds and batches) checked against hand-derived expectations, not against the code's own output."""
import copy
import numpy as np
import pytest
import torch

from savgbench.baselines.mmdiffusion import MMDiffusionConfig, CoupledUNet

torch.set_num_threads(1)


def test_a_constant_frame_resizes_to_its_own_level():
    "Any interpolation of a constant picture is that constant: white stays exactly 1, black -1, mid-grey 128/127.5 - 1."
    from savgbench.baselines.train import resize_frames
    for level in (0, 128, 255):
        frames = np.full((2, 32, 32, 3), level, np.uint8)
        for size in (32, 16, 8):
            out = resize_frames(frames, size)
            assert out.shape == (2, 3, size, size)
            torch.testing.assert_close(out, torch.full_like(out, level / 127.5 - 1), rtol=0, atol=1e-6)


def test_swap_flip_mirrors_about_half_the_clips_each_with_its_channels():
    "'swap': each clip independently, with probability 1/2, mirrored and its L/R swapped; the rest untouched."
    from savgbench.baselines.train import hflip_augment
    B = 4000
    video = torch.randn(B, 2, 3, 4, 5)
    audio = torch.randn(B, 2, 7)
    v, a = hflip_augment(video, audio, 'swap', torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(v[i], video[i].flip(-1)) for i in range(B)])
    kept = torch.tensor([torch.equal(v[i], video[i]) for i in range(B)])
    assert (flipped ^ kept).all()                                  # each clip is one or the other
    assert torch.equal(a[flipped], audio[flipped][:, [1, 0]])      # mirrored clips: channels swapped, time kept
    assert torch.equal(a[kept], audio[kept])
    share = flipped.float().mean().item()                          # binomial(4000, 1/2): sd 0.008
    assert 0.46 < share < 0.54, share
    # the draws come from the generator given, whatever the global RNG holds
    torch.manual_seed(1); v1, _ = hflip_augment(video[:64], audio[:64], 'swap', torch.Generator().manual_seed(5))
    torch.manual_seed(2); v2, _ = hflip_augment(video[:64], audio[:64], 'swap', torch.Generator().manual_seed(5))
    assert torch.equal(v1, v2)


def test_train_config_defaults_are_the_reference_recipe():
    "Spec 1.4: AdamW 2e-4 without weight decay, batch 4 per GPU, EMA 0.9999, log every 100, checkpoint every 10k, ~330k steps."
    from savgbench.baselines.train import TrainConfig
    c = TrainConfig()
    assert (c.lr, c.weight_decay, c.batch_size, c.ema_rate) == (2e-4, 0.0, 4, 0.9999)
    assert (c.log_every, c.save_every, c.max_steps, c.diffusion_steps) == (100, 10_000, 330_000, 1000)
    assert c.hflip == 'swap' and c.preset == 'paper'                # spec 1.1: p=0.5 with the L/R swap recommended


def test_train_joint_command_defaults_are_the_reference_recipe(tmp_path, monkeypatch):
    from savgbench.baselines import train
    got = {}
    monkeypatch.setattr(train, 'train_joint', lambda data, out, cfg, **kw: got.update(cfg=cfg, kw=kw) or [])
    assert train.train_joint_cli([str(tmp_path), '--out', str(tmp_path / 'run'), '--preset', 'tiny']) == 0
    c = got['cfg']
    assert (c.lr, c.weight_decay, c.batch_size, c.ema_rate, c.max_steps) == (2e-4, 0.0, 4, 0.9999, 330_000)
    assert (c.log_every, c.save_every, c.hflip, c.seed) == (100, 10_000, 'swap', 0)
    assert got['kw']['resume'] is True


def test_step_seeds_differ_between_steps_processes_and_runs():
    "Every step of every process draws its own timesteps, noise and flips; runs seeded differently share none of them."
    from savgbench.baselines.train import step_seed
    seeds = [step_seed(seed, step, rank) for seed in range(3) for step in range(200) for rank in range(8)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 2 ** 63 for s in seeds)


@pytest.mark.parametrize('n,batch,world', [(12, 2, 2), (13, 2, 3), (10, 3, 1), (24, 2, 4)])
def test_each_epoch_gives_every_process_distinct_items(n, batch, world):
    "An epoch is n // (batch * world) steps; in it the processes' batches are disjoint, full and of distinct items."
    from savgbench.baselines.train import batch_indices
    per_epoch = n // (batch * world)
    for epoch in range(3):
        got = [batch_indices(n, batch, s, 7, r, world) for s in range(epoch * per_epoch, (epoch + 1) * per_epoch)
               for r in range(world)]
        assert all(len(b) == batch for b in got), got
        flat = sum(got, [])
        assert len(set(flat)) == len(flat) == per_epoch * batch * world, (epoch, got)
        assert all(0 <= i < n for i in flat)


def test_ema_update_follows_its_formula_and_keeps_its_own_copy():
    from savgbench.baselines.train import EMA
    lin = torch.nn.Linear(3, 2)
    lin.register_buffer('count', torch.tensor([5.0]))
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    e = EMA(lin, 0.9)
    with torch.no_grad(): lin.weight.add_(1.0); lin.bias.mul_(3.0)   # the model moves: the EMA does not, until updated
    assert torch.equal(e.state_dict()['weight'], w0) and torch.equal(e.state_dict()['bias'], b0)
    e.update(lin)
    torch.testing.assert_close(e.state_dict()['weight'], 0.9 * w0 + 0.1 * (w0 + 1.0))
    torch.testing.assert_close(e.state_dict()['bias'], 0.9 * b0 + 0.1 * (3 * b0))
    sd = e.state_dict(lin)                                          # a full state_dict: EMA parameters, model buffers
    torch.testing.assert_close(sd['weight'], 0.9 * w0 + 0.1 * (w0 + 1.0))
    assert torch.equal(sd['count'], torch.tensor([5.0]))


def test_the_first_step_is_one_adamw_step_without_weight_decay_and_the_ema_follows(tmp_path):
    """At initialisation the coupled U-Net's output convolutions are zero, so only they get a gradient: an AdamW first
    step moves each of their weights by lr * g / (|g| + eps), i.e. by lr where g is not tiny, and without weight decay
    every other parameter stays exactly where it was. The EMA after one step is rate * init + (1 - rate) * new."""
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    mcfg = MMDiffusionConfig.tiny()
    torch.manual_seed(3)
    net = CoupledUNet(mcfg)
    init = copy.deepcopy(net.state_dict())
    lr, rate = 1e-3, 0.75
    cfg = TrainConfig(preset='tiny', batch_size=2, lr=lr, ema_rate=rate, max_steps=1, mixed_precision='no',
                      hflip='none', num_workers=0)
    train_joint(SyntheticClips(4), tmp_path / 'run', cfg, model=net, progress=False)
    ck = torch.load(tmp_path / 'run' / 'checkpoint_1.pt', weights_only=False)
    outs = ('video_out.2.', 'audio_out.2.')          # the only layers with a gradient at the first step
    moved = 0
    for k, w in init.items():
        new = ck['model'][k]
        if not torch.is_floating_point(w): continue
        torch.testing.assert_close(ck['ema'][k], rate * w + (1 - rate) * new, rtol=1e-5, atol=1e-7)
        if not k.startswith(outs):
            assert torch.equal(new, w), k                       # no gradient, no weight decay: not moved at all
            continue
        d = (new - w).abs()
        assert d.max() <= lr * (1 + 1e-3), (k, d.max().item())     # Adam's first step: |g| / (|g| + eps) <= 1
        full = d > 0.99 * lr                                    # (|g| well above eps: a step of lr)
        moved += int(full.sum())
        torch.testing.assert_close(d[full], torch.full_like(d[full], lr), rtol=2e-3, atol=0)
    assert moved > 100, moved


def test_training_draws_timesteps_from_the_whole_schedule():
    "Uniform t in 0..T-1 (spec 1.4), both ends included."
    from savgbench.baselines.diffusion import GaussianDiffusion
    from savgbench.baselines.train import joint_loss_fn
    T = 25                                      # (the linear schedule scaled by 1000/T needs T > 20)
    class Zero(torch.nn.Module):
        def forward(self, v, a, t): return torch.zeros_like(v), torch.zeros_like(a)
    f = joint_loss_fn(GaussianDiffusion(T))
    g = torch.Generator().manual_seed(0)
    batch = {'video': torch.zeros(8, 2, 3, 4, 4), 'audio': torch.zeros(8, 2, 16)}
    seen = torch.cat([f(Zero(), batch, g)['t'] for _ in range(60)])
    assert seen.min() == 0 and seen.max() == T - 1 and set(seen.tolist()) == set(range(T))


def test_sample_command_defaults_are_the_reference_run(tmp_path, monkeypatch):
    "Spec 2.2 and 3: 96 clips, batch 4 per process, seed 1010, adaptive DPM-Solver++, SR by DDIM in 25 steps; fp32 on a CPU."
    from savgbench.baselines import sample
    torch.manual_seed(0)
    torch.save(CoupledUNet(MMDiffusionConfig.tiny()).state_dict(), tmp_path / 'joint.pt')
    got = {}
    monkeypatch.setattr(sample, 'generate_clips', lambda *a, **kw: got.update(kw) or [])
    assert sample.sample_cli(['--checkpoint', str(tmp_path / 'joint.pt'), '--preset', 'tiny', '--out', str(tmp_path / 'out'),
                              '--device', 'cpu']) == 0
    assert (got['num'], got['batch_size'], got['seed'], got['sampler']) == (96, 4, 1010, 'dpm_solver++')
    assert (got['sr_steps'], got['precision'], got['rank'], got['world']) == (25, 'fp32', 0, 1)


def test_a_model_of_fewer_frames_gets_evenly_spaced_frames_from_first_to_last(tmp_path):
    "The tiny preset takes 4 of a clip's 20 frames: round(k * 19 / 3) = 0, 6, 13, 19 (the clip's first and last included)."
    from savgbench.io import write_clip
    from savgbench.baselines.train import ClipDataset
    video = np.stack([np.full((256, 256, 3), 10 * k + 20, np.uint8) for k in range(20)])   # frame k at level 10k + 20
    write_clip(tmp_path / 'c.mp4', video, np.zeros((2, 80000), np.float32))
    for audio_size in ((2, 1024), None):                            # the joint model's items, and the SR model's
        item = ClipDataset(tmp_path, (4, 3, 16, 16), audio_size)[0]
        levels = ((item['video'].mean(dim=(1, 2, 3)) + 1) * 127.5).tolist()
        np.testing.assert_allclose(levels, [10 * k + 20 for k in (0, 6, 13, 19)], atol=3)


@pytest.mark.parametrize('mode', ['none', 'reference'])
def test_train_joint_mirrors_its_clips_as_the_configuration_says(tmp_path, monkeypatch, mode):
    from savgbench.baselines import train
    seen, flip = [], train.hflip_augment
    def spy(video, audio, m='swap', generator=None):
        seen.append(m); return flip(video, audio, m, generator)
    monkeypatch.setattr(train, 'hflip_augment', spy)
    cfg = train.TrainConfig(preset='tiny', batch_size=1, lr=1e-3, max_steps=2, mixed_precision='no', hflip=mode)
    train.train_joint(train.SyntheticClips(2), tmp_path / 'run', cfg, progress=False)
    assert seen == [mode, mode]


def test_a_sample_becomes_clip_arrays_by_the_reference_rules():
    "Pixels trunc(clamp((x + 1) * 127.5, 0, 255)); 4 frames repeated to 20 in order; audio clamped to [-1, 1], 80000 samples."
    from savgbench.baselines.sample import to_clip_arrays
    levels = torch.tensor([-1.2, -0.5, 0.0015, 0.9])                # (x + 1) * 127.5: -25.5, 63.75, 127.69, 242.25
    video = levels[:, None, None, None].expand(4, 3, 16, 16).clone()
    audio = torch.stack([torch.full((1024,), 0.25), torch.full((1024,), 1.5)])
    v, a = to_clip_arrays(video, audio)
    assert v.dtype == np.uint8 and v.shape == (20, 256, 256, 3)
    assert [int(np.unique(v[k])[0]) for k in range(20)] == [0] * 5 + [63] * 5 + [127] * 5 + [242] * 5
    assert all(len(np.unique(v[k])) == 1 for k in range(20))
    assert a.dtype == np.float32 and a.shape == (2, 80000)
    np.testing.assert_allclose(a[0], 0.25, atol=1e-6); np.testing.assert_allclose(a[1], 1.0, atol=1e-6)


@pytest.mark.parametrize('rank,world', [(0, 1), (1, 2)])
def test_each_clip_is_its_own_sample_of_its_own_batch(tmp_path, monkeypatch, rank, world):
    """Clip i is sample i % batch of batch b = i // batch, drawn with the batch's seed batch_seeds(seed, b) whichever
    process draws it, and written with its own video and its own audio."""
    from savgbench.io import read_clip
    from savgbench.baselines import sample
    net = CoupledUNet(MMDiffusionConfig.tiny()).eval()
    F, _, S, _ = net.cfg.video_size; L = net.cfg.audio_size[1]
    seeds = {sample.batch_seeds(1010, b)[0]: b for b in range(3)}
    drawn = []
    def fake(model, batch_size, seed, **kw):                    # sample j of batch b: levels from i = b * batch + j
        b = seeds[seed]; drawn.append(b)
        assert (kw['sampler'], kw['steps'], kw['precision']) == ('dpm_solver++_2m', 3, 'bf16')
        i = torch.arange(b * batch_size, (b + 1) * batch_size, dtype=torch.float32)
        video = (-0.8 + 0.3 * i)[:, None, None, None, None].expand(batch_size, F, 3, S, S).clone()
        audio = torch.stack([0.1 * (i + 1), -0.05 * (i + 1)], 1)[:, :, None].expand(batch_size, 2, L).clone()
        return {'video': video, 'audio': audio}, 1
    monkeypatch.setattr(sample, 'sample_joint', fake)
    files = sample.generate_clips(net, None, tmp_path / 'out', num=5, batch_size=2, seed=1010, rank=rank, world=world,
                                  sampler='dpm_solver++_2m', steps=3, precision='bf16', writers=0, progress=False,
                                  audio_codec='pcm', record=False)
    mine = [b for b in range(3) if b % world == rank]
    assert drawn == mine
    assert [p.name for p in files] == [f'sample_{i:05d}.mp4' for b in mine for i in range(2 * b, min(5, 2 * b + 2))]
    for p in files:
        i = int(p.stem.split('_')[1])
        c = read_clip(p)
        assert abs(float(c.video.mean()) - int((0.2 + 0.3 * i) * 127.5)) < 3, (i, c.video.mean())
        np.testing.assert_allclose(c.audio[0], 0.1 * (i + 1), atol=2e-3)
        np.testing.assert_allclose(c.audio[1], -0.05 * (i + 1), atol=2e-3)


def test_without_super_resolution_frames_are_upsampled_bicubically():
    "A bicubic upsampling of a step edge overshoots on both sides of it (its kernel has negative lobes); a bilinear one cannot."
    from savgbench.baselines.sample import to_clip_arrays
    video = torch.full((4, 3, 16, 16), -0.5); video[..., 8:] = 0.5     # levels 63.75 and 191.25
    v, _ = to_clip_arrays(video, torch.zeros(2, 1024))
    assert v.min() < 63 and v.max() > 191, (v.min(), v.max())
    assert v[:, :, :100].max() == 63 and v[:, :, -100:].min() == 191   # far from the edge: the levels themselves


def test_pruning_counts_the_last_step_as_a_checkpoint_of_the_grid(tmp_path):
    "keep_checkpoints=1 with save_every=4 and 6 steps: checkpoint 6 (the end) is the newest of the grid, so 4 goes."
    from savgbench.baselines.train import TrainConfig, _prune_checkpoints
    for s in (4, 6): (tmp_path / f'checkpoint_{s}.pt').touch()
    _prune_checkpoints(tmp_path, TrainConfig(max_steps=6, save_every=4, keep_checkpoints=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['checkpoint_6.pt']


def test_log_quarters_split_the_timesteps_at_t_over_4():
    "loss_q0..q3: samples with t in [0, T/4), [T/4, T/2), [T/2, 3T/4), [3T/4, T) (guided-diffusion's quartiles)."
    from savgbench.baselines.train import _step_record
    T = 1000
    t = torch.tensor([0, 249, 250, 499, 500, 749, 750, 999])
    loss = torch.arange(1., 9.)
    rec = _step_record({'loss': loss, 't': t}, [], T)
    assert rec[0] == loss.mean()
    assert rec[1:5].tolist() == [1 + 2, 3 + 4, 5 + 6, 7 + 8] and rec[5:9].tolist() == [2, 2, 2, 2]


def test_a_log_row_averages_over_every_step_of_every_process():
    "3 steps of 2 processes, batch 4, in 6 s: the loss is the sum over 6 step-means / 6, and 3 * 4 * 2 samples took 6 s."
    from savgbench.baselines.train import _log_row
    total = [12.0, 9.0, 4.0, 0.0, 0.0, 1.5, 3.0, 0.0, 0.0, 1.0]   # loss, video term; quarter sums; quarter counts
    row = _log_row(step=30, n=3, total=total, terms=['video'], world=2, seconds=6.0, batch=4)
    assert row['loss'] == 12.0 / 6 and row['loss_video'] == 9.0 / 6
    assert row['loss_q0'] == 4.0 / 3 and row['loss_q3'] == 1.5 and np.isnan(row['loss_q1']) and np.isnan(row['loss_q2'])
    assert row['s_per_step'] == 2.0 and row['samples_per_s'] == 4.0


def test_sr_training_draws_timesteps_from_the_whole_schedule():
    from savgbench.baselines.diffusion import GaussianDiffusion
    from savgbench.baselines.train import sr_loss_fn
    T, seen = 25, []
    class Zero(torch.nn.Module):
        def forward(self, x, t, low_res): seen.append(t); return torch.zeros(x.shape[0], 6, *x.shape[2:])
    f = sr_loss_fn(GaussianDiffusion(T))
    g = torch.Generator().manual_seed(0)
    batch = {'hr': torch.zeros(8, 3, 8, 8), 'lr': torch.zeros(8, 3, 2, 2)}
    for _ in range(60): f(Zero(), batch, g)
    seen = torch.cat(seen)
    assert seen.min() == 0 and seen.max() == T - 1 and set(seen.tolist()) == set(range(T))


@pytest.mark.parametrize('in_cfg,in_model', [(True, False), (False, True)])
def test_gradient_checkpointing_is_on_when_either_configuration_asks(tmp_path, in_cfg, in_model):
    from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips
    cfg = TrainConfig(preset='tiny', batch_size=1, lr=1e-3, max_steps=1, mixed_precision='no', gradient_checkpointing=in_cfg)
    train_joint(SyntheticClips(2), tmp_path / 'run', cfg, MMDiffusionConfig.tiny(gradient_checkpointing=in_model),
                progress=False)
    ck = torch.load(tmp_path / 'run' / 'checkpoint_1.pt', weights_only=False)
    assert ck['model_config']['gradient_checkpointing'] is True


def test_sr_training_takes_frames_per_clip_random_frames_from_every_position(tmp_path, monkeypatch):
    "Each clip gives frames_per_clip frames per step, drawn from all its frames (the last one too), at the model's size."
    from savgbench.baselines import train
    from savgbench.baselines.superres import SRConfig
    levels = torch.tensor([-0.8, -0.4, 0.0, 0.4, 0.8])             # frame k of every clip: one grey level
    class Frames(torch.utils.data.Dataset):
        def __len__(self): return 2
        def __getitem__(self, i): return {'video': levels[:, None, None, None].expand(5, 3, 32, 32).clone()}
    seen, degrade = [], train.degrade
    def spy(hr, small, generator=None):
        seen.append(hr.clone()); return degrade(hr, small, generator)
    monkeypatch.setattr(train, 'degrade', spy)
    cfg = train.TrainConfig(preset='tiny', batch_size=2, lr=1e-4, max_steps=10, mixed_precision='no', hflip='none',
                            frames_per_clip=3)
    train.train_sr(Frames(), tmp_path / 'run', cfg, model_cfg=SRConfig.tiny(large_size=32, small_size=8), progress=False)
    assert len(seen) == 10 and all(hr.shape == (6, 3, 32, 32) for hr in seen)
    picked = torch.cat([hr.mean(dim=(1, 2, 3)) for hr in seen])
    k = ((picked + 0.8) / 0.4).round()
    torch.testing.assert_close(picked, levels[k.long()])           # whole frames of the clip, as they were
    assert set(k.long().tolist()) == set(range(5))


def test_sr_training_frames_resized_to_the_model_stay_in_range(tmp_path, monkeypatch):
    "Frames of another size are resized to the SR model's (bicubic, which overshoots at edges) and clamped to [-1, 1]."
    from savgbench.baselines import train
    from savgbench.baselines.superres import SRConfig
    seen, degrade = [], train.degrade
    def spy(hr, small, generator=None):
        seen.append(hr.clone()); return degrade(hr, small, generator)
    monkeypatch.setattr(train, 'degrade', spy)
    class Squares(torch.utils.data.Dataset):                        # 16x16 frames: a white square on black
        def __len__(self): return 2
        def __getitem__(self, i):
            v = -torch.ones(3, 3, 16, 16); v[..., 4:10, 5:11] = 1; return {'video': v}
    cfg = train.TrainConfig(preset='tiny', batch_size=2, lr=1e-4, max_steps=2, mixed_precision='no', hflip='none')
    train.train_sr(Squares(), tmp_path / 'run', cfg, model_cfg=SRConfig.tiny(), progress=False)
    hr = torch.cat(seen)
    assert hr.shape[-2:] == (64, 64) and hr.min() == -1 and hr.max() == 1


def test_training_command_options_reach_the_configuration(tmp_path, monkeypatch):
    from savgbench.baselines import train
    got = {}
    monkeypatch.setattr(train, 'train_sr', lambda data, out, cfg, **kw: got.update(cfg=cfg, kw=kw) or [])
    monkeypatch.setattr(train, 'train_joint', lambda data, out, cfg, **kw: got.update(cfg=cfg, kw=kw) or [])
    common = ['--preset', 'tiny', '--steps', '7', '--batch-size', '3', '--lr', '3e-4', '--ema-rate', '0.99',
              '--seed', '5', '--save-every', '4', '--log-every', '2', '--keep-checkpoints', '3', '--num-workers', '2',
              '--mixed-precision', 'fp32', '--gradient-checkpointing', '--no-resume', '--skip-bad']
    want = dict(preset='tiny', max_steps=7, batch_size=3, lr=3e-4, ema_rate=0.99, seed=5, save_every=4, log_every=2,
                keep_checkpoints=3, num_workers=2, mixed_precision='no', gradient_checkpointing=True)
    train.train_sr_cli([str(tmp_path), '--out', str(tmp_path / 'sr'), *common, '--frames-per-clip', '3',
                        '--diffusion-steps', '1100', '--init', 'x.pt'])
    c = got['cfg']
    assert {k: getattr(c, k) for k in want} == want
    assert (c.frames_per_clip, c.diffusion_steps, c.hflip) == (3, 1100, 'none')
    assert got['kw'] == dict(init='x.pt', resume=False, skip_bad=True)
    train.train_joint_cli([str(tmp_path), '--out', str(tmp_path / 'joint'), *common, '--hflip', 'reference'])
    c = got['cfg']
    assert {k: getattr(c, k) for k in want} == want and c.hflip == 'reference'
    assert got['kw'] == dict(resume=False, skip_bad=True)


def test_settings_that_make_the_same_clips_are_recorded_alike():
    "dpm_solver++_2m without steps runs its default number (STEPS_2M), and SR without sr_T the model's own T: the record says so."
    from savgbench.baselines.sample import clip_settings, STEPS_2M
    from savgbench.baselines.superres import SRConfig, SuperResUNet
    net = CoupledUNet(MMDiffusionConfig.tiny())
    sr = SuperResUNet(SRConfig.tiny(small_size=16, diffusion_steps=1100))
    implicit = clip_settings(net, sr, sampler='dpm_solver++_2m')
    explicit = clip_settings(net, sr, sampler='dpm_solver++_2m', steps=STEPS_2M, sr_T=1100)
    assert implicit == explicit and implicit['steps'] == STEPS_2M and implicit['sr_T'] == 1100
    assert clip_settings(net, sr, sampler='dpm_solver++')['steps'] is None        # (the adaptive solver picks its own)


@pytest.mark.parametrize('precision,want', [('fp32', None), ('bf16', torch.bfloat16), ('fp16', torch.float16)])
def test_sampling_runs_the_network_in_the_precision_asked(precision, want):
    "fp32: no autocast (as the reference sampled); bf16 / fp16: autocast to that type."
    from savgbench.baselines.sample import sample_joint
    seen = []
    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))
            self.cfg = MMDiffusionConfig.tiny(video_size=(1, 3, 2, 2), audio_size=(2, 4))
        def forward(self, v, a, t):
            on = torch.is_autocast_enabled('cpu')
            seen.append(torch.get_autocast_dtype('cpu') if on else None)
            return torch.zeros_like(v), torch.zeros_like(a)
    sample_joint(Probe(), 1, sampler='dpm_solver++_2m', steps=2, precision=precision)
    assert seen == [want, want]
