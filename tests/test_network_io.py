"""Input and output handling around the scoring networks (YOLOX-tiny, I3D, AudioCLIP), checked against the reference
description (shared/spec/metrics_reference.md §3, §5.5) with hand-computed small cases."""
import dataclasses, math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from savgbench.detect import yolox as Y
from savgbench.detect.yolox import YOLOXConfig, preprocess, decode_outputs, postprocess, detect_persons, resize_scale
from savgbench.metrics import i3d as I3D
from savgbench.metrics import audioclip as AC


# ---------------------------------------------------------------------------------------------------------------
# YOLOX-tiny: configuration of mmdet's yolox_tiny_8x8_300e_coco test pipeline

def test_yolox_test_settings_are_the_references():
    c = YOLOXConfig()
    assert (c.img_scale, c.pad_value, c.size_divisor) == (416, 114.0, 32)
    assert (c.score_thr, c.nms_iou) == (0.01, 0.65)
    assert tuple(c.strides) == (8, 16, 32)
    assert Y.PERSON_SCORE_THR == 0.3


def test_resize_scale_keeps_the_ratio_and_rounds_to_nearest():
    assert resize_scale(256, 256, 416) == (416, 416)
    # 144 x 256: the long side limits the scale, 416/256 = 1.625; 144 * 1.625 = 234 exactly
    assert resize_scale(144, 256, 416) == (234, 416)
    assert resize_scale(256, 144, 416) == (416, 234)
    # 100 x 300 into 416: s = min(416/300, 416/100) = 1.3867; 100 * s = 138.67 -> 139 (round half up, not floor)
    assert resize_scale(100, 300, 416) == (139, 416)


