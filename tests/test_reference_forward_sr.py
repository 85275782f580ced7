"""The super-resolution U-Net and its DDIM sampler against an independent re-statement of the reference.

The reference is guided-diffusion's `SuperResModel` (a `UNetModel` that bilinearly upsamples `low_res` to the size of
`x` and concatenates it as 3 extra input channels), as MM-Diffusion / SAVGBench copy it (`mm_diffusion/image_unet.py`
`ImageSuperResModel`, `script_util.image_sr_create_model`) and sample it (`SpacedDiffusion` with `ddim25` respacing on
a T=1100 linear schedule, `ddim_sample_loop`, eta 0, `clip_denoised=True`, one noise image per clip repeated over its
frames: `multimodal_sample_sr.py`).

Everything below the "re-statement" line is written in the reference's style from its description (openai/
guided-diffusion `unet.py`, `nn.py`, `gaussian_diffusion.py`, `respace.py`): its ResBlock with the up/down resampling
between the activation and the convolution and the scale-shift norm, its `Upsample`/`Downsample`, its einsum
attention in the legacy (heads first, then q/k/v) order, and a numpy float64 `SpacedDiffusion` whose constants are
gathered and cast to float32 at use. It calls nothing in `savgbench`; the tests feed the same state_dict to both.

The SAVGBench configuration (run_baseline.sh SRMODEL_FLAGS): 192 channels, `channel_mult` (1,1,2,2,4,4) from
large_size 256, 2 res blocks, `--sr_attention_resolutions 8,16,32` used directly as downsampling rates, `num_heads=4`
with `sr_num_head_channels=-1` (the default; so 4 heads whatever the width), legacy attention order
(`use_new_attention_order` is not passed), `resblock_updown` and `use_scale_shift_norm` on, learned sigma (6 output
channels), `rescale_timesteps=False`. The CPU config below keeps that structure at 32x32 (4 levels, attention at the
three deepest, head widths 8 and 16).
"""
import math
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from savgbench.baselines.superres import SRConfig, SuperResUNet, load_sr_weights, super_resolve
from savgbench.baselines.diffusion import ddim_timesteps, ddim_step, linear_betas

torch.set_num_threads(1)

# the paper's structure at CPU size: 4 levels (1,1,2,2) x 2 res blocks, attention at ds 2/4/8 (16^2, 8^2, 4^2)
CPU = dict(large_size=32, small_size=8, model_channels=32, channel_mult=(1, 1, 2, 2), num_res_blocks=2,
           attention_ds=(2, 4, 8), num_heads=4, learn_sigma=True, diffusion_steps=1100)


# ==================================================================================================================
# re-statement of the reference (plain torch; parameter names as in guided-diffusion)
# ==================================================================================================================

class RGroupNorm32(nn.GroupNorm):
    "nn.py GroupNorm32: statistics in float32, result cast back."
    def forward(self, x): return super().forward(x.float()).type(x.dtype)

def r_norm(c): return RGroupNorm32(32, c)          # nn.py normalization(): always 32 groups

def r_zero(m):
    for p in m.parameters(): p.detach().zero_()
    return m

def r_timestep_embedding(ts, dim, max_period=10000):
    "nn.py: cos half then sin half, frequencies exp(-ln(max_period) * i / half) in float32."
    half = dim // 2
    fr = torch.exp(-math.log(max_period) * torch.arange(0, half, dtype=torch.float32) / half)
    a = ts[:, None].float() * fr[None]
    out = torch.cat([torch.cos(a), torch.sin(a)], dim=-1)
    if dim % 2: out = torch.cat([out, torch.zeros_like(out[:, :1])], dim=-1)
    return out

class RTimestepBlock(nn.Module):
    "Marker: forward(x, emb)."

class RSeq(nn.Sequential):
    "TimestepEmbedSequential: the time embedding goes to the children that take it."
    def forward(self, x, emb):
        for layer in self: x = layer(x, emb) if isinstance(layer, RTimestepBlock) else layer(x)
        return x

class RUpsample(nn.Module):
    "Upsample(use_conv=False, dims=2): nearest x2."
    def __init__(self, channels):
        super().__init__(); self.channels = channels
    def forward(self, x):
        assert x.shape[1] == self.channels
        return F.interpolate(x, scale_factor=2, mode="nearest")

