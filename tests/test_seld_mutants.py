"SELD input path details that the main SELD tests leave open: clip length limits, phase variants, window rule, model mode."
import math
import numpy as np, pandas as pd, pytest, torch, soundfile as sf
from savgbench.core import AudioFormatError
from savgbench.seld.features import clip_features, spectral_features, read_seld_audio
from savgbench.seld.model import SELDNet, SELDConfig
from savgbench.seld.infer import predict_seld, seld_files

def _stft(x):
    "numpy STFT (2, 257, T) of (2, n): periodic Hann, n_fft 512, hop 160, no centring."
    n = np.arange(512); win = 0.5 * (1 - np.cos(2 * np.pi * n / 512))
    T = 1 + (x.shape[1] - 512) // 160
    idx = np.arange(512)[None, :] + 160 * np.arange(T)[:, None]
    return np.fft.rfft(x[:, idx] * win, axis=-1).transpose(0, 2, 1)

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
    S = _stft(x)
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
    S = _stft(x)
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
    sf.write(tmp_path / "d.wav", x, 16000, subtype="DOUBLE")
    a = read_seld_audio(tmp_path / "d.wav")
    assert a.shape == (2, 30000) and np.array_equal(a, x.T.astype(np.float32).astype(np.float64))

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
