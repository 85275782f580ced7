"Stereo SELD: checkpoint compatibility, bad audio, batching invariance, feature differential checks, metrics, CLIs."
import math, pickle
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch, soundfile as sf
from scipy.optimize import linear_sum_assignment
from hypothesis import given, settings, strategies as st, HealthCheck
from savgbench.core import AudioFormatError, DatasetError, WeightsError
from savgbench.seld.features import clip_features, spectral_features, window_starts, check_stereo, read_seld_audio
from savgbench.seld.model import SELDNet, SELDConfig
from savgbench.seld.infer import predict_seld, write_seld_csv, load_seld_model, seld_cli, seld_files
from savgbench.seld.evaluate import evaluate_seld, read_seld_rows, eval_seld_cli
from savgbench.seld.train import synthetic_scene

# --- the official checkpoint's model_state_dict, written out from its description (not from SELDNet) ---------------
def official_entries():
    e = {"stitch1": (64, 2, 2), "stitch2": (128, 2, 2), "stitch3": (256, 2, 2)}
    w = {0: None, 1: 64, 2: 128, 3: 256, 4: 512}
    for branch, cin0 in (("sed", 2), ("doa", 3)):
        for i in (1, 2, 3, 4):
            p, c = f"{branch}_conv_block{i}.0.double_conv", w[i]
            cin = cin0 if i == 1 else w[i - 1]
            e[f"{p}.0.weight"] = (c, cin, 3, 3); e[f"{p}.3.weight"] = (c, c, 3, 3)
            for bn in (1, 4):
                for n in ("weight", "bias", "running_mean", "running_var"): e[f"{p}.{bn}.{n}"] = (c,)
                e[f"{p}.{bn}.num_batches_tracked"] = ()
        for l in (0, 1):
            p = f"{branch}_trans_track1.layers.{l}"
            e.update({f"{p}.self_attn.in_proj_weight": (1536, 512), f"{p}.self_attn.in_proj_bias": (1536,),
                      f"{p}.self_attn.out_proj.weight": (512, 512), f"{p}.self_attn.out_proj.bias": (512,),
                      f"{p}.linear1.weight": (1024, 512), f"{p}.linear1.bias": (1024,),
                      f"{p}.linear2.weight": (512, 1024), f"{p}.linear2.bias": (512,),
                      f"{p}.norm1.weight": (512,), f"{p}.norm1.bias": (512,), f"{p}.norm2.weight": (512,), f"{p}.norm2.bias": (512,)})
    e.update({"fc_sed_track1.weight": (2, 512), "fc_sed_track1.bias": (2,), "fc_doa_track1.weight": (2, 512), "fc_doa_track1.bias": (2,)})
    return e