class RDownsample(nn.Module):
    "Downsample(use_conv=False, dims=2): 2x2 average pooling, stride 2."
    def __init__(self, channels):
        super().__init__(); self.channels = channels; self.op = nn.AvgPool2d(kernel_size=2, stride=2)
    def forward(self, x):
        assert x.shape[1] == self.channels
        return self.op(x)

class RResBlock(RTimestepBlock):
    def __init__(self, channels, emb_channels, out_channels=None, use_scale_shift_norm=True, up=False, down=False):
        super().__init__()
        self.out_channels = out = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.in_layers = nn.Sequential(r_norm(channels), nn.SiLU(), nn.Conv2d(channels, out, 3, padding=1))
        self.updown = up or down
        if up: self.h_upd, self.x_upd = RUpsample(channels), RUpsample(channels)
        elif down: self.h_upd, self.x_upd = RDownsample(channels), RDownsample(channels)
        else: self.h_upd = self.x_upd = nn.Identity()
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out if use_scale_shift_norm else out))
        self.out_layers = nn.Sequential(r_norm(out), nn.SiLU(), nn.Dropout(p=0.0),
                                        r_zero(nn.Conv2d(out, out, 3, padding=1)))
        self.skip_connection = nn.Identity() if out == channels else nn.Conv2d(channels, out, 1)

    def forward(self, x, emb):
        if self.updown:                           # norm, SiLU | resample h and x alike | conv
            h = self.in_layers[:-1](x)
            h = self.h_upd(h)
            x = self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb).type(h.dtype)
        while e.dim() < h.dim(): e = e[..., None]
        if self.use_scale_shift_norm:
            scale, shift = torch.chunk(e, 2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h

class RQKVAttentionLegacy(nn.Module):
    "qkv (N, H*3*C, T): split heads first, then q, k, v; q and k each scaled by C**-1/4."
    def __init__(self, n_heads):
        super().__init__(); self.n_heads = n_heads
    def forward(self, qkv):
        bs, width, length = qkv.shape
        ch = width // (3 * self.n_heads)
        q, k, v = qkv.reshape(bs * self.n_heads, 3 * ch, length).split(ch, dim=1)
        s = 1 / math.sqrt(math.sqrt(ch))
        w = torch.einsum("bct,bcs->bts", q * s, k * s)
        w = torch.softmax(w.float(), dim=-1).type(w.dtype)
        return torch.einsum("bts,bcs->bct", w, v).reshape(bs, -1, length)

class RAttentionBlock(nn.Module):
    def __init__(self, channels, num_heads=1, num_head_channels=-1):
        super().__init__()
        self.num_heads = num_heads if num_head_channels == -1 else channels // num_head_channels
        self.norm = r_norm(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.attention = RQKVAttentionLegacy(self.num_heads)        # the SR model's order (not use_new_attention_order)
        self.proj_out = r_zero(nn.Conv1d(channels, channels, 1))
    def forward(self, x):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        h = self.proj_out(self.attention(self.qkv(self.norm(x))))
        return (x + h).reshape(b, c, *spatial)

class RSuperResModel(nn.Module):
    "UNetModel(in_channels=2*3) + the SuperResModel forward (bilinear low_res upsampling, concat after x)."
    def __init__(self, image_size, in_channels, model_channels, out_channels, num_res_blocks, attention_resolutions,
                 channel_mult, num_classes=None, num_heads=1, num_head_channels=-1, num_heads_upsample=-1,
                 use_scale_shift_norm=False, resblock_updown=False):
        super().__init__()
        in_channels = 2 * in_channels                      # SuperResModel: x and the upsampled low_res
        if num_heads_upsample == -1: num_heads_upsample = num_heads
        self.model_channels, self.num_classes = model_channels, num_classes
        ted = 4 * model_channels
        self.time_embed = nn.Sequential(nn.Linear(model_channels, ted), nn.SiLU(), nn.Linear(ted, ted))
        if num_classes is not None: self.label_emb = nn.Embedding(num_classes, ted)
        res = lambda cin, cout=None, **kw: RResBlock(cin, ted, cout, use_scale_shift_norm, **kw)
        att = lambda c, heads: RAttentionBlock(c, heads, num_head_channels)

        ch = input_ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([RSeq(nn.Conv2d(in_channels, ch, 3, padding=1))])
        skip_chans, ds = [ch], 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [res(ch, int(mult * model_channels))]
                ch = int(mult * model_channels)
                if ds in attention_resolutions: layers.append(att(ch, num_heads))
                self.input_blocks.append(RSeq(*layers)); skip_chans.append(ch)
            if level != len(channel_mult) - 1:
                assert resblock_updown
                self.input_blocks.append(RSeq(res(ch, ch, down=True)))
                skip_chans.append(ch); ds *= 2
        self.middle_block = RSeq(res(ch), att(ch, num_heads), res(ch))
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skip_chans.pop(), int(model_channels * mult))]
                ch = int(model_channels * mult)
                if ds in attention_resolutions: layers.append(att(ch, num_heads_upsample))
                if level and i == num_res_blocks:
                    layers.append(res(ch, ch, up=True)); ds //= 2
                self.output_blocks.append(RSeq(*layers))
        self.out = nn.Sequential(r_norm(ch), nn.SiLU(), r_zero(nn.Conv2d(input_ch, out_channels, 3, padding=1)))

    def forward(self, x, timesteps, low_res=None, y=None):
        _, _, H, W = x.shape
        x = torch.cat([x, F.interpolate(low_res, (H, W), mode="bilinear")], dim=1)
        assert (y is not None) == (self.num_classes is not None)
        emb = self.time_embed(r_timestep_embedding(timesteps, self.model_channels))
        if self.num_classes is not None: emb = emb + self.label_emb(y)
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb); hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)

