"""Measure a SELD checkpoint the way `savgbench/assets/seld_demo.json` reports the built-in demo model, and write
that JSON (the model card) next to it.

Usage:
  python tools/seld_model_card.py CHECKPOINT --out CARD.json [--command "savgbench train-seld ..."]
         [--dataset-dir DIR]     # a built synthetic dataset to score on as well (video_dev/, metadata_dev/)
         [--trained-on TEXT]

Held-out data (seeds the demo model never saw):
  * `scene_heldout_scores(model, 4, 30, seed=1)`: every clip the builder keeps from the 4 synthetic 30 s recordings of
    `savgbench synth-starss --seed 1`, made in memory (no AAC);
  * with --dataset-dir: the AAC mp4 clips of a dataset built from those recordings
    (`python -c "from savgbench.demo import run_demo; run_demo(DIR, recordings=4, seconds=30, seed=1, evaluate_clips=False)"`),
    read as the reference decodes them;
  * `synthetic_heldout_scores(model, 100, seed=20260101)`: 100 scenes of the SELD notebook's own generator;
  * sanity checks: a source moving from +45 to -45 degrees, the same with the channels swapped, digital silence.
"""
import argparse, hashlib, json, sys
from pathlib import Path
import numpy as np
import torch

from savgbench.seld.model import SELDNet
from savgbench.seld.infer import predict_seld, seld_dir
from savgbench.seld.evaluate import scene_heldout_scores, synthetic_heldout_scores, evaluate_seld_dir
from savgbench.seld.train import synthetic_scene


def summary(s: dict) -> dict:
    "Pooled and per-class numbers of an `evaluate_seld` result, rounded for the card."
    pc = s["per_class"].set_index("class")
    out = {"ER": round(float(s["ER"]), 4), "F": round(float(s["F"]), 4), "LE_px": round(float(s["LE"]), 2),
           "LR": round(float(s["LR"]), 4), "ER_insertions": round(float(s["ER_I"]), 4),
           "ER_deletions": round(float(s["ER_D"]), 4), "n_clips": int(s["n_clips"]), "per_class": {}}
    for name, r in pc.iterrows():
        out["per_class"][name] = {"F": round(float(r["F"]), 4), "LE_px": round(float(r["LE"]), 2),
                                  "LR": round(float(r["LR"]), 4), "N_ref": int(r["N_ref"])}
    return out


def sanity_checks(model) -> dict:
    out = {}
    for cls, name, k in ((0, "speech", 0), (9, "instrument", 1)):
        a, _ = synthetic_scene(np.random.default_rng(5), 5.0, azimuth=np.array([45.0, -45.0]), cls=cls)
        rows, swapped = predict_seld([a, a[::-1].copy()], model)
        r, s = rows[rows.cls == k], swapped[swapped.cls == k]
        m = r.merge(s, on="frame", suffixes=("", "_s"))
        out[name] = {"frames": int(len(r)), "corr_frame_x": round(float(np.corrcoef(r.frame, r.x)[0, 1]), 3),
                     "mirror_mean_abs_px": round(float(np.abs(m.x + m.x_s - 256).mean()), 2)}
    out["digital_silence_rows"] = int(len(predict_seld([np.zeros((2, 80000), np.float32)], model)[0]))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", default=None, help="the training command, recorded in the card")
    ap.add_argument("--trained-on", default=None, help="where and how long it trained, recorded in the card")
    ap.add_argument("--dataset-dir", default=None, help="built synthetic dataset (seed 1) to score the AAC clips of")
    a = ap.parse_args(argv)
    path = Path(a.checkpoint)
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = SELDNet.from_checkpoint(path).eval()
    card = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": path.stat().st_size,
            "config": ck["config"], "train_config": ck.get("train_config"), "steps": ck.get("step"),
            "swa_snapshots": ck.get("swa_snapshots"), "parameters": sum(p.numel() for p in model.parameters())}
    if a.command: card["training_command"] = a.command
    if a.trained_on: card["trained_on"] = a.trained_on
    card["heldout_scenes"] = {"data": "every clip the builder keeps from the 4 synthetic 30 s recordings of seed 1, "
                                      "made in memory: savgbench.seld.evaluate.scene_heldout_scores(model, 4, 30, seed=1)",
                              **summary(scene_heldout_scores(model, 4, 30.0, seed=1))}
    if a.dataset_dir:
        d = Path(a.dataset_dir)
        pred = d / "seld_card_pred"
        seld_dir(d / "video_dev", pred, model=model)
        card["heldout_dataset_mp4"] = {"data": f"the AAC mp4 dev clips of a dataset built from the seed-1 recordings "
                                               f"(savgbench seld + savgbench eval-seld on {d.name}/video_dev)",
                                       **summary(evaluate_seld_dir(pred, d / "metadata_dev"))}
    card["heldout_generator"] = {"data": "100 scenes of the SELD notebook's generator: "
                                         "synthetic_heldout_scores(model, 100, seed=20260101)",
                                 **summary(synthetic_heldout_scores(model, 100, seed=20260101))}
    card["checks"] = sanity_checks(model)
    Path(a.out).write_text(json.dumps(card, indent=1) + "\n")
    print(json.dumps({k: v for k, v in card.items() if k.startswith("heldout") or k == "checks"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
