"""The whole coupled U-Net against an independent re-statement of MM-Diffusion's `MultimodalUNet` forward pass.

`tests/test_joint.py` checks names, shapes and single blocks. This file checks the wiring of the whole network:
block order, skip connections, where the time embedding enters (scale-shift norm), up/down-sampling, where the
spatial, temporal and audio self-attention and the random-shift cross-modal attention (RS-MMA) sit, the middle
block's full cross-attention, the audio dilation schedule and the output heads.

`RefUNet` below restates the reference (researchmm/MM-Diffusion `mm_diffusion/multimodal_unet.py` and `nn.py`, as
used unchanged by HaofeiDing/SAVGBench `joint_method/`; spec `baselines_reference.md` §1.2-1.3) from its
constructor and forward rules. It shares no code with `savgbench`: plain torch functions on a flat dict of weights,
video kept as (B, F, C, H, W) and rearranged around each operation as the reference does, a Python loop over the
frames for RS-MMA with index tables built like the reference's, and the reference's einsum attention with q and k
each scaled by d**-1/4. Every weight gets random values (also the zero-initialised heads and projections, which
would otherwise hide half the network), the same state_dict goes into both, and the outputs must agree.
"""
import math
import random

import pytest
import torch
import torch.nn.functional as F

from savgbench.baselines.mmdiffusion import (MMDiffusionConfig, CoupledUNet, CrossAttentionBlock, audio_dilations,
                                             load_joint_weights, paper_parameter_count)

torch.set_num_threads(1)

GROUPS = 32          # the reference's `normalization(ch)` is always GroupNorm(32, ch)
MAX_DILA = 10        # `max_dila` of the reference constructor: audio dilation 2**(k % 10)


# --------------------------------------------------------------------------------------------------------------------
# The re-statement
# --------------------------------------------------------------------------------------------------------------------