def reference_model(large_size, model_channels, channel_mult, num_res_blocks, attention_ds, num_heads, learn_sigma,
                    num_classes=None):
    "script_util.image_sr_create_model with the SAVGBench flags (num_head_channels -1, legacy order, up/down, FiLM)."
    return RSuperResModel(large_size, 3, model_channels, 6 if learn_sigma else 3, num_res_blocks, tuple(attention_ds),
                          channel_mult, num_classes=num_classes, num_heads=num_heads, num_head_channels=-1,
                          use_scale_shift_norm=True, resblock_updown=True)


# --- diffusion: the linear schedule, ddimN respacing, the wrapped model's timestep map, one DDIM step ---------------

def r_space_timesteps(T, section):
    "respace.space_timesteps for 'ddimN': the first integer stride whose range(0, T, stride) has N items."
    n = int(section[len("ddim"):])
    for i in range(1, T):
        if len(range(0, T, i)) == n: return set(range(0, T, i))
    raise ValueError(section)

def r_extract(arr, t, shape):
    "_extract_into_tensor: float64 table -> gather -> float32, broadcast over the batch."
    v = torch.from_numpy(arr)[t].float()
    while v.dim() < len(shape): v = v[..., None]
    return v.expand(shape)

class RSpacedDDIM:
    "SpacedDiffusion(use_timesteps=space_timesteps(T, 'ddimN'), linear betas, EPSILON, LEARNED_RANGE)."
    def __init__(self, T, respacing):
        scale = 1000 / T
        betas = np.linspace(scale * 0.0001, scale * 0.02, T, dtype=np.float64)
        base_ac = np.cumprod(1.0 - betas, axis=0)
        use = r_space_timesteps(T, respacing)
        self.timestep_map, new_betas, last = [], [], 1.0
        for i, a in enumerate(base_ac):
            if i in use:
                new_betas.append(1 - a / last); last = a; self.timestep_map.append(i)
        b = np.array(new_betas, dtype=np.float64)
        self.num_timesteps = len(b)
        self.betas = b
        self.alphas_cumprod = np.cumprod(1.0 - b, axis=0)
        self.alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1)
        post_var = b * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_log_variance_clipped = np.log(np.append(post_var[1], post_var[1:]))

    def wrapped(self, model, x, ts, **kw):
        "_WrappedModel: spaced index -> original timestep (rescale_timesteps=False: passed as is)."
        return model(x, torch.tensor(self.timestep_map, dtype=ts.dtype)[ts], **kw)

    def ddim_sample(self, model, x, t, model_kwargs, eta=0.0):
        "p_mean_variance (learned-range split, x0 clipped) + ddim_sample, eta 0 (no noise term)."
        B, C = x.shape[:2]
        out = self.wrapped(model, x, t, **model_kwargs)
        assert out.shape == (B, 2 * C, *x.shape[2:])
        eps_out, var_values = torch.split(out, C, dim=1)
        min_log = r_extract(self.posterior_log_variance_clipped, t, x.shape)
        max_log = r_extract(np.log(self.betas), t, x.shape)
        frac = (var_values + 1) / 2
        log_variance = frac * max_log + (1 - frac) * min_log       # computed as in the reference; DDIM ignores it
        pred_x0 = (r_extract(self.sqrt_recip_alphas_cumprod, t, x.shape) * x
                   - r_extract(self.sqrt_recipm1_alphas_cumprod, t, x.shape) * eps_out).clamp(-1, 1)
        eps = ((r_extract(self.sqrt_recip_alphas_cumprod, t, x.shape) * x - pred_x0)
               / r_extract(self.sqrt_recipm1_alphas_cumprod, t, x.shape))
        ab = r_extract(self.alphas_cumprod, t, x.shape)
        ab_prev = r_extract(self.alphas_cumprod_prev, t, x.shape)
        sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab)) * torch.sqrt(1 - ab / ab_prev)
        sample = pred_x0 * torch.sqrt(ab_prev) + torch.sqrt(1 - ab_prev - sigma ** 2) * eps
        return {"sample": sample, "pred_xstart": pred_x0, "log_variance": log_variance}

    @torch.no_grad()
    def ddim_sample_loop(self, model, noise, model_kwargs):
        img = noise
        for i in list(range(self.num_timesteps))[::-1]:
            img = self.ddim_sample(model, img, torch.tensor([i] * noise.shape[0]), model_kwargs)["sample"]
        return img