def official_state_dict(seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, s in official_entries().items():
        if k.endswith("num_batches_tracked"): sd[k] = torch.tensor(40000, dtype=torch.int64)
        elif k.endswith("running_var") or k.endswith("norm1.weight") or k.endswith("norm2.weight"): sd[k] = torch.ones(s)
        else: sd[k] = torch.randn(s, generator=g) * 0.02
    return sd

@pytest.mark.parametrize("extras", ["tensors", "objects"])
def test_official_state_dict_loads_strictly_and_runs(tmp_path, extras):
    entries = official_entries()
    assert len(entries) == 151
    assert sum(int(np.prod(s)) for k, s in entries.items() if "running" not in k and "num_batches" not in k) == 17_788_996
    sd = official_state_dict()
    path = tmp_path / "params_swa_20240912162834_0040000.pth"
    ck = {"model_state_dict": sd, "optimizer_state_dict": {"state": {}, "param_groups": []},
          "scheduler_state_dict": {"last_epoch": 40}, "rng_state": torch.get_rng_state()}
    if extras == "objects":   # states the safe loader refuses (numpy RNG, numpy scalars, an argparse namespace)
        import argparse
        ck.update(rng_state=np.random.get_state(), scheduler_state_dict={"last_epoch": 40, "lr_min": np.float64(5e-4)},
                  args=argparse.Namespace(lr=1e-3))
    torch.save(ck, path)
    if extras == "objects":
        with pytest.raises(pickle.UnpicklingError): torch.load(path, weights_only=True)
    net = SELDNet.from_checkpoint(path)
    assert sum(p.numel() for p in net.parameters()) == 17_788_996
    for k, v in sd.items(): assert torch.equal(net.state_dict()[k], v), k
    with torch.no_grad(): sed, doa = net(torch.rand(2, 3, 257, 128))
    assert sed.shape == doa.shape == (2, 1, 2, 128) and torch.isfinite(sed).all() and torch.isfinite(doa).all()

# --- the forward pass against an independent functional version of spec §2.6 -------------------------------------------
def spec_forward(sd, x, cfg):
    """SED logits and x outputs (N, 1, C, 128) of feature windows `x` (N, 3, 257, 128), written from spec §2.6 with
    plain functional operations on the state_dict `sd` (eval mode: no dropout, batch norm with running statistics)."""
    import torch.nn.functional as F
    sd = {k: v.double() for k, v in sd.items()}
    def bn(h, p): return ((h - sd[p + ".running_mean"][:, None, None]) / torch.sqrt(sd[p + ".running_var"][:, None, None] + 1e-5)
                          * sd[p + ".weight"][:, None, None] + sd[p + ".bias"][:, None, None])
    def block(h, branch, i, pool):
        p = f"{branch}_conv_block{i}.0.double_conv"
        h = F.relu(bn(F.conv2d(h, sd[p + ".0.weight"], padding=1), p + ".1"))
        h = F.relu(bn(F.conv2d(h, sd[p + ".3.weight"], padding=1), p + ".4"))
        return F.avg_pool2d(h, pool)
    x = x.double().transpose(2, 3)                                   # (N, C, T, F)
    sed, doa = x[:, :2], x
    for i, pool in zip((1, 2, 3, 4), ((2, 2), (2, 2), (1, 2), (1, 2))):
        sed, doa = block(sed, "sed", i, pool), block(doa, "doa", i, pool)
        if i < 4:
            S = sd[f"stitch{i}"][None, :, :, :, None, None]
            sed = S[:, :, 0, 0] * sed + S[:, :, 0, 1] * doa
            doa = S[:, :, 1, 0] * sed + S[:, :, 1, 1] * doa        # with the updated sed
    def layer_norm(h, p): return F.layer_norm(h, h.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], 1e-5)
    outs = []
    for branch, h in (("sed", sed), ("doa", doa)):
        h = h.mean(dim=3).transpose(1, 2)                            # (N, T=32, d_model)
        N, T, D = h.shape
        for l in range(cfg.n_layers):
            p = f"{branch}_trans_track1.layers.{l}"
            q, k, v = (h @ sd[p + ".self_attn.in_proj_weight"].T + sd[p + ".self_attn.in_proj_bias"]).split(D, -1)
            heads = lambda z: z.reshape(N, T, cfg.n_heads, D // cfg.n_heads).transpose(1, 2)
            att = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(D // cfg.n_heads), -1) @ heads(v)
            att = att.transpose(1, 2).reshape(N, T, D) @ sd[p + ".self_attn.out_proj.weight"].T + sd[p + ".self_attn.out_proj.bias"]
            h = layer_norm(h + att, p + ".norm1")                    # post-norm
            ff = F.relu(h @ sd[p + ".linear1.weight"].T + sd[p + ".linear1.bias"]) @ sd[p + ".linear2.weight"].T + sd[p + ".linear2.bias"]
            h = layer_norm(h + ff, p + ".norm2")
        y = h @ sd[f"fc_{branch}_track1.weight"].T + sd[f"fc_{branch}_track1.bias"]     # (N, 32, C)
        outs.append(y.repeat_interleave(4, dim=1).transpose(1, 2)[:, None])            # (N, 1, C, 128)
    return outs

def test_forward_matches_the_spec_written_out():
    "Two transformer layers, random batch-norm statistics and cross-stitch weights: every output within float32 rounding."
    from savgbench.seld.model import SELDConfig
    cfg = SELDConfig(channels=(4, 8, 8), d_model=16, d_ff=32, n_heads=2, n_layers=2)
    torch.manual_seed(0)
    net = SELDNet(cfg)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_mean"): t.normal_(0, 0.1)
            elif name.endswith("running_var"): t.uniform_(0.5, 2.0)
            elif name.endswith("stitch1") or name.endswith("stitch2") or name.endswith("stitch3"): t.uniform_(-1, 1)
    net.eval()
    x = torch.rand(3, 3, 257, 128) * torch.tensor([1.0, 0.5, 6.0])[:, None, None]
    with torch.no_grad(): sed, doa = net(x)
    ref_sed, ref_doa = spec_forward(net.state_dict(), x, cfg)
    for got, want in ((sed, ref_sed), (doa, ref_doa)):
        assert got.shape == want.shape == (3, 1, 2, 128)
        assert (got.double() - want).abs().max() <= 1e-5, (got.double() - want).abs().max()       # (float32: ~3e-7)
    assert (ref_sed[..., 0] - ref_sed[..., 4]).abs().max() > 1e-3          # (the outputs vary over time: a real check)

def test_reference_preset_layers_are_net_seld_py():
    """What the checkpoint does not pin, from net_seld.py / net_small.json (spec §2.6): conv, pool, batch-norm and
    transformer settings of the reference-size network."""
    import torch.nn.functional as F
    net = SELDNet("reference")
    for branch in ("sed", "doa"):
        for i, pool in zip((1, 2, 3, 4), ((2, 2), (2, 2), (1, 2), (1, 2))):
            blk = getattr(net, f"{branch}_conv_block{i}")
            dc, ap = blk[0].double_conv, blk[1]
            assert [type(m).__name__ for m in dc] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU"]
            for cv in (dc[0], dc[3]):
                assert (cv.kernel_size, cv.stride, cv.padding, cv.dilation, cv.groups, cv.bias) == ((3, 3), (1, 1), (1, 1), (1, 1), 1, None)
            assert all((b.eps, b.momentum) == (1e-5, 0.1) for b in (dc[1], dc[4]))
            assert isinstance(ap, torch.nn.AvgPool2d)
            assert (ap.kernel_size, ap.stride, ap.padding, ap.ceil_mode, ap.count_include_pad) == (pool, pool, 0, False, True)
        enc = getattr(net, f"{branch}_trans_track1")
        assert enc.norm is None and len(enc.layers) == 2
        for l in enc.layers:
            assert (l.self_attn.num_heads, l.self_attn.head_dim, l.self_attn.batch_first, l.norm_first) == (8, 64, False, False)
            assert l.activation is F.relu and (l.norm1.eps, l.norm2.eps) == (1e-5, 1e-5)
            assert (l.self_attn.dropout, l.dropout.p, l.dropout1.p, l.dropout2.p) == (0.2, 0.2, 0.2, 0.2)
        fc = getattr(net, f"fc_{branch}_track1")
        assert fc.bias is not None and (fc.in_features, fc.out_features) == (512, 2)
    assert net.config.interp_ratio == 4 and net.config.in_channels_sed == 2

@pytest.mark.parametrize("edit", ["missing", "extra", "shape"])
def test_mismatched_checkpoint_is_refused(tmp_path, edit):
    sd = official_state_dict()
    if edit == "missing": sd.pop("doa_conv_block3.0.double_conv.4.running_mean")
    if edit == "extra": sd["module.stitch1"] = sd["stitch1"]
    if edit == "shape": sd["fc_doa_track1.weight"] = torch.zeros(3, 512)
    torch.save({"model_state_dict": sd}, tmp_path / "c.pth")
    with pytest.raises(WeightsError, match="does not match") as e: SELDNet.from_checkpoint(tmp_path / "c.pth")
    said = {"missing": "missing ['doa_conv_block3.0.double_conv.4.running_mean'], unexpected [], wrong shapes []",
            "extra": "missing [], unexpected ['module.stitch1'], wrong shapes []",
            "shape": "missing [], unexpected [], wrong shapes ['fc_doa_track1.weight']"}[edit]
    assert said in str(e.value) and "c.pth" in str(e.value), str(e.value)      # the keys at fault, and the file

# --- bad audio -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("audio,sr,msg", [
    (np.zeros(80000, np.float32), 16000, "stereo"),
    (np.zeros((1, 80000), np.float32), 16000, "stereo"),
    (np.zeros((80000, 2), np.float32), 16000, "stereo"),
    (np.zeros((6, 80000), np.float32), 16000, "stereo"),
    (np.zeros((2, 80000, 1), np.float32), 16000, "stereo"),        # two rows, but not a 2-D array
    (np.zeros(2, np.float32), 16000, "stereo"),
    (np.zeros((2, 80000), np.float32), 44100, "sample rate"),
    (np.zeros((2, 80000), np.int16), 16000, "floating"),
    (np.zeros((2, 1000), np.float32), 16000, "too short"),
])
def test_bad_audio_raises(audio, sr, msg):
    with pytest.raises(AudioFormatError, match=msg): clip_features(audio, sr)
    with pytest.raises(AudioFormatError, match=msg): predict_seld([audio], SELDNet("tiny").eval(), sample_rate=sr)

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_audio_raises(bad):
    a = np.zeros((2, 80000), np.float32); a[1, 1234] = bad
    with pytest.raises(AudioFormatError, match="NaN or infinite"): clip_features(a)

def test_silence_gives_zero_features_and_no_rows_with_the_demo_model():
    z = np.zeros((2, 80000), np.float32)
    assert clip_features(z)[0].abs().max() == 0
    assert len(predict_seld([z], load_seld_model("demo"))[0]) == 0

