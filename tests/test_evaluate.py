"""evaluate's orchestration: which frames, audio samples and items the protocols score, how the features are batched
and cached, and what the results JSON records. Expected values come from the reference evaluation's specification
(spec/metrics_reference.md §5 and §8) or from plain re-statements here, never from the functions under test."""
import json, math, random
from dataclasses import asdict, replace
import numpy as np
import pytest
import torch

torch.set_num_threads(1)

import savgbench.evaluate as E
from savgbench.core import SAVGBenchError

V1, V2 = E.PROTOCOLS["v1"], E.PROTOCOLS["v2"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    "Three generated and two reference synthetic clips, scanned."
    root = tmp_path_factory.mktemp("clips")
    E.synthetic_clips(root / "gen", n=3, seed=1, noise=0.05)
    E.synthetic_clips(root / "ref", n=2, seed=2)
    return root, E.scan_clips(root / "gen", "gen"), E.scan_clips(root / "ref", "ref")


@pytest.fixture(scope="module")
def nets():
    "The small stand-in networks (random weights) of the existing tests."
    from savgbench.metrics.i3d import InceptionI3d, I3DConfig
    from savgbench.metrics.audioclip import ESResNeXtFBSP, AudioCLIPConfig
    torch.manual_seed(0)
    return InceptionI3d(I3DConfig.tiny()).eval(), ESResNeXtFBSP(AudioCLIPConfig.tiny()).eval()


# --- the protocols ------------------------------------------------------------------------------------------------

def test_v1_holds_every_choice_of_the_reference_evaluation():
    "spec §5.1-§5.5: 96 windows of 20 frames at 10 fps per set, seed 42, batches of 8, 80000 samples at 44.1 kHz, ..."
    want = dict(windows="reference-10fps", window_fps=10, window_frames=20, n_items=96, shuffle_seed=42, batch_size=8,
                pixel_round_trip=True, audio_rate=44100, audio_samples=80000, audioclip_batch_stats=True,
                audioclip_int16_input=False, fvd_sqrt="svd", fad_sqrt="svd", kvd_dtype="float32", i3d_bn_eps=1e-5,
                fad_scale=1000.0)
    assert {k: getattr(V1, k) for k in want} == want
    # v2 fixes the quirks and keeps what both share (44.1 kHz, batches of 8, FAD x1000)
    assert (V2.windows, V2.n_items, V2.shuffle_seed, V2.pixel_round_trip, V2.audio_samples) == ("native", None, None, False, None)
    assert (V2.audio_rate, V2.batch_size, V2.fad_scale, V2.i3d_bn_eps) == (44100, 8, 1000.0, 1e-3)
    assert E.get_protocol("v1") is V1 and E.get_protocol(V2) is V2
    assert E.protocol_deviations(replace(V1, name="mine", batch_size=4)) == {"batch_size": (8, 4)}   # the name is not one


# --- the frames each item sees ------------------------------------------------------------------------------------

def _torchvision_windows(n_frames, fps, new_fps=10, length=20):
    "torchvision VideoClips' resampling (`_resample_video_idx`), restated: every step-th frame for an integer step."
    step = fps / new_fps
    if float(step).is_integer(): idx = list(range(0, n_frames, int(step)))
    else:
        n = math.floor(n_frames * new_fps / fps)
        idx = [int(v) for v in np.floor(np.arange(n, dtype=np.float32) * np.float32(step))]
    return [idx[s:s + length] for s in range(len(idx) - length + 1)]

@pytest.mark.parametrize("n_frames, fps, n_windows", [(20, 4.0, 31), (9, 4.0, 3), (8, 4.0, 1), (7, 4.0, 0), (41, 20.0, 2), (40, 20.0, 1)])
def test_reference_windows_resample_as_torchvision_does(n_frames, fps, n_windows):
    w = E.reference_windows(n_frames, fps)
    assert w.shape == (n_windows, 20)
    assert w.tolist() == _torchvision_windows(n_frames, fps)
    if (n_frames, fps) == (20, 4.0):          # spec §5.2, written out
        assert w[0].tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5, 6, 6, 6, 7, 7]
        assert w[30].tolist()[-4:] == [18, 18, 19, 19] and w[30, 0] == 12