# ==================================================================================================================
# the tests
# ==================================================================================================================

def _random_state_dict(model, seed):
    """Every tensor random (zero-initialised output convs and attention proj_out included), scaled so activations stay
    O(1) through the depth: weights ~ N(0, 1/fan_in), biases ~ N(0, 0.2^2), norm gains ~ 1 + N(0, 0.2^2)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in model.state_dict().items():
        r = torch.randn(v.shape, generator=g, dtype=torch.float64)
        if v.dim() >= 2: sd[k] = (r / math.sqrt(v[0].numel())).float()
        elif k.endswith("weight"): sd[k] = (1 + 0.2 * r).float()   # GroupNorm gains
        else: sd[k] = (0.2 * r).float()
    return sd

def _models(**over):
    cfg = SRConfig(**{**CPU, **over})
    ours = SuperResUNet(cfg).eval()
    ref = reference_model(cfg.large_size, cfg.model_channels, cfg.channel_mult, cfg.num_res_blocks, cfg.attention_ds,
                          cfg.num_heads, cfg.learn_sigma, cfg.num_classes).eval()
    return cfg, ours, ref

def _pair(seed=0, **over):
    cfg, ours, ref = _models(**over)
    sd = _random_state_dict(ref, seed)
    ref.load_state_dict(sd, strict=True)
    load_sr_weights(ours, sd, strict=True)
    return cfg, ours, ref, sd

def _inputs(cfg, B, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 3, cfg.large_size, cfg.large_size, generator=g)
    low = torch.rand(B, 3, cfg.small_size, cfg.small_size, generator=g) * 2 - 1
    return x, low


def test_reference_restatement_has_our_keys_and_shapes():
    _, ours, ref = _models()
    a = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert set(a) == set(b), (sorted(set(a) - set(b))[:5], sorted(set(b) - set(a))[:5])
    assert a == b, [(k, a[k], b[k]) for k in a if a[k] != b[k]][:5]
    assert b["out.2.weight"] == (6, 32, 3, 3) and b["input_blocks.0.0.weight"] == (32, 6, 3, 3)
    assert sum(isinstance(m, RAttentionBlock) for m in ref.modules()) == 6 + 1 + 9   # down, middle, up
    _, ours, ref, sd = _pair()
    for k, v in ours.state_dict().items(): assert torch.equal(v, sd[k]), k        # the strict load took everything
    for k, v in ref.state_dict().items(): assert torch.equal(v, sd[k]), k


@pytest.mark.parametrize("num_classes", [None, 7])
def test_forward_matches_reference(num_classes):
    "Whole network, all 6 output channels (eps and the variance value), two timesteps in one batch."
    cfg, ours, ref, _ = _pair(num_classes=num_classes)
    x, low = _inputs(cfg, 3)
    t = torch.tensor([0, 517, 1056])
    y = None if num_classes is None else torch.tensor([0, 3, 6])
    with torch.no_grad():
        a = ours(x, t, low, y=y)
        b = ref(x, t, low_res=low, y=y)
    assert a.shape == b.shape == (3, 6, cfg.large_size, cfg.large_size)
    assert b.abs().mean() > 0.1 and b[:, 3:].std() > 0.1            # non-trivial output, sigma channels included
    assert (a - b).abs().max() < 1e-5, float((a - b).abs().max())


def test_respaced_schedule_is_the_reference_one():
    "ddim25 on T=1100: stride 44, t = 1056 ... 0; our sampler walks the same steps."
    d = RSpacedDDIM(1100, "ddim25")
    assert d.timestep_map == list(range(0, 1100, 44)) == ddim_timesteps(1100, 25)
    assert d.num_timesteps == 25 and d.timestep_map[-1] == 1056


@pytest.mark.parametrize("i", [24, 12, 3, 0])
def test_one_ddim_step_matches_reference(i):
    """One eta=0 step from spaced index i (original t = 44 i) with the learned-sigma model: our `ddim_step` on our
    schedule and network against the reference's wrapped-model `ddim_sample`, from the same x_t."""
    cfg, ours, ref, _ = _pair()
    d = RSpacedDDIM(cfg.diffusion_steps, "ddim25")
    x, low = _inputs(cfg, 2, seed=2)
    with torch.no_grad():
        want = d.ddim_sample(ref, x, torch.tensor([i, i]), {"low_res": low})["sample"]
        ts = ddim_timesteps(cfg.diffusion_steps, 25)
        ac = np.cumprod(1 - linear_betas(cfg.diffusion_steps))
        t, a_prev = ts[i], (float(ac[ts[i - 1]]) if i else 1.0)
        eps = ours(x, torch.full((2,), t), low)[:, :3]
        got = ddim_step(x, eps, float(ac[t]), a_prev)
        blind = ddim_step(x, torch.zeros_like(eps), float(ac[t]), a_prev)
    assert (got - want).abs().max() < 5e-6, float((got - want).abs().max())
    assert (blind - got).abs().max() > 5e-3                          # the network's eps matters at this step