def test_preprocess_resizes_bilinear_pads_114_to_square_then_0_to_32():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 256, (144, 256, 3), dtype=np.uint8)
    x, sf = preprocess(f[None])
    assert tuple(x.shape) == (1, 3, 416, 416)
    assert sf == pytest.approx((416 / 256, 234 / 144))
    want = cv2.resize(f, (416, 234), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    got = x[0].permute(1, 2, 0).numpy()                       # channels stay in the given (BGR) order
    np.testing.assert_array_equal(got[:234], want)
    assert (got[234:] == 114).all()
    # a side that is not a multiple of 32: Pad(pad_to_square, 114) to 100 x 100, then zeros up to 128
    cfg = dataclasses.replace(YOLOXConfig(), img_scale=100)
    g = rng.integers(0, 256, (50, 100, 3), dtype=np.uint8)
    x, sf = preprocess(g[None], cfg)
    assert tuple(x.shape) == (1, 3, 128, 128) and sf == (1.0, 1.0)
    got = x[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got[:50, :100], g.astype(np.float32))
    assert (got[50:100, :100] == 114).all()
    assert (got[100:] == 0).all() and (got[:, 100:] == 0).all()
    # unequal scale factors come back as (w, h): 100 x 300 -> 139 x 416
    _, sf = preprocess(np.zeros((1, 100, 300, 3), np.uint8))
    assert sf == pytest.approx((416 / 300, 139 / 100))


# decode: mmdet YOLOXHead._bbox_decode with priors (x·s, y·s) (offset 0):
#   centre = prior + reg_xy·s, size = exp(reg_wh)·s, scores = sigmoid

def _level(n_cls, h, w):
    return torch.zeros(1, n_cls, h, w), torch.zeros(1, 4, h, w), torch.zeros(1, 1, h, w)


def test_decode_outputs_by_hand():
    c, r, o = _level(2, 2, 3)                                  # stride 8, grid 2 rows x 3 columns
    r[0, :, 1, 2] = torch.tensor([0.5, -0.25, math.log(2.0), 0.0])    # prior at column 2, row 1: (16, 8)
    c[0, 1, 1, 2] = 2.0; o[0, 0, 1, 2] = -1.0
    c2, r2, o2 = _level(2, 1, 1)                                # stride 16, one prior at (0, 0)
    r2[0, :, 0, 0] = torch.tensor([1.0, 2.0, 0.0, math.log(3.0)])
    boxes, probs, objs = decode_outputs([c, c2], [r, r2], [o, o2], strides=(8, 16))
    assert tuple(boxes.shape) == (1, 7, 4) and tuple(probs.shape) == (1, 7, 2) and tuple(objs.shape) == (1, 7)
    # row-major priors: index 5 = row 1, column 2; centre (16 + 4, 8 - 2) = (20, 6), size (16, 8)
    torch.testing.assert_close(boxes[0, 5], torch.tensor([12.0, 2.0, 28.0, 10.0]))
    # prior index 1 = row 0, column 1: centre (8, 0), size (8, 8)
    torch.testing.assert_close(boxes[0, 1], torch.tensor([4.0, -4.0, 12.0, 4.0]))
    # second level: centre (16, 32), size (16, 48)
    torch.testing.assert_close(boxes[0, 6], torch.tensor([8.0, 8.0, 24.0, 56.0]))
    torch.testing.assert_close(probs[0, 5], torch.tensor([0.5, 1 / (1 + math.exp(-2.0))]))
    torch.testing.assert_close(objs[0, 5], torch.tensor(1 / (1 + math.exp(1.0))))


def _logit(p): return math.log(p / (1 - p))


def _one_level(entries, n_cls=3, h=1, w=8):
    "entries: (column, class, class prob, objectness, (x0, y0, x1, y1) wanted in input pixels at stride 8)."
    c = torch.full((1, n_cls, h, w), -30.0); r = torch.zeros(1, 4, h, w); o = torch.full((1, 1, h, w), -30.0)
    for col, k, p, ob, (x0, y0, x1, y1) in entries:
        c[0, k, 0, col] = _logit(p); o[0, 0, 0, col] = _logit(ob)
        cx, cy, bw, bh = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
        r[0, :, 0, col] = torch.tensor([(cx - col * 8) / 8, cy / 8, math.log(bw / 8), math.log(bh / 8)], dtype=torch.float64)
    return [c], [r], [o]


def test_postprocess_by_hand():
    cfg = YOLOXConfig()
    big = (0.0, 0.0, 100.0, 100.0)
    near = (0.0, 0.0, 100.0, 80.0)         # IoU with big 0.8 > 0.65: suppressed
    mid = (0.0, 0.0, 100.0, 60.0)          # IoU with big 0.6 < 0.65: kept
    low = (200.0, 0.0, 210.0, 10.0)
    entries = [(0, 0, 0.9, 0.9, big), (1, 0, 0.8, 0.9, near), (2, 0, 0.7, 0.9, mid),
               (3, 1, 0.8, 0.9, near),                      # another class: not suppressed by big
               (4, 2, 0.102, 0.1, low),                     # score 0.0102 >= 0.01: kept
               (5, 2, 0.098, 0.1, (300.0, 0.0, 310.0, 10.0))]  # score 0.0098: dropped
    c, r, o = _one_level(entries)
    (d,) = postprocess(c, r, o, (2.0, 4.0), cfg)
    want = {(0.81, 0): big, (0.72, 1): near, (0.63, 0): mid, (0.0102, 2): low}
    got = {(round(float(s), 4), int(l)): b for *b, s, l in d}
    assert set(got) == set(want)
    assert list(d[:, 4]) == sorted(d[:, 4], reverse=True)
    for k, (x0, y0, x1, y1) in want.items():        # boxes divided by the (w, h) scale factors, not clipped
        np.testing.assert_allclose(got[k], [x0 / 2, y0 / 4, x1 / 2, y1 / 4], rtol=1e-5, atol=1e-4)
    (d0,) = postprocess(c, r, o, (1.0, 1.0), cfg, classes=[0])
    assert sorted(round(float(s), 4) for s in d0[:, 4]) == [0.63, 0.81] and set(d0[:, 5]) == {0.0}


class _StubYOLOX(torch.nn.Module):
    "Returns fixed head outputs and records its input."
    def __init__(self, outs, cfg):
        super().__init__(); self.cfg, self.outs, self.p = cfg, outs, torch.nn.Parameter(torch.zeros(1))
    def forward(self, x):
        self.seen = x.clone(); n = len(x)
        return tuple([t.expand(n, *t.shape[1:]) for t in ts] for ts in self.outs)


def test_detect_persons_feeds_bgr_and_keeps_persons_above_0_3():
    cfg = YOLOXConfig()
    entries = [(0, 0, 0.6, 0.6, (0.0, 0.0, 40.0, 40.0)),       # person 0.36: kept
               (2, 0, 0.4999, 0.6, (80.0, 0.0, 120.0, 40.0)),  # person 0.29994: under 0.3, dropped
               (4, 1, 0.9, 0.9, (160.0, 0.0, 200.0, 40.0))]    # not a person
    m = _StubYOLOX(_one_level(entries), cfg)
    rgb = np.zeros((2, 256, 256, 3), np.uint8); rgb[..., 0] = 10; rgb[..., 1] = 20; rgb[..., 2] = 30
    out = detect_persons(m, rgb, batch_size=1)
    assert len(out) == 2 and all(d.shape == (1, 5) and d.dtype == np.float32 for d in out)
    np.testing.assert_allclose(out[0][0, :4], np.array([0, 0, 40, 40]) / 1.625, rtol=1e-5, atol=1e-4)
    assert out[0][0, 4] == pytest.approx(0.36, abs=1e-5)
    assert m.seen[0, 0].unique().tolist() == [30.0] and m.seen[0, 2].unique().tolist() == [10.0]   # B, G, R


def test_score_ties_the_candidate_threshold_keeps_and_the_person_threshold_drops():
    "mmdet keeps objectness x class score >= test_cfg.score_thr; the metric keeps person boxes with score > 0.3."
    # logits 0 give sigmoids of exactly 0.5, so the score is exactly 0.25 in float32: a tie with both thresholds at 0.25
    cfg = dataclasses.replace(YOLOXConfig(), score_thr=0.25)
    tie = (0, 0, 0.5, 0.5, (0.0, 0.0, 40.0, 40.0))
    c, r, o = _one_level([tie])
    assert float(o[0][0, 0, 0, 0]) == 0.0 and float(c[0][0, 0, 0, 0]) == 0.0
    (d,) = postprocess(c, r, o, (1.0, 1.0), cfg)
    assert d.shape == (1, 6) and float(d[0, 4]) == 0.25                   # at the candidate threshold: kept
    m = _StubYOLOX((c, r, o), YOLOXConfig())
    out = detect_persons(m, np.zeros((1, 256, 256, 3), np.uint8), score_thr=0.25)
    assert out[0].shape == (0, 5)                                          # at the person threshold: dropped
    assert detect_persons(m, np.zeros((1, 256, 256, 3), np.uint8), score_thr=0.2499)[0].shape == (1, 5)


# ---------------------------------------------------------------------------------------------------------------
# I3D (FVD) input: /255, bilinear resize of the shorter side to 224 (ceil for the other), centre crop, (x - 0.5)·2

def test_i3d_input_size_is_224():
    assert I3D.I3DConfig().size == 224


def test_preprocess_i3d_value_range_channel_and_time_order():
    v = np.zeros((2, 3, 8, 8, 3), np.uint8)
    for b in range(2):
        for t in range(3):
            v[b, t] = (10 * t + b, 100, 255 - 50 * t)
    p = I3D.preprocess_i3d(v, size=8)
    assert tuple(p.shape) == (2, 3, 3, 8, 8)
    for b in range(2):
        for t in range(3):
            for c, val in enumerate((10 * t + b, 100, 255 - 50 * t)):
                assert (p[b, c, t] - (val / 255.0 - 0.5) * 2).abs().max() < 1e-6
    assert p.min() >= -1 and p.max() <= 1


@pytest.mark.parametrize("h,w", [(144, 256), (256, 144), (230, 230)])
def test_preprocess_i3d_resizes_the_short_side_and_crops_the_centre(h, w):
    rng = np.random.default_rng(1)
    v = rng.integers(0, 256, (1, 2, h, w, 3), dtype=np.uint8)
    p = I3D.preprocess_i3d(v)
    # by hand: 144 -> 224 and 256 -> ceil(256 * 224 / 144) = ceil(398.2) = 399; crop offset (399 - 224) // 2 = 87
    th, tw = {(144, 256): (224, 399), (256, 144): (399, 224), (230, 230): (224, 224)}[(h, w)]
    oh, ow = {(144, 256): (0, 87), (256, 144): (87, 0), (230, 230): (0, 0)}[(h, w)]
    x = torch.from_numpy(v[0]).permute(0, 3, 1, 2).float() / 255.0
    r = F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False, antialias=False)
    want = (r[:, :, oh:oh + 224, ow:ow + 224].permute(1, 0, 2, 3) - 0.5) * 2
    torch.testing.assert_close(p[0], want, rtol=0, atol=1e-6)