def test_the_pixel_round_trip_lowers_values_1_to_63_by_one():
    "spec §5.3/§8.10: uint8 -> x/127.5-1 -> uint8((x+1)*127.5) in float32, truncating."
    v = torch.arange(256, dtype=torch.uint8).repeat(3, 1)
    want = [x - 1 if 1 <= x <= 63 else x for x in range(256)]
    out = E.round_trip_pixels(v)
    assert out.dtype == torch.uint8 and out.tolist() == [want] * 3

def test_window_frames_takes_the_protocols_rate_and_length():
    assert E.window_frames(20, 4.0, replace(V1, window_frames=5)).tolist() == _torchvision_windows(20, 4.0, 10, 5)
    assert E.window_frames(20, 4.0, replace(V1, window_fps=8)).tolist() == _torchvision_windows(20, 4.0, 8, 20)
    assert E.window_frames(20, 4.0, V2).tolist() == [list(range(20))]


# --- which items are drawn ----------------------------------------------------------------------------------------

def _reference_draw(nw_gen, nw_ref, n=96, bs=8):
    """spec §5.1/§5.2: global window indices video by video, `random.seed(42)`, the generated list shuffled, then the
    reference list on the same state; batches of 8 over each, the loader started again until >= n were collected."""
    def items(nw): return [(c, w) for c, k in enumerate(nw) for w in range(k)]
    random.seed(42)
    g = list(range(sum(nw_gen))); random.shuffle(g)
    r = list(range(sum(nw_ref))); random.shuffle(r)
    def batches(order, its):
        out, got = [], 0
        while got < n:
            for i in range(0, len(order), bs):
                out.append([its[j] for j in order[i:i + bs]]); got += len(out[-1])
                if got >= n: break
        return out
    return batches(g, items(nw_gen)), batches(r, items(nw_ref))

@pytest.mark.parametrize("nw_gen, nw_ref", [([31] * 4, [31] * 2), ([31, 0, 31, 31], [31] * 5)])
def test_v1_draws_the_reference_items_in_the_reference_order(nw_gen, nw_ref):
    gb, rb = E.select_items(nw_gen, nw_ref, V1)
    want_g, want_r = _reference_draw(nw_gen, nw_ref)
    assert (gb, rb) == (want_g, want_r)
    flat = [it for b in want_r for it in b]
    assert E.used_items(rb, 96) == flat[:96] and E.used_items(gb, 96) == [it for b in want_g for it in b][:96]
    if nw_gen[1] == 0: assert not any(c == 1 for b in gb for c, _ in b)     # a skipped clip (0 windows): no item

def test_a_short_set_starts_the_loader_over_without_cutting_its_batches():
    "62 windows: batches 8 x 7 and 6, then from the start again: 13 batches (102 items), of which the first 96 count."
    _, rb = E.select_items([31] * 4, [31] * 2, V1)
    assert [len(b) for b in rb] == [8] * 7 + [6] + [8] * 5
    order = [it for b in rb[:8] for it in b]
    assert sorted(order) == [(c, w) for c in range(2) for w in range(31)]
    assert E.used_items(rb, 96) == order + order[:34]
    g2, _ = E.select_items([1] * 11, [1] * 3, V2)                 # v2: every clip once, in order, no repeat
    assert g2 == [[(c, 0) for c in range(8)], [(c, 0) for c in range(8, 11)]]
    assert E.used_items(g2, None) == [(c, 0) for c in range(11)]


# --- audio --------------------------------------------------------------------------------------------------------