def test_super_resolve_matches_reference_ddim25_loop():
    """The whole SR sampling of 2 clips x 3 frames: 25 DDIM steps on T=1100, one noise image per clip repeated over
    its frames (multimodal_sample_sr.py), low_res = the (b f) frames, eps = the first 3 of 6 channels."""
    cfg, ours, ref, _ = _pair()
    B, Fr = 2, 3
    g = torch.Generator().manual_seed(5)
    video = torch.rand(B, Fr, 3, cfg.small_size, cfg.small_size, generator=g) * 2 - 1
    got = super_resolve(ours, video, steps=25, generator=torch.Generator().manual_seed(9))
    noise = torch.randn(B, 3, cfg.large_size, cfg.large_size, generator=torch.Generator().manual_seed(9))
    noise = noise[:, None].repeat(1, Fr, 1, 1, 1).reshape(B * Fr, 3, cfg.large_size, cfg.large_size)
    low = video.reshape(B * Fr, 3, cfg.small_size, cfg.small_size)
    want = RSpacedDDIM(cfg.diffusion_steps, "ddim25").ddim_sample_loop(ref, noise, {"low_res": low})
    want = want.reshape(B, Fr, 3, cfg.large_size, cfg.large_size)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 1e-4, float((got - want).abs().max())
    assert (want[:, 0] - want[:, 1]).abs().max() > 0.05               # frames differ through low_res only