class RefUNet:
    """The reference constructor as a plan: every layer's name, kind and settings, and the shapes of its weights.

    Arguments mirror `MultimodalUNet(video_size, audio_size, model_channels, video_out_channels, audio_out_channels,
    num_res_blocks, cross_attention_resolutions, cross_attention_windows, cross_attention_shift,
    video_attention_resolutions, audio_attention_resolutions, channel_mult, num_heads, num_head_channels,
    use_scale_shift_norm=True, resblock_updown=True)`."""

    def __init__(self, video_size, audio_size, model_channels, num_res_blocks, channel_mult, cross_res, cross_windows,
                 cross_shift, video_attn_res, audio_attn_res, num_heads=4, num_head_channels=64):
        self.frames, self.video_ch = video_size[0], video_size[1]
        self.audio_ch = audio_size[0]
        self.mc, self.num_heads, self.head_ch = model_channels, num_heads, num_head_channels
        self.shapes = {}                       # reference parameter name -> shape
        mc = model_channels
        emb_dim = mc                           # MM-Diffusion: time_embed_dim = model_channels (not 4x)
        self._linear('time_embed.0', mc, emb_dim)
        self._linear('time_embed.2', emb_dim, emb_dim)

        ch = in_ch = int(channel_mult[0] * mc)
        self.input_blocks = [[('init', 'input_blocks.0.0', {})]]
        self._vconv('input_blocks.0.0.video_conv', self.video_ch, ch, 3)
        self._aconv('input_blocks.0.0.audio_conv', self.audio_ch, ch, 3)
        skip_chans, ds, k = [ch], 1, 1       # k: the audio dilation counter
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                name = f'input_blocks.{len(self.input_blocks)}'
                out = int(mult * mc)
                block = [self._res(name + '.0', ch, out, 2 ** (k % MAX_DILA),
                                   video_attn=ds in video_attn_res, audio_attn=ds in audio_attn_res)]
                k += 1
                ch = out
                if ds in cross_res:
                    block.append(self._xattn(name + '.1', ch, cross_windows[list(cross_res).index(ds)], cross_shift))
                self.input_blocks.append(block)
                skip_chans.append(ch)
            if level != len(channel_mult) - 1:
                name = f'input_blocks.{len(self.input_blocks)}'
                self.input_blocks.append([self._res(name + '.0', ch, ch, 2 ** (k % MAX_DILA), down=True)])
                k += 1
                skip_chans.append(ch)
                ds *= 2

        # middle: both ResBlocks get the same dilation (the counter does not move in between); the full
        # cross-attention (window = all frames, no shift) exists only when the windows are exactly [1,4,8]
        self.middle = [self._res('middle_blocks.0', ch, ch, 2 ** (k % MAX_DILA), video_attn=True, audio_attn=True)]
        if list(cross_windows) == [1, 4, 8]:
            self.middle.append(self._xattn('middle_blocks.1', ch, self.frames, False))
        self.middle.append(self._res(f'middle_blocks.{len(self.middle)}', ch, ch, 2 ** (k % MAX_DILA),
                                     video_attn=True, audio_attn=True))

        k -= 1
        self.output_blocks = []
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                name = f'output_blocks.{len(self.output_blocks)}'
                out = int(mc * mult)
                block = [self._res(name + '.0', ch + skip_chans.pop(), out, 2 ** (k % MAX_DILA),
                                   video_attn=ds in video_attn_res, audio_attn=ds in audio_attn_res)]
                k -= 1
                ch = out
                if ds in cross_res:
                    block.append(self._xattn(f'{name}.{len(block)}', ch,
                                             cross_windows[list(cross_res).index(ds)], cross_shift))
                if level and i == num_res_blocks:      # the up ResBlock uses the already decremented counter
                    block.append(self._res(f'{name}.{len(block)}', ch, ch, 2 ** (k % MAX_DILA), up=True))
                    ds //= 2
                self.output_blocks.append(block)

        self._gn('audio_out.0', ch)
        self.shapes['audio_out.2.audio_conv.weight'] = (self.audio_ch, in_ch, 3)
        self.shapes['audio_out.2.audio_conv.bias'] = (self.audio_ch,)
        self._gn('video_out.0', ch)
        self._conv3d('video_out.2.video_conv', in_ch, self.video_ch, 3)

    # --- shape registration (reference module names) ---
    def _linear(self, n, cin, cout): self.shapes[n + '.weight'] = (cout, cin); self.shapes[n + '.bias'] = (cout,)
    def _gn(self, n, c): self.shapes[n + '.GroupNorm.weight'] = (c,); self.shapes[n + '.GroupNorm.bias'] = (c,)
    def _conv1(self, n, cin, cout): self.shapes[n + '.weight'] = (cout, cin, 1); self.shapes[n + '.bias'] = (cout,)
    def _aconv(self, n, cin, cout, kk):
        self.shapes[n + '.audio_conv.weight'] = (cout, cin, kk); self.shapes[n + '.audio_conv.bias'] = (cout,)
    def _conv3d(self, n, cin, cout, kk):
        self.shapes[n + '.weight'] = (cout, cin, kk, kk, kk); self.shapes[n + '.bias'] = (cout,)
    def _vconv(self, n, cin, cout, kk):
        self.shapes[n + '.video_conv_spatial.weight'] = (cout, cin, kk, kk)
        self.shapes[n + '.video_conv_spatial.bias'] = (cout,)
        self.shapes[n + '.video_conv_temporal.weight'] = (cout, cout, kk)
        self.shapes[n + '.video_conv_temporal.bias'] = (cout,)
    def _selfattn(self, n, c): self._gn(n + '.norm', c); self._conv1(n + '.qkv', c, 3 * c); self._conv1(n + '.proj_out', c, c)

    def _res(self, n, cin, cout, dilation, up=False, down=False, video_attn=False, audio_attn=False):
        self._gn(n + '.video_in_layers.0', cin); self._vconv(n + '.video_in_layers.2', cin, cout, 3)
        self._gn(n + '.audio_in_layers.0', cin); self._aconv(n + '.audio_in_layers.2', cin, cout, 3)
        self._linear(n + '.emb_layers.1', self.mc, 2 * cout)            # use_scale_shift_norm: scale and shift
        self._gn(n + '.video_out_layers.0', cout); self._conv3d(n + '.video_out_layers.3.video_conv', cout, cout, 1)
        self._gn(n + '.audio_out_layers.0', cout); self._aconv(n + '.audio_out_layers.3', cout, cout, 1)
        if cin != cout:
            self._conv3d(n + '.video_skip_connection.video_conv', cin, cout, 1)
            self._aconv(n + '.audio_skip_connection', cin, cout, 1)
        if video_attn:
            self._selfattn(n + '.spatial_attention_block', cout); self._selfattn(n + '.temporal_attention_block', cout)
        if audio_attn: self._selfattn(n + '.audio_attention_block', cout)
        return ('res', n, dict(cin=cin, cout=cout, dilation=dilation, up=up, down=down,
                               video_attn=video_attn, audio_attn=audio_attn))

    def _xattn(self, n, c, window, shift):
        self._gn(n + '.v_norm', c); self._gn(n + '.a_norm', c)
        self._conv1(n + '.v_qkv', c, 3 * c); self._conv1(n + '.a_qkv', c, 3 * c)
        self._conv3d(n + '.video_proj_out.video_conv', c, c, 1); self._aconv(n + '.audio_proj_out', c, c, 1)
        return ('xattn', n, dict(channels=c, window=window, shift=shift))

    def dilations(self):
        "The audio dilation of every ResBlock, in forward order."
        blocks = self.input_blocks + [self.middle] + self.output_blocks
        return [o['dilation'] for b in blocks for kind, _, o in b if kind == 'res']

    def cross_blocks(self):
        "(name, window, shifted) of every cross-attention block, in forward order."
        blocks = self.input_blocks + [self.middle] + self.output_blocks
        return [(n, o['window'], o['shift']) for b in blocks for kind, n, o in b if kind == 'xattn']

    # --- forward -----------------------------------------------------------------------------------------------------
    def forward(self, weights, video, audio, timesteps, shifts):
        """video (B,F,C,H,W), audio (B,C,L), timesteps (B,); `shifts` maps each shifted cross-attention block's name
        to the value the reference would draw with `random.randint(0, F - window)`."""
        if set(weights) != set(self.shapes) or any(tuple(weights[n].shape) != s for n, s in self.shapes.items()):
            raise KeyError("state_dict does not match the reference plan")
        self.used = set()
        self.W, self.shifts = weights, shifts
        emb = self._timestep_embedding(timesteps)
        emb = F.linear(emb.to(video.dtype), self.w('time_embed.0.weight'), self.w('time_embed.0.bias'))
        emb = F.linear(F.silu(emb), self.w('time_embed.2.weight'), self.w('time_embed.2.bias'))
        video_stack, audio_stack = [], []
        for block in self.input_blocks:
            video, audio = self._run(block, video, audio, emb)
            video_stack.append(video)
            audio_stack.append(audio)
        video, audio = self._run(self.middle, video, audio, emb)
        for block in self.output_blocks:
            video = torch.cat([video, video_stack.pop()], dim=2)          # channels of (b f c h w)
            audio = torch.cat([audio, audio_stack.pop()], dim=1)
            video, audio = self._run(block, video, audio, emb)
        video = self._conv3d_apply(F.silu(self._groupnorm(video, 'video_out.0')), 'video_out.2.video_conv')
        audio = F.conv1d(F.silu(self._groupnorm(audio, 'audio_out.0')), self.w('audio_out.2.audio_conv.weight'),
                         self.w('audio_out.2.audio_conv.bias'), padding='same')
        return video, audio

    def w(self, name):
        self.used.add(name)
        return self.W[name]

    def _timestep_embedding(self, t):
        half = self.mc // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        ang = t.float()[:, None] * freqs[None, :]
        return torch.cat([ang.cos(), ang.sin()], dim=1)

    def _run(self, block, video, audio, emb):
        for kind, name, opts in block:
            if kind == 'init':
                video = self._video_conv_2d1d(video, name + '.video_conv')
                audio = F.conv1d(audio, self.w(name + '.audio_conv.audio_conv.weight'),
                                 self.w(name + '.audio_conv.audio_conv.bias'), padding='same')
            elif kind == 'res': video, audio = self._resblock(name, opts, video, audio, emb)
            else: video, audio = self._cross_attention(name, opts, video, audio)
        return video, audio

    # --- layers, in the reference's (b f c h w) layout ---
    def _groupnorm(self, x, name):
        "GroupNorm32 of nn.py: a 5-D input whose dim 1 is not the channel count is moved to (b c f h w) first; fp32."
        gw, gb = self.w(name + '.GroupNorm.weight'), self.w(name + '.GroupNorm.bias')
        moved = x.dim() == 5 and x.shape[1] != gw.shape[0]
        if moved: x = x.permute(0, 2, 1, 3, 4)
        y = F.group_norm(x.float(), GROUPS, gw.float(), gb.float(), 1e-5).to(x.dtype)
        return y.permute(0, 2, 1, 3, 4) if moved else y

    def _video_conv_2d1d(self, x, name):
        "Per-frame Conv2d, then per-pixel Conv1d over the frames."
        b, f, c, h, w = x.shape
        y = F.conv2d(x.reshape(b * f, c, h, w), self.w(name + '.video_conv_spatial.weight'),
                     self.w(name + '.video_conv_spatial.bias'), padding='same')
        c2 = y.shape[1]
        y = y.reshape(b, f, c2, h, w).permute(0, 3, 4, 2, 1).reshape(b * h * w, c2, f)       # (b h w) c f
        y = F.conv1d(y, self.w(name + '.video_conv_temporal.weight'), self.w(name + '.video_conv_temporal.bias'),
                     padding='same')
        return y.reshape(b, h, w, c2, f).permute(0, 4, 3, 1, 2)                               # b f c h w

    def _conv3d_apply(self, x, name):
        y = F.conv3d(x.permute(0, 2, 1, 3, 4), self.w(name + '.weight'), self.w(name + '.bias'), padding='same')
        return y.permute(0, 2, 1, 3, 4)

    def _audio_conv(self, x, name, dilation=1):
        return F.conv1d(x, self.w(name + '.audio_conv.weight'), self.w(name + '.audio_conv.bias'), padding='same',
                        dilation=dilation)

    def _resample(self, video, audio, up):
        "Up/Downsample(use_conv=False) on (b f c h w): kernel/stride (1,2,2) over (c,h,w); audio by 4."
        if up:
            b, f, c, h, w = video.shape
            video = F.interpolate(video, size=(c, 2 * h, 2 * w), mode='nearest')
            audio = F.interpolate(audio, scale_factor=4, mode='nearest')
        else:
            video = F.avg_pool3d(video, kernel_size=(1, 2, 2), stride=(1, 2, 2))
            audio = F.avg_pool1d(audio, kernel_size=4, stride=4)
        return video, audio

    def _resblock(self, n, o, video, audio, emb):
        b, f, _, h, w = video.shape
        vh = self._video_conv_2d1d(F.silu(self._groupnorm(video, n + '.video_in_layers.0')), n + '.video_in_layers.2')
        ah = self._audio_conv(F.silu(self._groupnorm(audio, n + '.audio_in_layers.0')), n + '.audio_in_layers.2',
                              o['dilation'])
        if o['up'] or o['down']:                     # the in-convolution first, then h and x resampled alike
            vh, ah = self._resample(vh, ah, o['up'])
            video, audio = self._resample(video, audio, o['up'])
        e = F.linear(F.silu(emb), self.w(n + '.emb_layers.1.weight'), self.w(n + '.emb_layers.1.bias'))
        v_scale, v_shift = e[:, None, :, None, None].chunk(2, dim=2)
        vh = self._groupnorm(vh, n + '.video_out_layers.0') * (1 + v_scale) + v_shift
        vh = self._conv3d_apply(F.silu(vh), n + '.video_out_layers.3.video_conv')          # dropout: eval
        a_scale, a_shift = e[:, :, None].chunk(2, dim=1)
        ah = self._groupnorm(ah, n + '.audio_out_layers.0') * (1 + a_scale) + a_shift
        ah = self._audio_conv(F.silu(ah), n + '.audio_out_layers.3')
        if o['cin'] != o['cout']:
            video = self._conv3d_apply(video, n + '.video_skip_connection.video_conv')
            audio = self._audio_conv(audio, n + '.audio_skip_connection')
        video, audio = video + vh, audio + ah
        if o['video_attn']:
            b, f, c, h, w = video.shape
            x = self._self_attention(video.reshape(b * f, c, h * w), n + '.spatial_attention_block')   # (b f) c (h w)
            x = x.reshape(b, f, c, h, w).permute(0, 3, 4, 2, 1).reshape(b * h * w, c, f)                # (b h w) c f
            x = self._self_attention(x, n + '.temporal_attention_block')
            video = x.reshape(b, h, w, c, f).permute(0, 4, 3, 1, 2)
        if o['audio_attn']:
            audio = self._self_attention(audio, n + '.audio_attention_block')
        return video, audio

    @staticmethod
    def _heads_attention(q, k, v, heads):
        "The reference's QKV attention: (N, heads*d, T) queries against (N, heads*d, S) keys/values."
        n, width, _ = q.shape
        d = width // heads
        s = 1 / math.sqrt(math.sqrt(d))
        logits = torch.einsum('bct,bcs->bts', (q * s).reshape(n * heads, d, -1), (k * s).reshape(n * heads, d, -1))
        p = torch.softmax(logits.float(), dim=-1).to(logits.dtype)
        return torch.einsum('bts,bcs->bct', p, v.reshape(n * heads, d, -1)).reshape(n, width, -1)

    def _self_attention(self, x, n):
        "SingleModalAtten: GroupNorm, 1x1 qkv, attention with `num_heads` heads, 1x1 projection, residual."
        qkv = F.conv1d(self._groupnorm(x, n + '.norm'), self.w(n + '.qkv.weight'), self.w(n + '.qkv.bias'))
        q, k, v = qkv.chunk(3, dim=1)
        h = self._heads_attention(q, k, v, self.num_heads)
        return x + F.conv1d(h, self.w(n + '.proj_out.weight'), self.w(n + '.proj_out.bias'))

    def _cross_attention(self, n, o, video, audio):
        "CrossAttentionBlock + QKVAttention: one token sequence [video (f h w) | audio l], a loop over frames."
        b, f, c, h, w = video.shape
        length = audio.shape[-1]
        hw, n_video = h * w, f * h * w
        per_frame = int(length / f)                       # the reference's floor rule
        window = o['window']
        shift = self.shifts[n] if o['shift'] else 0
        assert 0 <= shift <= f - window
        tokens = video.permute(0, 2, 1, 3, 4).reshape(b, c, n_video)
        v_qkv = F.conv1d(self._groupnorm(tokens, n + '.v_norm'), self.w(n + '.v_qkv.weight'), self.w(n + '.v_qkv.bias'))
        a_qkv = F.conv1d(self._groupnorm(audio, n + '.a_norm'), self.w(n + '.a_qkv.weight'), self.w(n + '.a_qkv.bias'))
        q, k, v = torch.cat([v_qkv, a_qkv], dim=2).chunk(3, dim=1)
        heads = c // self.head_ch
        video_out, audio_out = [], []
        for i in range(f):
            # every query of frame i: the audio of frames i+s .. i+s+window-1, wrapping around the clip
            keys = torch.tensor([n_video + ((i + shift) * per_frame + j) % length for j in range(window * per_frame)])
            video_out.append(self._heads_attention(q[:, :, i * hw:(i + 1) * hw], k.index_select(2, keys),
                                                   v.index_select(2, keys), heads))
            # audio segment i (the last one keeps the remainder): the video tokens of the same frames
            keys = torch.tensor([((i + shift) * hw + j) % n_video for j in range(window * hw)])
            stop = n_video + (length if i == f - 1 else (i + 1) * per_frame)
            audio_out.append(self._heads_attention(q[:, :, n_video + i * per_frame:stop], k.index_select(2, keys),
                                                   v.index_select(2, keys), heads))
        vh = torch.cat(video_out, dim=2).reshape(b, c, f, h, w).permute(0, 2, 1, 3, 4)
        vh = self._conv3d_apply(vh, n + '.video_proj_out.video_conv')
        ah = self._audio_conv(torch.cat(audio_out, dim=2), n + '.audio_proj_out')
        return video + vh, audio + ah