def test_read_audio_44k_is_16_bit_over_32768_with_left_first(tmp_path):
    from savgbench.io import write_clip
    n = 44100
    k_left = (np.arange(n) % 2000).astype(np.float64) + 100      # the int16 values to store (write_clip: round(x * 32767))
    k_right = -((np.arange(n) * 7) % 3000).astype(np.float64) - 50
    video = np.zeros((4, 16, 16, 3), np.uint8)
    p = write_clip(tmp_path / "a.mp4", video, np.stack([k_left, k_right]) / 32767, fps=4, sample_rate=44100, audio_codec="pcm")
    a = E.read_audio_44k(p)
    assert a.dtype == np.float32 and a.shape == (2, n)
    assert np.array_equal(a[0], (k_left / 32768).astype(np.float32)) and np.array_equal(a[1], (k_right / 32768).astype(np.float32))

def test_read_audio_44k_resamples_a_whole_5_s_clip_to_44100_hz(clips):
    _, gen, _ = clips
    assert E.read_audio_44k(gen[0].path).shape == (2, 5 * 44100)        # the resampler's tail included


# --- the scan -----------------------------------------------------------------------------------------------------

def test_a_clip_of_another_format_is_a_failure_that_the_set_identity_leaves_out(tmp_path, clips):
    import shutil
    from savgbench.io import write_clip
    root, _, _ = clips
    for p in sorted((root / "ref").glob("*.mp4")): shutil.copy(p, tmp_path / p.name)
    before = E.set_identity(E.scan_clips(tmp_path, "ref"))
    rng = np.random.default_rng(0)
    write_clip(tmp_path / "z_8fps.mp4", rng.integers(0, 255, (40, 256, 256, 3), dtype=np.uint8),
               rng.uniform(-0.1, 0.1, (2, 80000)).astype(np.float32), fps=8, audio_codec="pcm")
    es = E.scan_clips(tmp_path, "ref")
    bad = [e for e in es if e.path.name == "z_8fps.mp4"][0]
    assert bad.error is not None and not bad.unreadable and bad.n_frames == 0
    assert E.set_identity(es) == before                             # 2 clips, the same hashes


# --- the feature cache ----------------------------------------------------------------------------------------------

def test_a_sets_identity_is_its_clips_whatever_their_order():
    import hashlib
    es = [E.ClipEntry(f"c{i}.mp4", "ref", sha256=h) for i, h in enumerate(("b" * 64, "a" * 64, "c" * 64))]
    es.append(E.ClipEntry("bad.mp4", "ref", sha256="d" * 64, error="not a clip"))
    h = lambda xs: hashlib.sha256("\n".join(xs).encode()).hexdigest()
    assert E.set_identity(es) == dict(clips=3, sha256=h(["a" * 64, "b" * 64, "c" * 64]), order_sha256=h(["b" * 64, "a" * 64, "c" * 64]))
    rev = E.set_identity(es[::-1])
    assert rev["sha256"] == E.set_identity(es)["sha256"] and rev["order_sha256"] != E.set_identity(es)["order_sha256"]

def test_a_damaged_cache_entry_is_recomputed_not_raised(tmp_path):
    c = E.FeatureCache(tmp_path)
    c.put("k", np.arange(4.0))
    (f,) = list(tmp_path.rglob("*.npy"))
    f.write_bytes(b"\x93NUMPY garbage")
    assert c.get("k") is None

def test_an_empty_cache_entry_is_recomputed_not_raised(tmp_path):
    "np.load raises EOFError for an empty file (a disk that filled up, a copy cut short): recomputed, not a stopped run."
    c = E.FeatureCache(tmp_path)
    c.put("k", np.arange(4.0))
    (f,) = list(tmp_path.rglob("*.npy"))
    f.write_bytes(b"")
    assert c.get("k") is None

def _frames(path, idx, round_trip):
    "The frames of a window as spec §5.3 has them: uint8, values 1..63 one lower after the float32 round trip."
    from savgbench.io import read_clip_video
    v = read_clip_video(path)[np.asarray(idx)].astype(np.int64)
    if round_trip: v = np.where((v >= 1) & (v <= 63), v - 1, v)
    return v.astype(np.uint8)