def test_i3d_logits_use_the_models_input_size_and_every_clip():
    torch.manual_seed(0)
    m = I3D.InceptionI3d(I3D.I3DConfig.tiny()).eval()
    clips = torch.randint(0, 256, (5, 10, 48, 40, 3), dtype=torch.uint8)
    got = I3D.i3d_logits(m, clips, batch_size=2)
    assert got.shape == (5, 16)
    with torch.no_grad():
        want = m(I3D.preprocess_i3d(clips, 32)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_i3d_output_is_the_time_mean_of_the_logits_conv():
    torch.manual_seed(0)
    m = I3D.InceptionI3d(I3D.I3DConfig.tiny()).eval()
    f = torch.randn(2, m.feature_dim, 2, 1, 1)                 # two pooled time steps that differ
    m.features = lambda x: f
    W, bias = m.logits.conv3d.weight[:, :, 0, 0, 0], m.logits.conv3d.bias    # 1x1x1 conv with bias, no BN/ReLU
    want = ((f[:, :, 0, 0, 0] @ W.T + bias) + (f[:, :, 1, 0, 0] @ W.T + bias)) / 2
    with torch.no_grad():
        torch.testing.assert_close(m(torch.zeros(2, 3, 20, 32, 32)), want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# AudioCLIP (FAD) front end: framing, window, power in dB, 3 bands, channels summed, ×1000

# (its settings and periodic Blackman-Harris window: test_metrics.py::test_audioclip_layers_are_the_references)

def test_frame_signal_pads_symmetrically_to_whole_frames():
    ones = torch.ones(4)
    # 12 samples, win 4, hop 3: 1 + ceil(8 / 3) = 4 frames need 13 samples: 0 zeros before, 1 after
    f = AC.frame_signal(torch.arange(1.0, 13.0), 4, 3, ones)
    assert f.tolist() == [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10], [10, 11, 12, 0]]
    # 11 samples: 4 frames, 2 zeros: 1 before, 1 after
    f = AC.frame_signal(torch.arange(1.0, 12.0), 4, 3, ones)
    assert f.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9], [9, 10, 11, 0]]
    # the window multiplies every frame
    w = torch.tensor([0.5, 1.0, 2.0, 0.0])
    assert AC.frame_signal(torch.ones(10), 4, 3, w).tolist() == [[0.5, 1, 2, 0]] * 3