# --------------------------------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------------------------------

# The paper's structure at CPU size: four levels (1,2,3,4), two ResBlocks per level, video attention at ds 2/4/8,
# RS-MMA at ds 2/4/8 with the reference's windows [1,4,8] (so the middle's full cross-attention exists), 10 frames
# (> the largest window), non-square frames (16x24 -> 2x3 at ds 8) and the reference's dilation schedule.
FRAMES, HEIGHT, WIDTH = 10, 16, 24
SMALL = dict(model_channels=32, num_head_channels=32, num_heads=4, channel_mult=(1, 2, 3, 4), num_res_blocks=2,
             video_attention_resolutions=(2, 4, 8), cross_attention_resolutions=(2, 4, 8),
             cross_attention_windows=(1, 4, 8), dropout=0.0)
assert FRAMES not in (32, 64, 96, 128)   # the reference's GroupNorm would treat frames as channels if F == C


def our_config(audio_len):
    return MMDiffusionConfig.paper(video_size=(FRAMES, 3, HEIGHT, WIDTH), audio_size=(2, audio_len), **SMALL)


def ref_plan(cfg: MMDiffusionConfig) -> RefUNet:
    return RefUNet(cfg.video_size, cfg.audio_size, cfg.model_channels, cfg.num_res_blocks, cfg.channel_mult,
                   list(cfg.cross_attention_resolutions), list(cfg.cross_attention_windows), cfg.cross_attention_shift,
                   list(cfg.video_attention_resolutions), list(cfg.audio_attention_resolutions) or [-1],
                   cfg.num_heads, cfg.num_head_channels)