def test_bad_wav_file_reports_the_path(tmp_path):
    sf.write(tmp_path / "m.wav", np.zeros(80000, np.int16), 16000, subtype="PCM_16")
    from savgbench.seld.features import read_seld_audio
    with pytest.raises(AudioFormatError, match="m.wav"): read_seld_audio(tmp_path / "m.wav")
    sf.write(tmp_path / "r.wav", np.zeros((44100 * 2, 2), np.int16), 44100, subtype="PCM_16")
    assert read_seld_audio(tmp_path / "r.wav").shape == (2, 32000)      # resampled like the reference (soxr)
    with pytest.raises(AudioFormatError, match="sample rate"): read_seld_audio(tmp_path / "r.wav", resample=False)

# --- batching invariance ----------------------------------------------------------------------------------------------
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
@given(lengths=st.lists(st.integers(20320, 90000), min_size=2, max_size=4), batch=st.sampled_from([1, 3, 8]), seed=st.integers(0, 99))
def test_batched_equals_one_by_one(lengths, batch, seed):
    torch.manual_seed(seed)
    net = SELDNet("tiny").eval()
    with torch.no_grad(): net.fc_sed_track1.bias.fill_(1.0)
    rng = np.random.default_rng(seed)
    clips = [(rng.standard_normal((2, n)) * 0.1).astype(np.float32) for n in lengths]
    together = predict_seld(clips, net, batch_size=batch)
    for c, t in zip(clips, together):
        pd.testing.assert_frame_equal(predict_seld([c], net, batch_size=batch)[0], t, check_exact=True)

# --- features against an independent float64 computation -------------------------------------------------------------
def numpy_stft(x):
    "numpy STFT (2, 257, T) of (2, n): periodic Hann, n_fft 512, hop 160, no centring."
    n = np.arange(512); win = 0.5 * (1 - np.cos(2 * np.pi * n / 512))
    T = 1 + (x.shape[1] - 512) // 160
    idx = np.arange(512)[None, :] + 160 * np.arange(T)[:, None]
    return np.fft.rfft(x[:, idx] * win, axis=-1).transpose(0, 2, 1)

def numpy_features(x):
    S = numpy_stft(x)
    d = np.angle(S[1]) - np.angle(S[0]); d = np.where(d < 0, d + 2 * np.pi, d)
    return np.abs(S[0]), np.abs(S[1]), d

@settings(max_examples=10, deadline=None)
@given(n=st.integers(512, 6000), seed=st.integers(0, 10**6), scale=st.sampled_from([1e-3, 0.1, 1.0]))
def test_features_match_numpy_float64(n, seed, scale):
    x = np.random.default_rng(seed).uniform(-1, 1, (2, n)) * scale
    f = spectral_features(x).numpy().astype(np.float64)
    L, R, d = numpy_features(x)
    top = max(L.max(), R.max())
    assert np.abs(f[0] - L).max() <= 1e-5 * top and np.abs(f[1] - R).max() <= 1e-5 * top
    assert np.abs(np.angle(np.exp(1j * (f[2] - d)))).max() <= 1e-5

def test_other_sample_rates_are_resampled_with_soxr_hq():
    "librosa 0.10's default res_type, soxr_hq: soxr's HQ quality (its VHQ differs by about 1e-2 here)."
    import soxr
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 66150))
    np.testing.assert_allclose(check_stereo(x, 44100, resample=True),
                               soxr.resample(x.T, 44100, 16000, quality="HQ").T, rtol=0, atol=1e-12)

def test_centred_framing_pads_with_zeros():
    "Training's STFT (center=True) pads 256 zeros at each end, librosa 0.10's default pad_mode 'constant'."
    y = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 5000))
    torch.testing.assert_close(spectral_features(y, center=True),
                               spectral_features(np.pad(y, ((0, 0), (256, 256))), center=False), rtol=0, atol=1e-6)

def test_clip_framing_prepends_352_zeros_and_trims():
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 80000 + 159))
    f, dur = clip_features(x)
    assert dur == 5.0 and f.shape == (3, 257, 500)
    L, R, d = numpy_features(np.concatenate([np.zeros((2, 352)), x[:, :80000]], 1))
    assert np.abs(f[0].numpy() - L).max() <= 1e-5 * L.max()

def test_predict_seld_follows_the_reference_steps_written_out():
    """A 5 s clip (and 77 samples that are trimmed) through a tiny random net, against spec §2.2-2.5 written out: numpy
    features of the clip with 352 zeros in front, circular padding (last 4 frames in front, first 128 behind), windows
    at frames 0, 120, 240, 359 (the float quirk) and 480 whose rows start at label frames 0, 12, 24, 36, 48, the net's
    frames 4..123, per label frame p = mean sigmoid(SED) and x = 256 x the sigmoid-weighted mean of the x output, a row
    for class 0 then 1 where p > 0.2, frames < 50."""
    torch.manual_seed(1)
    net = SELDNet("tiny").eval()
    with torch.no_grad(): net.fc_sed_track1.bias.copy_(torch.tensor([-0.5, -1.6]))    # rows and gaps in both classes
    level = np.repeat([0.5, 1e-4, 0.01, 0.3, 1e-4, 0.05, 1.0, 0.002, 0.2, 1e-4, 0.6], 8000)[:80077]   # loud and soft noise
    clip = (np.random.default_rng(4).standard_normal((2, 80077)) * level).astype(np.float32)
    got = predict_seld([clip], net, batch_size=3)[0]
    spec = np.stack(numpy_features(np.concatenate([np.zeros((2, 352)), clip[:, :80000].astype(np.float64)], 1)))
    assert spec.shape == (3, 257, 500)
    pad = np.concatenate([spec[..., -4:], spec, spec[..., :128]], -1)
    wins = torch.tensor(np.stack([pad[..., s:s + 128] for s in (0, 120, 240, 359, 480)]), dtype=torch.float32)
    with torch.no_grad(): sed, doa = (o[:, 0].double().numpy() for o in net(wins))
    want = []
    for w, first in enumerate((0, 12, 24, 36, 48)):
        for j in range(12):
            for c in (0, 1):
                s = 1 / (1 + np.exp(-sed[w, c, 4 + 10 * j:14 + 10 * j]))
                if s.mean() > 0.2 and first + j < 50: want.append((first + j, c, 256 * (s * doa[w, c, 4 + 10 * j:14 + 10 * j]).sum() / s.sum()))
    want = pd.DataFrame(want, columns=["frame", "cls", "x"])
    assert 30 <= len(want) <= 70 and set(want.cls) == {0, 1}            # (both classes, not every frame)
    assert got.frame.tolist() == want.frame.tolist() and got.cls.tolist() == want.cls.tolist()
    np.testing.assert_allclose(got.x, want.x, rtol=0, atol=1e-6)