def test_log_power_is_10_log10_of_the_power_of_the_first_three_bands():
    # the reference's front end (n_fft 2048: 1025 bins, 3 bands of 341, the last 2 bins dropped), a small trunk
    m = AC.ESResNeXtFBSP(AC.AudioCLIPConfig(layers=(1, 1, 1, 1), base=16, groups=4, width_per_group=16, embed_dim=8))
    c = m.cfg
    bins = c.n_fft // 2 + 1
    seen = []

    class FakeFBSP(torch.nn.Module):       # (rows, frames, n_fft) -> (rows, frames, bins, 2): re = bin index, im = 0
        def forward(self, frames):
            seen.append(frames.clone())
            re = torch.arange(bins, dtype=torch.float32).expand(*frames.shape[:-1], bins)
            return torch.stack((re, torch.zeros_like(re)), -1)
    m.fbsp = FakeFBSP()
    db = m.log_power(torch.zeros(1, 2, c.win_length + 3 * c.hop_length))
    band = 341
    assert tuple(db.shape) == (1, 2, 3, band, 4)
    for k in range(3):
        for j in (0, 1, band - 1):
            b = k * band + j
            want = -180.0 if b == 0 else 10 * math.log10(float(b) ** 2)       # power 0 floors at 1e-18
            assert db[0, 1, k, j].tolist() == pytest.approx([want] * 4, abs=1e-4)
    # every frame is win_length samples centred in n_fft with zeros
    p = c.n_fft - c.win_length
    fr = seen[0]
    assert fr.shape[-1] == c.n_fft and not fr[..., :p // 2].any() and not fr[..., p // 2 + c.win_length:].any()


def test_audioclip_sums_the_two_channels_embeddings():
    m = AC.ESResNeXtFBSP(AC.AudioCLIPConfig.tiny()).eval()
    calls = []
    def trunk(x):
        calls.append(x.shape); return torch.full((x.shape[0], m.fc.in_features), float(len(calls)))
    m._trunk = trunk
    with torch.no_grad():
        got = m(torch.zeros(1, 2, 4000))
        want = m.fc(torch.full((1, m.fc.in_features), 3.0))          # channel 1 gives 1s, channel 2 gives 2s
    assert len(calls) == 2
    torch.testing.assert_close(got, want)


def test_audioclip_embed_int16_scaling_and_batches_of_8():
    import inspect
    assert inspect.signature(AC.audioclip_embed).parameters["batch_size"].default == 8
    m = AC.ESResNeXtFBSP(AC.AudioCLIPConfig.tiny()).eval()
    seen = []
    m.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].clone()))
    a = np.full((3, 2, 600), 0.25)
    AC.audioclip_embed(m, a, batch_size=2, int16_input=True)
    assert [len(s) for s in seen] == [2, 1]
    assert all(torch.all(s == 0.25 * 32768.0) for s in seen)
    seen.clear(); AC.audioclip_embed(m, a)
    assert [len(s) for s in seen] == [3] and torch.all(seen[0] == 0.25)


def test_batch_statistics_leave_the_running_statistics_and_modes_alone():
    torch.manual_seed(0)
    m = AC.ESResNeXtFBSP(AC.AudioCLIPConfig.tiny()).eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    AC.audioclip_embed(m, torch.randn(3, 2, 3000) * 0.1, batch_stats=True)
    after = m.state_dict()
    for k, v in before.items(): assert torch.equal(v, after[k]), k
    assert not any(x.training for x in m.modules())


def test_fad_is_1000_times_the_frechet_distance():
    # 1-d by hand: a = {0, 2}: mean 1, unbiased variance 2; b = {1, 5}: mean 3, variance 8
    # d = (1 - 3)^2 + 2 + 8 - 2 sqrt(2 · 8) = 6
    assert AC.fad(np.array([[0.0], [2.0]]), np.array([[1.0], [5.0]])) == pytest.approx(6000.0, rel=1e-4)