def random_state_dict(shapes, seed):
    "Random values for every weight, zero-initialised ones included; unit-scale activations through each layer."
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in shapes.items():
        r = torch.randn(shape, generator=g)
        if name.endswith('GroupNorm.weight'): sd[name] = 1 + 0.2 * r
        elif name.endswith('bias'): sd[name] = 0.2 * r
        else: sd[name] = r / math.sqrt(math.prod(shape[1:]))
    return sd


def shift_schedule(plan: RefUNet, seed):
    "A shift per shifted RS-MMA block, drawn as the reference does: random.randint(0, F - window)."
    rng = random.Random(seed)
    return {n: rng.randint(0, plan.frames - w) for n, w, shifted in plan.cross_blocks() if shifted}


# Audio lengths: multiples of 4**3 (three down/up-samplings), long enough that the dilated convolutions reach real
# samples at every level (ds 4 holds ~1000 samples for dilations 128..512). int(L/F) at ds 1/2/4/8 and the middle:
#   16000: 1600, 400, 100, 25 samples per frame, no remainder anywhere
#   16320: 1632, 408, 102, then 255/10 -> 25 + a remainder of 5 at ds 8 and in the middle (the paper's 1250/20 case)
#   16064: 1606.4, 401.6, 100.4, 25.1 -> a remainder at every level
CASES = [(16000, 0), (16320, 1), (16064, 2)]