def test_i3d_items_are_the_protocols_frames(clips, monkeypatch):
    "v1: each window's 20 resampled frames, round-tripped; v2: the clip's 20 frames as decoded, untouched."
    import savgbench.metrics.i3d as I3D
    _, gen, _ = clips
    seen = []
    monkeypatch.setattr(I3D, "i3d_logits", lambda m, v, batch_size=8: seen.append(v.numpy().copy()) or np.zeros((len(v), 4)))
    for P, its in ((V1, [(0, 0), (1, 30), (2, 17)]), (V2, [(0, 0), (1, 0), (2, 0)])):
        seen.clear()
        E.extract_i3d(None, gen, [its], P, E.FeatureCache(None), "t")
        idx = lambda w: _torchvision_windows(20, 4.0)[w] if P is V1 else list(range(20))
        want = np.stack([_frames(gen[c].path, idx(w), P.pixel_round_trip) for c, w in its])
        assert len(seen) == 1 and seen[0].dtype == np.uint8 and np.array_equal(seen[0], want), P.name

def test_cached_i3d_features_are_kept_per_window_and_per_round_trip(tmp_path, clips, nets):
    _, gen, _ = clips
    i3d, _ = nets
    batches = [[(0, 0), (0, 20), (1, 5)]]
    fresh = E.extract_i3d(i3d, gen, batches, V1, E.FeatureCache(None), "t")
    cache = E.FeatureCache(tmp_path)
    E.extract_i3d(i3d, gen, batches, V1, cache, "t")
    t = {}
    again = E.extract_i3d(i3d, gen, batches, V1, cache, "t", timings=t)
    assert "i3d_s" not in t                                          # all read back
    for it in fresh: np.testing.assert_array_equal(again[it], fresh[it])
    t = {}
    E.extract_i3d(i3d, gen, batches, replace(V1, pixel_round_trip=False), cache, "t", timings=t)
    assert "i3d_s" in t                                              # other pixels: computed, not read

def _audio(path, start, n):
    "spec §5.4: the 44.1 kHz audio from `start`, its first n samples, zero-padded at the end."
    a = E.read_audio_44k(path)[:, start:start + n]
    return np.pad(a, ((0, 0), (0, n - a.shape[1])))

def test_audioclip_v1_embeds_each_batch_of_8_together_from_each_windows_span(clips, nets):
    """Each window's audio starts at its first frame's time (frame / 4 fps x 44100), the first 80000 samples, and its
    embedding is made with batch statistics over its own batch of the draw."""
    from savgbench.metrics.audioclip import audioclip_embed
    _, gen, _ = clips
    _, ac = nets
    P = replace(V1, n_items=12)
    gb, _ = E.select_items([31] * 3, [31], P)                          # 2 batches of 8
    got = E.extract_audioclip(ac, gen, gb, P, E.FeatureCache(None), "t")
    assert len(got) == 16
    for b in gb:
        audio = np.stack([_audio(gen[c].path, _torchvision_windows(20, 4.0)[w][0] * 11025, 80000) for c, w in b])
        want = audioclip_embed(ac, audio, batch_size=len(b), batch_stats=True, int16_input=False)
        for j in range(len(b)): np.testing.assert_allclose(got[(tuple(b), j)], want[j], rtol=1e-4, atol=1e-5)