@pytest.mark.parametrize("duration,frames,labels", [
    (5.0, [0, 120, 240, 359, 480], [0, 12, 24, 36, 48]),
    (2.4, [0, 120, 240], [0, 12, 24]),
    (1.27, [0, 120], [0, 12]),
    # 13.2 % 1.2 = 1.1999999999999997 is within 1e-10 of 1.2: arange(0, 13.2 + 1.2, 1.2), 12 windows, with the
    # reference's int() of i·1.2·100 and i·1.2·10 (7.199999999999999 s -> 719; 10.799999999999999 s -> 107)
    (13.2, [0, 120, 240, 359, 480, 600, 719, 840, 960, 1080, 1200, 1320],
     [0, 12, 24, 36, 48, 60, 72, 84, 96, 107, 120, 132]),
    # 2.3995 % 1.2 = 1.1995: not within 1e-10 of 1.2, so arange(0, 2.3995, 1.2) (2 windows)
    (2.3995, [0, 120], [0, 12]),
])
def test_window_starts(duration, frames, labels):
    f, l = window_starts(duration)
    assert f.tolist() == frames and l.tolist() == labels

# --- files, metrics, CLIs ---------------------------------------------------------------------------------------------
def test_csv_round_trip(tmp_path):
    rows = pd.DataFrame({"frame": [0, 0, 7], "cls": [0, 1, 1], "x": [12.5, -3.25, 300.125]})
    write_seld_csv(rows, tmp_path / "a.csv")
    assert (tmp_path / "a.csv").read_text().splitlines()[1] == "0,1,-3.25"
    pd.testing.assert_frame_equal(read_seld_rows(tmp_path / "a.csv"), rows)

def test_metrics_perfect_and_shifted():
    ref = pd.DataFrame({"frame": list(range(50)) * 2, "cls": [0] * 50 + [9] * 50, "x": [30.0] * 50 + [200.0] * 50})
    pred = ref.assign(cls=ref.cls.map({0: 0, 9: 1}))
    s = evaluate_seld({"a": pred}, {"a": ref})
    assert s["ER"] == 0 and abs(s["F"] - 1) < 1e-9 and s["LE"] == 0 and abs(s["LR"] - 1) < 1e-9
    s = evaluate_seld({"a": pred.assign(x=pred.x + 39.0)}, {"a": ref})
    assert abs(s["F"] - 1) < 1e-9 and abs(s["LE"] - 39) < 1e-9
    s = evaluate_seld({"a": pred.assign(x=pred.x + 41.0)}, {"a": ref})
    assert s["F"] < 1e-9 and abs(s["LR"] - 1) < 1e-9