# --------------------------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('audio_len,seed', CASES)
def test_forward_matches_reference_restatement(audio_len, seed):
    cfg = our_config(audio_len)
    plan = ref_plan(cfg)
    model = CoupledUNet(cfg).eval()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == plan.shapes                               # same names, same shapes (dict equality: key sets too)
    assert audio_dilations(model) == plan.dilations()

    sd = random_state_dict(plan.shapes, seed)
    load_joint_weights(model, sd, strict=True)
    for k, v in model.state_dict().items(): assert torch.equal(v, sd[k]), k

    shifts = shift_schedule(plan, seed)
    windows = {n: w for n, w, _ in plan.cross_blocks()}
    assert len(set(shifts.values()) - {0}) >= 2               # non-zero shifts, at least two different values
    assert any(s == FRAMES - windows[n] for n, s in shifts.items() if windows[n] > 1)   # a maximal shift somewhere
    assert 'middle_blocks.1' in windows and windows['middle_blocks.1'] == FRAMES and 'middle_blocks.1' not in shifts
    modules = dict(model.named_modules())
    xattn_names = [n for n, m in modules.items() if isinstance(m, CrossAttentionBlock)]
    assert xattn_names == [n for n, _, _ in plan.cross_blocks()]
    for n, s in shifts.items(): modules[n].shift = s          # our draw, fixed to the reference's values

    g = torch.Generator().manual_seed(100 + seed)
    video = torch.randn(2, FRAMES, 3, HEIGHT, WIDTH, generator=g)
    audio = torch.randn(2, 2, audio_len, generator=g)
    t = torch.tensor([7, 861])
    with torch.no_grad():
        ov, oa = model(video, audio, t)
        rv, ra = plan.forward(sd, video, audio, t, shifts)
    assert ov.shape == rv.shape == video.shape and oa.shape == ra.shape == audio.shape
    for ours_out, ref_out in ((ov, rv), (oa, ra)):
        scale = ref_out.abs().max().item()
        assert 0.1 < scale < 1e3 and ref_out.std() > 0.05     # a non-degenerate output
        err = (ours_out - ref_out).abs().max().item()
        assert err <= 1e-5 * scale, (err, scale)              # measured: <= 1.6e-6 (video), <= 8.5e-7 (audio) of it
    assert plan.used == set(plan.shapes)                     # the re-statement read every weight