def test_audioclip_v2_embeds_the_whole_clip_and_pads_a_span_past_the_end(clips, nets):
    from savgbench.metrics.audioclip import audioclip_embed
    _, gen, _ = clips
    _, ac = nets
    got = E.extract_audioclip(ac, gen, [[(0, 0), (2, 0)]], V2, E.FeatureCache(None), "t")
    want = audioclip_embed(ac, np.stack([_audio(gen[c].path, 0, 220500) for c in (0, 2)]), batch_stats=False, int16_input=True)
    np.testing.assert_allclose(got[((0, 0),), 0], want[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[((2, 0),), 0], want[1], rtol=1e-4, atol=1e-5)
    # a window near the end with more samples than remain: its tail is silence (starts at frame 12: 132300 + 100000)
    P = replace(V1, audio_samples=100000, audioclip_batch_stats=False)
    got = E.extract_audioclip(ac, gen, [[(1, 30)]], P, E.FeatureCache(None), "t")
    want = audioclip_embed(ac, _audio(gen[1].path, 12 * 11025, 100000)[None], batch_stats=False, int16_input=False)
    np.testing.assert_allclose(got[((1, 30),), 0], want[0], rtol=1e-4, atol=1e-5)

def test_v2_audio_is_5_s_whatever_the_clips_audio_length(tmp_path, clips, monkeypatch):
    "A clip whose audio ends early (4.94 s) is read as 5 s at 44.1 kHz, its missing end silence (220500 samples)."
    import savgbench.metrics.audioclip as AC
    from savgbench.io import read_clip, write_clip
    _, gen, _ = clips
    c = read_clip(gen[0].path)
    write_clip(tmp_path / "short.mp4", c.video, c.audio[:, :79000], audio_codec="pcm")
    (e,) = E.scan_clips(tmp_path, "gen")
    assert e.error is None and e.audio_seconds < 4.95
    seen = []
    monkeypatch.setattr(AC, "audioclip_embed", lambda m, a, **k: seen.append(a) or np.zeros((len(a), 4)))
    E.extract_audioclip(None, [e], [[(0, 0)]], V2, E.FeatureCache(None), "t")
    assert seen[0].shape == (1, 2, 220500)
    np.testing.assert_array_equal(seen[0][0], _audio(e.path, 0, 220500))
    assert not seen[0][0, :, 218000:].any()

def test_cached_audioclip_embeddings_are_kept_per_audio_option(tmp_path, clips, nets):
    _, gen, _ = clips
    _, ac = nets
    P = replace(V1, audioclip_batch_stats=False, audio_samples=20000)
    cache, items = E.FeatureCache(tmp_path), [[(0, 3), (1, 4)]]
    E.extract_audioclip(ac, gen, items, P, cache, "t")
    for other in (P, replace(P, audio_samples=30000), replace(P, audioclip_int16_input=True)):
        t = {}
        E.extract_audioclip(ac, gen, items, other, cache, "t", timings=t)
        assert ("audioclip_s" in t) == (other is not P), other


# --- what evaluate computes and records ---------------------------------------------------------------------------

def test_evaluate_scores_n_items_per_set_with_the_protocols_options_and_records_them(clips, nets, monkeypatch, tmp_path):
    """The distances get exactly n_items features per set (v1: 12 of 2 AudioCLIP batches of 8; v2: a clip each), with
    the protocol's square root and KVD dtype, FAD x1000; the JSON records every option, the counts and the eps."""
    import savgbench.metrics.stats as S
    root, _, _ = clips
    i3d, ac = nets
    calls = []
    monkeypatch.setattr(S, "frechet_distance_from_stats", lambda a, b, sqrt: calls.append(("fd", a.n, b.n, sqrt)) or 2.5)
    monkeypatch.setattr(S, "kernel_distance", lambda a, b, dtype: calls.append(("kd", len(a), len(b), np.dtype(dtype))) or 0.5)
    kw = dict(metrics=("fvd", "kvd", "fad"), i3d=i3d, audioclip=ac, use_cache=False, progress=False, verbose=False)
    P = replace(V1, name="v1-12", n_items=12)
    r = E.evaluate(root / "gen", root / "ref", protocol=P, out=tmp_path / "r.json", **kw)
    assert calls == [("fd", 12, 12, "svd"), ("kd", 12, 12, np.dtype("float32")), ("fd", 12, 12, "svd")]
    assert r["metrics"] == dict(fvd=2.5, kvd=0.5, fad=2500.0)
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["protocol"] == json.loads(json.dumps(asdict(P)))        # every option, not the name alone
    assert saved["protocol_deviations_from_v1"] == {"n_items": [96, 12]}
    assert saved["n"] == dict(gen_clips=3, ref_clips=2, gen_failed=0, ref_failed=0, gen_unreadable=0,
                              gen_items=12, ref_items=12, gen_unique_items=12, ref_unique_items=12)
    assert saved["environment"]["processes"] == 1
    assert saved["weights"]["i3d"]["bn_eps"] == 1e-5 and saved["weights"]["i3d"]["state_dict_sha256"]
    calls.clear()
    r = E.evaluate(root / "gen", root / "ref", protocol=replace(V2, name="v2-eps", i3d_bn_eps=1e-5), **kw)
    assert calls == [("fd", 3, 2, "eigen"), ("kd", 3, 2, np.dtype("float64")), ("fd", 3, 2, "eigen")]
    assert {k: r["n"][k] for k in ("gen_items", "ref_items", "gen_unique_items", "ref_unique_items")} == \
        dict(gen_items=3, ref_items=2, gen_unique_items=3, ref_unique_items=2)

def test_repeated_items_are_counted_once_in_the_unique_counts(clips, nets, monkeypatch):
    root, _, _ = clips
    i3d, _ = nets
    rng = np.random.default_rng(0)                      # (the counts come before the features: any features will do)
    monkeypatch.setattr(E, "extract_i3d", lambda m, es, batches, *a, **k: {it: rng.normal(size=8) for b in batches for it in b})
    P = replace(V1, name="v1-100", n_items=100)                           # 3 x 31 = 93 and 2 x 31 = 62 windows
    r = E.evaluate(root / "gen", root / "ref", protocol=P, metrics=("kvd",), i3d=i3d,
                   use_cache=False, progress=False, verbose=False)
    assert {k: r["n"][k] for k in ("gen_items", "ref_items", "gen_unique_items", "ref_unique_items")} == \
        dict(gen_items=100, ref_items=100, gen_unique_items=93, ref_unique_items=62)
    assert any("generated set: 93 distinct items fill the protocol's 100" in w for w in r["warnings"]), r["warnings"]
    assert any("reference set: 62 distinct items fill the protocol's 100" in w for w in r["warnings"]), r["warnings"]


# --- results files and the table ----------------------------------------------------------------------------------

def _minimal(**kw):
    return dict(gen_dir="/g", protocol=dict(name="v2"), metrics=dict(fvd=1.0), **kw)

@pytest.mark.parametrize("part", ["n", "environment", "skipped", "spatial_detail", "weights", "sets"])
def test_read_results_refuses_a_file_whose_records_are_not_objects(tmp_path, part):
    "A record that is not an object is named (weights and sets: their entries were read first, an AttributeError)."
    if part in ("weights", "sets"):                      # and each of their entries must be an object (sets': or null)
        f = tmp_path / "e.json"
        f.write_text(json.dumps(_minimal(**{part: {"a": {}, "b": 3, "c": None}})))
        want = "weights.b, weights.c" if part == "weights" else "sets.b"
        with pytest.raises(SAVGBenchError, match=f"\\(found {want}\\)"): E.read_results(f)
    f = tmp_path / "r.json"
    f.write_text(json.dumps(_minimal(**{part: "x"})))
    with pytest.raises(SAVGBenchError, match=f"not objects \\(dicts\\) there \\(found {part}"): E.read_results(f)
    f.write_text(json.dumps(_minimal(**{part: {}})))
    assert E.read_results(f)["gen_dir"] == "/g"

def test_order_matters_for_any_of_v1s_draw_options():
    assert E.order_matters(asdict(V1)) and not E.order_matters(asdict(V2))
    base = asdict(V2)
    assert E.order_matters({**base, "audioclip_batch_stats": True})      # batch-mates follow the order
    assert E.order_matters({**base, "n_items": 96})

def test_results_with_another_number_of_reference_items_do_not_compare():
    base = dict(gen_dir="/a", reference_dir="/r", protocol=asdict(V2), metrics=dict(fvd=1.0), skipped={},
                n=dict(gen_clips=4, ref_clips=4, gen_items=4, ref_items=4),
                sets=dict(ref=dict(clips=4, sha256="2" * 64, order_sha256="3" * 64)),
                environment=dict(media="m", audio_read="a"), weights={"i3d": dict(name="i", sha256="4" * 64)})
    other = {**base, "gen_dir": "/b", "n": {**base["n"], "ref_items": 5}}
    t = E.compare_results([base, other])
    assert t.notes == ["items differs, so their FVD do not compare: a: 4 generated, 4 reference | b: 4 generated, 5 reference"]
    assert not t.comparable