# --- the metric and the training recipe against the reference's rules, written out here ------------------------------
def _reference_seld_scores(clips, n_classes=2, threshold=40.0, class_map={0: 0, 1: 0, 9: 1}):
    """The reference's validator (stereo_seld_infer/dcase2022_task3_seld_metrics, macro mode) step by step:
    `clips` is a list of (predicted rows, reference rows), rows being (frame, class, x) tuples."""
    eps = np.finfo(float).eps
    k = ("TP", "FP", "FPs", "FN", "Nref", "DE", "DTP", "DFP", "DFN")
    n = {name: np.zeros(n_classes) for name in k}
    S = D = I = 0
    for pred, ref in clips:
        ref = [(f, class_map[c], x) for f, c, x in ref]
        last = max(f for f, _, _ in ref)                     # the last reference frame (not the count) sets the blocks
        def segment(rows):                                   # block -> class -> ordered {frame in block: [x, ...]}
            seg = [{} for _ in range(int(np.ceil(last / 10.0)))]
            for f, c, x in sorted(rows, key=lambda r: r[0]):   # frames in order, rows of a frame in file order
                if 0 <= f < 10 * len(seg): seg[f // 10].setdefault(c, {}).setdefault(f % 10, []).append(x)
            return seg
        for g, p in zip(segment(ref), segment(pred)):
            fn = fp = 0
            for c in range(n_classes):
                ng = max(map(len, g[c].values())) if c in g else None
                npr = max(map(len, p[c].values())) if c in p else None
                if ng is not None: n["Nref"][c] += ng
                if ng is not None and npr is not None:
                    tracks = {}                              # reference track (position in its frame) -> distances
                    for f in g[c]:
                        if f not in p[c]: continue
                        cost = np.array([[abs(a - b) for b in p[c][f]] for a in g[c][f]])
                        rows, cols = linear_sum_assignment(cost)
                        for r_, c_ in zip(rows, cols): tracks.setdefault(r_, []).append(cost[r_, c_])
                    if not tracks:                           # no frame in common: the *predicted* count becomes FN
                        fn += npr; n["FN"][c] += npr; n["DFN"][c] += npr; continue
                    for d in tracks.values():
                        avg = sum(d) / len(d); n["DE"][c] += avg; n["DTP"][c] += 1
                        if avg <= threshold: n["TP"][c] += 1
                        else: fp += 1; n["FPs"][c] += 1
                    if npr > ng: fp += npr - ng; n["FP"][c] += npr - ng; n["DFP"][c] += npr - ng
                    if npr < ng: fn += ng - npr; n["FN"][c] += ng - npr; n["DFN"][c] += ng - npr
                elif ng is not None: fn += ng; n["FN"][c] += ng; n["DFN"][c] += ng
                elif npr is not None: fp += npr; n["FP"][c] += npr; n["DFP"][c] += npr
            S += min(fp, fn); D += max(0, fn - fp); I += max(0, fp - fn)
    N = n["Nref"].sum() + eps
    ER = (S + D + I) / N
    F = n["TP"] / (eps + n["TP"] + n["FPs"] + 0.5 * (n["FP"] + n["FN"]))
    LE = n["DE"] / (n["DTP"] + eps); LE[n["DTP"] == 0] = 256.0      # the reference's copy: 256 px (DCASE's: 180°)
    LR = n["DTP"] / (eps + n["DTP"] + n["DFN"])
    seld = np.mean([np.full(n_classes, ER), 1 - F, LE / 256, 1 - LR], 0)
    P = n["TP"] / (eps + n["TP"] + n["FPs"] + n["FP"]); R = n["TP"] / (eps + n["TP"] + n["FPs"] + n["FN"])
    LF = n["DTP"] / (eps + n["DTP"] + 0.5 * (n["DFP"] + n["DFN"])); LP = n["DTP"] / (eps + n["DTP"] + n["DFP"])
    return ({"ER": ER, "F": F.mean(), "LE": LE.mean(), "LR": LR.mean(), "SELD": seld.mean(), "ER_D": D / N, "ER_I": I / N,
             "ER_S": S / N, "P": P.mean(), "R": R.mean(), "LF": LF.mean(), "LP": LP.mean()},
            {"TP": n["TP"], "FP": n["FP"], "FP_spatial": n["FPs"], "FN": n["FN"], "N_ref": n["Nref"]})

@pytest.mark.parametrize("seed", range(4))
def test_metrics_follow_the_reference_validator_written_out(seed):
    "Random clips with overlaps, misses, extra tracks, other classes and late frames: every score and count as the reference."
    rng = np.random.default_rng(seed)
    for trial in range(25):
        clips, step = [], (1.0, 10.0, None)[trial % 3]      # x on a grid in most trials: mean distances of exactly 40 px
        grid = lambda v: float(v) if step is None else float(np.round(v / step) * step)
        for _ in range(rng.integers(1, 4)):
            ref = [(f, int(rng.choice([0, 1, 9])), grid(rng.uniform(-10, 266)))
                   for f in range(rng.integers(1, 60)) for _ in range(rng.choice(4, p=[.3, .4, .2, .1]))]
            ref = ref or [(int(rng.integers(50)), 9, 100.0)]
            pred = [(f, int(rng.choice(3)), grid(rng.uniform(-10, 266)))
                    for f in range(rng.integers(0, 70)) for _ in range(rng.choice(4, p=[.4, .3, .2, .1]))]
            if rng.random() < 0.6:                           # and rows near the labels, so that tracks match
                pred += [(f, {0: 0, 1: 0, 9: 1}[c], x + grid(rng.normal(0, 30))) for f, c, x in ref if rng.random() < 0.7]
            clips.append((pred, ref))
        want, counts = _reference_seld_scores(clips)
        df = lambda rows: pd.DataFrame(rows, columns=["frame", "cls", "x"]).astype({"frame": int, "cls": int, "x": float})
        got = evaluate_seld({str(i): df(p) for i, (p, _) in enumerate(clips)}, {str(i): df(r) for i, (_, r) in enumerate(clips)})
        for key, v in want.items(): assert got[key] == pytest.approx(v, abs=1e-12), key
        for key, v in counts.items(): np.testing.assert_array_equal(got["per_class"][key].to_numpy(), v, err_msg=key)

def test_training_targets_and_learning_rate_follow_the_reference_written_out():
    """Crop targets as the reference's get_label builds them (first event per 100 ms frame after sorting by mapped class,
    10 network frames per label frame, shifted by the start's hundredths), crop starts as its select_time draws them, and
    the learning rate of its loop: timm's warm-up + cosine stepped after every 1000th iteration up to the 30th, then SWALR."""
    from torch.optim.swa_utils import SWALR
    from savgbench.seld.train import label_tracks, crop_targets, learning_rate, TrainConfig, _crop_start
    rng, cmap = np.random.default_rng(7), {0: 0, 1: 0, 9: 1}
    for _ in range(300):
        rows = [(f, int(rng.choice([0, 1, 9])), float(rng.uniform(-3, 259))) for f in range(50) for _ in range(rng.choice(4))]
        start = _crop_start(80000, rng)
        assert 0 <= start <= 80000 - 20320 - 1          # centre drawn from [10160, 80000 - 10160)
        s = start / 16000; end = s + 1.27
        f0, f1 = int(np.floor(s * 10)), int(np.ceil(end * 10))
        wide = np.zeros((2, 2, (f1 - f0 + 1) * 10))
        for i, fr in enumerate(range(f0, f1)):
            ev = sorted([(cmap[c], x) for f, c, x in rows if f == fr], key=lambda e: e[0])
            if ev: wide[0, ev[0][0], 10 * i:10 * i + 10], wide[1, ev[0][0], 10 * i:10 * i + 10] = 1, int(ev[0][1])
        d = int(math.modf(s * 10)[0] * 10)
        df = pd.DataFrame(rows, columns=["frame", "cls", "x"]) if rows else pd.DataFrame(columns=["frame", "cls", "x"])
        c, x = crop_targets(*label_tracks(df, 51), s)
        np.testing.assert_array_equal(c, wide[0, :, d:d + 128]); np.testing.assert_array_equal(x, wide[1, :, d:d + 128])
    lr0 = 1e-3
    def timm(t):                                         # CosineLRScheduler(25, 0.5 lr, warmup_t 5, 0.2 lr, warmup_prefix)
        if t < 5: return 0.2 * lr0 + t * 0.8 * lr0 / 5
        return 0.5 * lr0 if t - 5 >= 25 else 0.5 * lr0 + 0.25 * lr0 * (1 + math.cos(math.pi * (t - 5) / 25))
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr0)
    for g in opt.param_groups: g["lr"] = timm(0)        # timm's constructor starts at warmup_lr_init
    swalr, tc = SWALR(opt, swa_lr=0.5 * lr0), TrainConfig()
    for i in range(1, 40001):
        assert learning_rate(i - 1, tc) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-15), i
        if i % 1000 == 0:
            if i // 1000 > 30: opt.step(); swalr.step()
            else:
                for g in opt.param_groups: g["lr"] = timm(i // 1000)

def test_seld_and_eval_clis_on_synthetic_clips(tmp_path):
    rng = np.random.default_rng(3)
    (tmp_path / "video_dev").mkdir(); (tmp_path / "metadata_dev").mkdir()
    for i in range(3):
        a, rows = synthetic_scene(rng, 5.0, p_empty=0.0)
        sf.write(tmp_path / "video_dev" / f"c{i}.wav", (a.T * 32768).clip(-32768, 32767).astype(np.int16), 16000, subtype="PCM_16")
        rows.to_csv(tmp_path / "metadata_dev" / f"c{i}.csv", header=False, index=False)
    assert seld_cli([str(tmp_path / "video_dev"), "--out", str(tmp_path / "pred"), "--pattern", "*.wav", "--device", "cpu",
                     "--checkpoint", "demo"]) == 0
    assert eval_seld_cli([str(tmp_path / "pred"), str(tmp_path / "metadata_dev"), "--json", str(tmp_path / "s.json")]) == 0
    import json
    assert json.loads((tmp_path / "s.json").read_text())["F"] > 0.8

def test_mp4_clip_is_read_as_int16_and_predicted(tmp_path):
    io = pytest.importorskip("savgbench.io")
    a, rows = synthetic_scene(np.random.default_rng(1), 5.0, azimuth=np.array([40.0, -40.0]), cls=0)
    io.write_clip(tmp_path / "video_dev" / "c.mp4", np.zeros((20, 256, 256, 3), np.uint8), a)
    from savgbench.seld.features import read_seld_audio
    from savgbench.seld.infer import seld_files
    x = read_seld_audio(tmp_path / "video_dev" / "c.mp4")
    assert x.shape == (2, 80896) and np.abs(x * 32768 - np.round(x * 32768)).max() == 0     # 16-bit values, and the
    assert read_seld_audio(tmp_path / "video_dev" / "c.mp4", encoder_tail=False).shape == (2, 80000)  # AAC padding kept
    table, failures = seld_files([tmp_path / "video_dev" / "c.mp4"], tmp_path / "pred", checkpoint="demo", progress=False)
    assert not failures and (table.cls == 0).sum() >= 40
    assert np.corrcoef(table.frame, table.x)[0, 1] > 0.8                                   # left to right

# --- command-line options are checked before any work ------------------------------------------------------------------
def test_seld_cli_refuses_bad_batch_size_and_device(tmp_path, capsys):
    from savgbench.cli import main
    args = ["seld", str(tmp_path), "--out", str(tmp_path / "pred"), "--checkpoint", "demo", "--pattern", "*.wav"]
    for bs in ("0", "-3"):
        with pytest.raises(SystemExit) as e: main(args + ["--batch-size", bs])
        assert e.value.code == 2 and f"argument --batch-size: must be at least 1, not {bs}" in capsys.readouterr().err
    assert main(args + ["--device", "foo"]) == 1
    err = capsys.readouterr().err.strip()
    assert "unknown device 'foo'" in err and len(err.splitlines()) == 1
    if not torch.cuda.is_available():
        assert main(args + ["--device", "cuda"]) == 1 and "sees no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "pred").exists()

@pytest.mark.parametrize("bad,msg", [(["--batch-size", "0"], "--batch-size: must be at least 1"),
                                     (["--steps", "0"], "--steps: must be at least 1"),
                                     (["--workers", "-1"], "--workers: must be at least 0"),
                                     (["--preset", "foo"], "--preset: invalid choice: 'foo'"),
                                     (["--lr", "-1"], "--lr must be positive")])
def test_train_seld_cli_refuses_bad_options(tmp_path, capsys, bad, msg):
    from savgbench.seld.train import train_seld_cli
    with pytest.raises(SystemExit) as e: train_seld_cli(["--synthetic", "--out", str(tmp_path / "run")] + bad)
    assert e.value.code == 2 and msg in capsys.readouterr().err and not (tmp_path / "run").exists()

def test_train_seld_default_uses_the_dev_split_only(tmp_path, monkeypatch):
    import savgbench.seld.train as T
    from savgbench.io import write_clip
    for split, n in (("dev", 2), ("eval", 1)):                     # a built dataset root: 2 dev clips, 1 eval clip
        (tmp_path / f"metadata_{split}").mkdir()
        for i in range(n):
            a, rows = synthetic_scene(np.random.default_rng(i), 5.0, p_empty=0.0)
            write_clip(tmp_path / f"video_{split}" / f"{split}{i}.mp4", np.zeros((20, 256, 256, 3), np.uint8), a)
            rows.to_csv(tmp_path / f"metadata_{split}" / f"{split}{i}.csv", header=False, index=False)
    seen = []
    monkeypatch.setattr(T, "train_seld", lambda source, out, *a, **k: seen.append(sorted(Path(n).name for n in source.names)) or out)
    assert T.train_seld_cli([str(tmp_path), "--out", str(tmp_path / "run"), "--preset", "tiny"]) == 0
    assert T.train_seld_cli([str(tmp_path), "--out", str(tmp_path / "run"), "--glob", "video_*/*.mp4"]) == 0
    assert seen == [["dev0.mp4", "dev1.mp4"], ["dev0.mp4", "dev1.mp4", "eval0.mp4"]]
    import shutil; shutil.rmtree(tmp_path / "video_dev")
    with pytest.raises(DatasetError, match="not training on its eval"):
        T.train_seld_cli([str(tmp_path), "--out", str(tmp_path / "run")])

def test_eval_seld_cli_json_folder_threshold_and_absent_class(tmp_path, capsys):
    (tmp_path / "pred").mkdir(); (tmp_path / "meta").mkdir()
    ref = pd.DataFrame({"frame": range(50), "cls": 9, "x": 120.0})
    ref.to_csv(tmp_path / "meta" / "a.csv", header=False, index=False)
    ref.assign(cls=1).to_csv(tmp_path / "pred" / "a.csv", header=False, index=False)
    out = tmp_path / "no" / "such" / "dir" / "s.json"
    assert eval_seld_cli([str(tmp_path / "pred"), str(tmp_path / "meta"), "--json", str(out)]) == 0
    assert eval_seld_cli([str(tmp_path / "pred"), str(tmp_path / "meta"), "--out", str(tmp_path / "o.json")]) == 0   # as elsewhere
    import json
    assert json.loads((tmp_path / "o.json").read_text()) == json.loads(out.read_text())
    s = json.loads(out.read_text())
    assert abs(s["F"] - 0.5) < 1e-9 and abs(s["LE"] - 128) < 1e-9          # the reference's macro mean over both classes
    assert abs(s["per_class"][1]["F"] - 1) < 1e-9 and s["per_class"][1]["LE"] == 0 and s["per_class"][0]["LE"] == 256
    assert "Note: class speech has no reference events" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e: eval_seld_cli([str(tmp_path / "pred"), str(tmp_path / "meta"), "--doa-threshold", "-5"])
    assert e.value.code == 2 and "--doa-threshold must be a non-negative" in capsys.readouterr().err
    # a --json that cannot be written (a folder; a place where no file can be made) is refused before any scoring,
    # not said after the scores were printed, by the name of a temporary file
    for bad, why in [(tmp_path / "pred", "is a folder; it names the file to write")] + \
                    ([("/proc/savgbench/s.json", "cannot be written: no file can be made in /proc")] if Path("/proc/self").is_dir() else []):
        with pytest.raises(SystemExit) as e: eval_seld_cli([str(tmp_path / "pred"), str(tmp_path / "meta"), "--json", str(bad)])
        cap = capsys.readouterr()
        assert e.value.code == 2 and f"--json {bad} {why}" in cap.err and "SELD scores" not in cap.out, cap
    # one of the files it reads (a prediction CSV, the rows record, a label CSV): refused, the file kept
    (tmp_path / "pred" / "savgbench_rows.json").write_text('{"what": "SELD", "source": {"seld_checkpoint": "x"}}\n')
    for bad, what in ((tmp_path / "pred" / "a.csv", "a file of the predictions' folder"),
                      (tmp_path / "pred" / "savgbench_rows.json", "a file of the predictions' folder"),
                      (tmp_path / "meta" / "a.csv", "a label CSV under")):
        kept = bad.read_bytes()
        with pytest.raises(SystemExit) as e: eval_seld_cli([str(tmp_path / "pred"), str(tmp_path / "meta"), "--json", str(bad)])
        assert e.value.code == 2 and what in capsys.readouterr().err and bad.read_bytes() == kept


def test_ctrl_c_during_seld_training_saves_a_last_pt_that_resumes_exactly(tmp_path, capsys):
    """Ctrl-C while step 3 draws its batch: the step finishes, last.pt is saved at step 3 and no final model is made;
    the run started again ends with the same weights as one never stopped."""
    import os, signal
    from dataclasses import replace
    from savgbench.seld.train import ClipCrops, TrainConfig, synthetic_stereo_batch, train_seld

    class CtrlCCrops(ClipCrops):
        "Crops that press Ctrl-C (send this process SIGINT) once, during their `at`-th draw."
        def __init__(self, *a, at):
            super().__init__(*a); self.at, self.draws = at, 0
        def sample(self, *a, **kw):
            self.draws += 1
            if self.draws == self.at: os.kill(os.getpid(), signal.SIGINT)
            return super().sample(*a, **kw)

    tc = replace(TrainConfig.scaled(8, batch_size=2, bn_batches=2, save_every=4), pseudo_epoch=2, swa_after=2)
    audios, labels = synthetic_stereo_batch(2, np.random.default_rng(0), 2.0)
    ref = train_seld(ClipCrops(audios, labels), tmp_path / "ref", "tiny", tc, progress=False)
    src = CtrlCCrops(audios, labels, at=3)
    with pytest.raises(KeyboardInterrupt): train_seld(src, tmp_path / "b", "tiny", tc, progress=False)
    err = capsys.readouterr().err
    assert "interrupt: finishing this step" in err and "at step 3" in err, err
    assert torch.load(tmp_path / "b" / "last.pt", weights_only=False)["step"] == 3
    assert not (tmp_path / "b" / "seld_final.pt").exists()
    final = train_seld(src, tmp_path / "b", "tiny", tc, progress=False)
    for name in ("last.pt", "seld_final.pt"):
        a, b = (torch.load(d / name, weights_only=False)["model_state_dict"] for d in (tmp_path / "b", ref.parent))
        assert all(torch.equal(a[k], b[k]) for k in b), name
    assert final == tmp_path / "b" / "seld_final.pt"


def test_sigterm_to_train_seld_with_a_data_worker_saves_and_ends(tmp_path, kill_at_end):
    """`kill` on the process group of `savgbench train-seld --workers 1` (command and data worker): last.pt is saved at
    the step reached and the command ends by SIGTERM. The data worker ignores SIGTERM, so it must be stopped before
    the exit handlers, which would otherwise wait for it for ever."""
    import os, signal, subprocess, sys, time
    run = tmp_path / "run"
    p = subprocess.Popen([sys.executable, "-m", "savgbench", "train-seld", "--synthetic", "--preset", "tiny", "--workers",
                          "1", "--steps", "100000", "--out", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    kill_at_end(p)
    logged = lambda: (run / "log.jsonl").is_file() and bool((run / "log.jsonl").read_text().strip())
    t0 = time.monotonic()                  # the first log row comes at step 50 (a few seconds on an idle machine); on a
    while time.monotonic() - t0 < 180 and p.poll() is None and not logged(): time.sleep(0.1)   # loaded one, any step
    seen = logged()
    assert p.poll() is None, p.communicate()[1][-3000:]
    os.killpg(p.pid, signal.SIGTERM)
    try: _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired: raise AssertionError("train-seld did not end within 60 s of SIGTERM") from None
    assert p.returncode == -signal.SIGTERM, err[-3000:]
    assert "stopped by SIGTERM" in err and "Traceback" not in err and "exited unexpectedly" not in err, err[-3000:]
    step = torch.load(run / "last.pt", weights_only=False)["step"]
    assert step >= (50 if seen else 1) and f"at step {step}" in err, err[-3000:]


def test_resuming_train_seld_with_another_network_names_what_differs_and_the_way_out(tmp_path):
    """A run resumed with another --preset or --phase: the error names the settings that differ (not two whole config
    dicts) and says how to go on (the same --preset/--phase, or --no-resume), as for the other training settings."""
    from dataclasses import replace
    from savgbench.core import SAVGBenchError
    from savgbench.seld.model import SELDConfig
    from savgbench.seld.train import ClipCrops, TrainConfig, synthetic_stereo_batch, train_seld
    tc = TrainConfig.scaled(2, batch_size=2, bn_batches=1)
    audios, labels = synthetic_stereo_batch(2, np.random.default_rng(0), 2.0)
    train_seld(ClipCrops(audios, labels), tmp_path, "tiny", tc, progress=False)
    with pytest.raises(SAVGBenchError) as e:
        train_seld(ClipCrops(audios, labels), tmp_path, replace(SELDConfig.preset("tiny"), phase="robust"), tc, progress=False)
    msg = str(e.value)
    assert "last.pt: last.pt holds a network of another configuration (phase: 'reference' -> 'robust')" in msg, msg
    assert "--preset" in msg and "--no-resume" in msg and "channels" not in msg, msg


def test_resuming_train_seld_with_another_number_of_processes_says_the_batch_changes(tmp_path, capsys):
    "last.pt keeps one random state per process that trained it; a resume by another number of processes says so."
    import torch
    from savgbench.core import save_torch
    from savgbench.seld.train import ClipCrops, TrainConfig, synthetic_stereo_batch, train_seld
    audios, labels = synthetic_stereo_batch(2, np.random.default_rng(0), 2.0)
    train_seld(ClipCrops(audios, labels), tmp_path, "tiny", TrainConfig.scaled(2, batch_size=2, bn_batches=1), progress=False)
    ck = torch.load(tmp_path / "last.pt", weights_only=False)
    assert len(ck["rng_state"]) == 1
    save_torch({**ck, "rng_state": ck["rng_state"] * 2}, tmp_path / "last.pt")     # as two processes write it
    capsys.readouterr()
    train_seld(ClipCrops(audios, labels), tmp_path, "tiny", TrainConfig.scaled(3, batch_size=2, bn_batches=1), progress=False)
    out = capsys.readouterr().out
    assert out.count("note: last.pt was trained by 2 processes, now 1: each step now takes 1 x 2 crops instead of "
                     "2 x 2") == 1, out

# --- input path details: shortest clip, phase variants, window rule without the quirk, model mode, threshold ------
def test_shortest_clip_is_one_training_crop():
    "1.27 s x 16 kHz = 20320 samples is accepted; one sample fewer is refused as too short."
    rng = np.random.default_rng(0)
    f, dur = clip_features(rng.uniform(-0.5, 0.5, (2, 20320)))
    assert dur == 1.27 and f.shape == (3, 257, 1 + (20320 + 352 - 512) // 160)
    with pytest.raises(AudioFormatError, match="too short"): clip_features(rng.uniform(-0.5, 0.5, (2, 20319)))

def test_centered_and_robust_phase_follow_their_definitions():
    "centered: angle(R conj L) in (-pi, pi]; robust: the same, zero where either magnitude is below the floor."
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (2, 4000)) * np.linspace(0, 1, 4000)      # quiet start: some bins under the floor
    x[1, :1500] *= 1e-4
    S = numpy_stft(x)
    want = np.angle(S[1] * np.conj(S[0]))
    c = spectral_features(x, phase="centered")[2].numpy().astype(np.float64)
    assert np.abs(np.angle(np.exp(1j * (c - want)))).max() <= 1e-5 and c.min() < -1       # (negative values kept)
    floor = 1e-2
    low = np.minimum(np.abs(S[0]), np.abs(S[1])) < floor
    assert 0 < low.sum() < low.size
    r = spectral_features(x, phase="robust", floor=floor)[2].numpy().astype(np.float64)
    assert (r[low] == 0).all()
    assert np.abs(np.angle(np.exp(1j * (r[~low] - want[~low])))).max() <= 1e-5

def test_reference_phase_wraps_to_zero_two_pi():
    "The reference phase difference lies in [0, 2 pi) and equals angle(R) - angle(L) modulo 2 pi."
    x = np.random.default_rng(2).uniform(-1, 1, (2, 3000))
    d = spectral_features(x)[2].numpy().astype(np.float64)
    S = numpy_stft(x)
    assert d.min() >= 0 and d.max() < 2 * math.pi + 1e-6 and d.min() < 0.5 and d.max() > 2 * math.pi - 0.5
    assert np.abs(np.angle(np.exp(1j * (d - (np.angle(S[1]) - np.angle(S[0])))))).max() <= 1e-5

def _inputs(net):
    "Record what the network is fed."
    seen = []
    net.register_forward_hook(lambda m, i, o: seen.append(i[0].detach().clone()))
    return seen

def _tiny(phase="reference", seed=0):
    torch.manual_seed(seed)
    net = SELDNet(SELDConfig(channels=(4, 8, 8), d_model=16, d_ff=32, n_heads=2, n_layers=1, phase=phase))
    with torch.no_grad(): net.fc_sed_track1.bias.fill_(1.0)
    return net.eval()

def test_model_is_fed_the_phase_it_was_trained_on():
    net = _tiny("centered")
    seen = _inputs(net)
    clip = np.random.default_rng(3).uniform(-0.5, 0.5, (2, 40000)).astype(np.float32)
    predict_seld([clip], net, batch_size=8)
    x = torch.cat(seen)
    assert x[:, 2].min() < -1                               # (-pi, pi], not the reference's [0, 2 pi)
    want = spectral_features(np.concatenate([np.zeros((2, 352)), clip.astype(np.float64)], 1), phase="centered")
    assert torch.equal(x[0, :, :, 4:], want[:, :, :124])    # window 0: frames 0..123 after the 4 wrapped ones

def test_windows_without_the_reference_quirk_start_every_120_frames(tmp_path):
    "reference_quirk=False (predict_seld and seld_files): the fourth window of a 5 s clip starts at frame 360, not 359."
    clip = np.random.default_rng(4).uniform(-0.5, 0.5, (2, 80000)).astype(np.float32)
    spec = spectral_features(np.concatenate([np.zeros((2, 352)), clip.astype(np.float64)], 1))
    pad = torch.cat([spec[..., -4:], spec, spec[..., :128]], -1)
    sf.write(tmp_path / "a.wav", clip.T, 16000, subtype="FLOAT")
    for quirk, start in ((True, 359), (False, 360)):
        for run in (lambda net: predict_seld([clip], net, batch_size=8, reference_quirk=quirk),
                    lambda net: seld_files([tmp_path / "a.wav"], model=net, batch_size=8, reference_quirk=quirk, progress=False)):
            net = _tiny(); seen = _inputs(net)
            run(net)
            x = torch.cat(seen)[:5]
            for w, s in enumerate((0, 120, 240, start, 480)):
                assert torch.equal(x[w], pad[..., s:s + 128]), (quirk, w)

def test_a_model_in_training_mode_is_run_in_eval_mode():
    "Dropout and batch statistics are off at inference: rows equal those of the same net put in eval mode first."
    clip = np.random.default_rng(5).uniform(-0.5, 0.5, (2, 40000)).astype(np.float32)
    net = _tiny()
    want = predict_seld([clip], net, batch_size=8)[0]
    assert len(want) > 0
    net.train()
    torch.manual_seed(9)
    got = predict_seld([clip], net, batch_size=8)[0]
    pd.testing.assert_frame_equal(got, want)

def test_float_wav_is_read_as_float32_like_librosa(tmp_path):
    "A 64-bit float wav gives its samples rounded to float32 (librosa.load's dtype), not the exact float64 values."
    x = np.random.default_rng(6).uniform(-0.9, 0.9, (30000, 2))
    for name in ("d.wav", "D.WAV"):                                 # (the suffix in either case)
        sf.write(tmp_path / name, x, 16000, subtype="DOUBLE")
        a = read_seld_audio(tmp_path / name)
        assert a.shape == (2, 30000) and np.array_equal(a, x.T.astype(np.float32).astype(np.float64)), name

def test_batch_size_below_one_is_refused_by_name():
    from savgbench.core import SAVGBenchError
    clip = np.zeros((2, 40000), np.float32)
    with pytest.raises(SAVGBenchError, match="at least 1"): predict_seld([clip], _tiny(), batch_size=0)

def test_presence_threshold_is_strict_and_reaches_the_rows():
    "Zero logits give p = 0.5 exactly: threshold 0.5 keeps no row (p > threshold), just under keeps every frame and class."
    from savgbench.seld.infer import windows_to_rows
    sed = np.zeros((5, 2, 128)); doa = np.full((5, 2, 128), 0.25)
    labels = [0, 12, 24, 36, 48]
    assert len(windows_to_rows(sed, doa, labels, 5.0, threshold=0.5)) == 0
    rows = windows_to_rows(sed, doa, labels, 5.0, threshold=0.4999)
    assert len(rows) == 100 and (rows.x == 64.0).all()
    clip = np.random.default_rng(7).uniform(-0.5, 0.5, (2, 80000)).astype(np.float32)
    net = _tiny()
    assert len(predict_seld([clip], net, batch_size=8, threshold=1.0)[0]) == 0          # a mean of sigmoids is never > 1
    every = predict_seld([clip], net, batch_size=8, threshold=-1.0)[0]
    assert len(every) == 100 and every.frame.tolist() == sorted(list(range(50)) * 2)

def test_from_checkpoint_gives_a_model_in_eval_mode(tmp_path):
    net = _tiny().train()
    torch.save({"model_state_dict": net.state_dict(), "config": dict(channels=[4, 8, 8], d_model=16, d_ff=32, n_heads=2,
                                                                    n_layers=1)}, tmp_path / "c.pt")
    back = SELDNet.from_checkpoint(tmp_path / "c.pt")
    assert not any(m.training for m in back.modules())