def test_reference_shift_range_and_middle_block():
    "Our draw covers the reference's randint(0, F - window) range exactly; the middle block never shifts."
    model = CoupledUNet(our_config(16000))
    modules = dict(model.named_modules())
    plan = ref_plan(model.cfg)
    for n, window, shifted in plan.cross_blocks():
        m = modules[n]
        assert (m.local_window, m.window_shift) == (window, shifted)
        if n not in ('input_blocks.4.1', 'input_blocks.7.1', 'input_blocks.10.1', 'middle_blocks.1'): continue
        with torch.random.fork_rng():
            torch.manual_seed(0)
            seen = {int(m.draw_shift(FRAMES, torch.device('cpu'))) for _ in range(400)}
        assert seen == (set(range(FRAMES - window + 1)) if shifted else {0})


def test_paper_preset_parameter_enumeration():
    "The re-statement's constructor, run with the paper's arguments, enumerates our paper preset exactly."
    cfg = MMDiffusionConfig.paper()
    plan = RefUNet((20, 3, 64, 64), (2, 80000), 128, 2, (1, 2, 3, 4), [2, 4, 8], [1, 4, 8], True, [2, 4, 8], [-1],
                   num_heads=4, num_head_channels=64)
    assert plan.shapes == ref_plan(cfg).shapes
    with torch.device('meta'): model = CoupledUNet(cfg)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == plan.shapes
    assert sum(math.prod(s) for s in plan.shapes.values()) == 133_676_293 == paper_parameter_count()
    # spec §1.2, measured with hooks on the reference class: down | middle | up (with the up ResBlocks)
    assert plan.dilations() == audio_dilations(model) == \
        [2, 4, 8, 16, 32, 64, 128, 256, 512, 1, 2, 4, 4, 2, 1, 512, 256, 256, 128, 64, 32, 32, 16, 8, 4, 4, 2, 1]
