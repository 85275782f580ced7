"SceneCrops (SELD training clips cut from synthetic recordings in memory) against the real builder, and the mixing source."
from pathlib import Path
import numpy as np, pandas as pd, pytest

from savgbench.seld.train import SceneCrops, MixedCrops, SyntheticCrops, ClipCrops, load_clip_dataset, label_tracks
from savgbench.seld.features import CROP_SAMPLES
from savgbench.synth import synth_starss
from savgbench.build import build_dataset, clip_name
from savgbench.io import read_clip_audio_int16, read_clip_metadata
from savgbench.core import DatasetError


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    "One synthetic 12 s recording written to disk and built with PCM audio, and the same recording made in memory."
    tmp = tmp_path_factory.mktemp("scenes")
    synth_starss(tmp / "starss", recordings=1, seconds=12, seed=5, video_size=(480, 240), progress=False)
    build_dataset(tmp / "starss", tmp / "ds", "dev", audio_codec="pcm", progress=False, verbose=False)
    return tmp / "ds", SceneCrops(recordings=1, seconds=12, seed=5, progress=False)


def test_scene_windows_are_the_builders_clips(built):
    ds, sc = built
    names = {clip_name("fold3_room01_mix001", d, s) for _, s, d, _ in sc.windows}
    on_disk = {p.stem for p in (ds / "video_dev").glob("*.mp4")}
    assert len(on_disk) > 20 and names == on_disk


def test_scene_audio_and_labels_equal_the_built_clips(built):
    ds, sc = built
    for k in np.linspace(0, len(sc) - 1, 6).round().astype(int):
        _, s, d, (cat, x) = sc.windows[k]
        name = clip_name("fold3_room01_mix001", d, s)
        disk = read_clip_audio_int16(ds / "video_dev" / f"{name}.mp4")
        mine = sc.clip(k)
        assert disk.shape == mine.shape == (2, 80000)
        # the PCM writer stores round(x * 32767) and the reference decoder reads int16 / 32768
        requant = np.round(mine * 32767) / 32768
        assert np.abs(disk - requant).max() <= 1 / 32768 and (disk == requant).mean() > 0.999   # float32 ties aside
        assert np.abs(disk).max() > 1e-3
        cat_d, x_d = label_tracks(read_clip_metadata(ds / "metadata_dev" / f"{name}.csv"), 51)
        np.testing.assert_array_equal(cat, cat_d); np.testing.assert_array_equal(x, x_d)


def test_scene_crops_match_clip_crops_of_the_built_dataset(built):
    "The same random stream draws the same crops (within 16-bit rounding) from memory and from the mp4 files."
    ds, sc = built
    order = {clip_name("fold3_room01_mix001", d, s): k for k, (_, s, d, _) in enumerate(sc.windows)}
    cc = load_clip_dataset(ds, "video_dev/*.mp4", progress=False)
    perm = [order[Path(n).stem] for n in cc.names]                # ClipCrops index -> SceneCrops index
    sc.windows = [sc.windows[k] for k in perm]                      # same clip order in both sources
    a, b = cc.sample(8, np.random.default_rng(3)), sc.sample(8, np.random.default_rng(3))
    assert a[0].shape == b[0].shape == (8, 2, CROP_SAMPLES)
    assert np.abs(a[0] - b[0]).max() <= 2 / 32768                  # 16-bit grids of the file (x 32767) and the crop (x 32768)
    np.testing.assert_array_equal(a[1], b[1]); np.testing.assert_array_equal(a[2], b[2])
    assert np.all(np.round(b[0] * 32768) == b[0] * 32768)          # crops are on the 16-bit grid


def test_mixed_crops_proportions_and_errors():
    sc = ClipCrops([np.zeros((2, 40000), np.float32)], [pd.DataFrame({"frame": [0], "cls": [0], "x": [9.0]})])
    mix = MixedCrops([sc, SyntheticCrops()], [0.75, 0.25])
    w, c, x = mix.sample(16, np.random.default_rng(0))
    assert w.shape == (16, 2, CROP_SAMPLES) and c.shape == x.shape == (16, 2, 128)
    n_silent = int((np.abs(w).max(axis=(1, 2)) == 0).sum())       # crops from the all-zero clip
    assert 6 <= n_silent <= 16
    # the shares, on 200 cheap crops: weights 3 : 1 between a silent clip and a loud one (binomial mean 150, sd 6.1)
    labelled = lambda x: [pd.DataFrame({"frame": range(25), "cls": 9, "x": x})]      # active in every frame
    quiet, loud = ClipCrops([np.zeros((2, 40000), np.float32)], labelled(9.0)), ClipCrops([np.ones((2, 40000), np.float32)], labelled(99.0))
    w, c, x = MixedCrops([quiet, loud], [3, 1]).sample(200, np.random.default_rng(1))
    silent = np.abs(w).max(axis=(1, 2)) == 0
    assert 130 <= silent.sum() <= 170 and (np.abs(w[~silent]) == 1).all()
    assert (x[silent, 1].max(1) == 9).all() and (x[~silent, 1].max(1) == 99).all()      # targets go with their crops
    with pytest.raises(DatasetError, match="one non-negative weight per source"): MixedCrops([sc], [0.5, 0.5])
    with pytest.raises(DatasetError, match="one non-negative weight per source"): MixedCrops([sc, sc], [-1, 2])
    with pytest.raises(DatasetError, match="at least one recording"): SceneCrops(recordings=0, progress=False)


def test_scene_crops_made_in_parallel_equal_serial(monkeypatch):
    import savgbench.core
    pools, real_pool = [], savgbench.core.process_pool
    monkeypatch.setattr(savgbench.core, "process_pool", lambda n, *a, **k: pools.append(n) or real_pool(n, *a, **k))
    a = SceneCrops(recordings=2, seconds=8, seed=3, progress=False)
    assert pools == []
    b = SceneCrops(recordings=2, seconds=8, seed=3, workers=2, progress=False)
    assert pools == [2]                                             # the recordings were made by a pool of 2 processes
    assert len(a) == len(b) > 0 and a.dropped == b.dropped
    assert [(r, s, d) for r, s, d, _ in a.windows] == [(r, s, d) for r, s, d, _ in b.windows]
    for x, y in zip(a.foa16, b.foa16): np.testing.assert_array_equal(x, y)
    wa, ca, xa = a.sample(4, np.random.default_rng(1)); wb, cb, xb = b.sample(4, np.random.default_rng(1))
    np.testing.assert_array_equal(wa, wb); np.testing.assert_array_equal(ca, cb); np.testing.assert_array_equal(xa, xb)
