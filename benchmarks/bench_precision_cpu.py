"""Training step time of the joint model on a CPU under each mixed precision, the measurement behind
`train-joint --mixed-precision`'s default there ('no': bf16 autocast runs slower on a CPU).

    python benchmarks/bench_precision_cpu.py [--steps 60] [--batch-size 4] [--repeats 2]

Each precision trains the tiny preset for --steps steps on synthetic clips, --repeats times, alternating, so that a
slower machine state hits both; the fastest run of each is compared with that of 'no', measured in the same process.
"""
from __future__ import annotations
import argparse, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from savgbench.baselines.train import train_joint, TrainConfig, SyntheticClips


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args(argv)
    per_step = {"no": [], "bf16": []}
    for _ in range(a.repeats):
        for mp in per_step:
            with tempfile.TemporaryDirectory() as run:
                cfg = TrainConfig(preset="tiny", batch_size=a.batch_size, max_steps=a.steps, mixed_precision=mp,
                                  save_every=10 * a.steps, log_every=10 * a.steps)
                t = time.perf_counter()
                train_joint(SyntheticClips(8), run, cfg, progress=False)
                per_step[mp].append((time.perf_counter() - t) / a.steps)
    for mp, v in per_step.items():
        print(f"{mp:5s} " + " ".join(f"{s:.3f}" for s in v) + " s/step")
    print(f"bf16 / no (fastest runs): {min(per_step['bf16']) / min(per_step['no']):.2f}")


if __name__ == "__main__":
    main()
