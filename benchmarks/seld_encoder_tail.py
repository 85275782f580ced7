"""How much do SELD rows move when a clip's AAC audio is read with the encoder's padding at the end (as the reference's
librosa/audioread/FFmpeg command line reads it) against the declared 5 s only?

Writes synthetic stereo scenes as SAVGBench clips (AAC), reads each both ways (`read_seld_audio(encoder_tail=...)`),
runs the built-in demo SELD model on both and prints the lengths, how many rows appear in one reading only, the largest
change of x and the label frames that differ. With an `ffmpeg` command on PATH it also checks that the padded reading
is sample for sample what `ffmpeg -f s16le` gives.
Usage: python benchmarks/seld_encoder_tail.py [N_CLIPS]
"""
import shutil, subprocess, sys, tempfile
from pathlib import Path
import numpy as np
from savgbench.io import write_clip
from savgbench.seld.train import synthetic_scene
from savgbench.seld.features import read_seld_audio
from savgbench.seld.infer import load_seld_model, predict_seld

def main(n=24):
    rng, model = np.random.default_rng(3), load_seld_model("demo", "cpu")
    tail, plain, cli = [], [], []
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            a, _ = synthetic_scene(rng, p_empty=0.0)
            p = Path(d) / f"c{i}.mp4"
            write_clip(p, np.zeros((20, 256, 256, 3), np.uint8), a.astype(np.float32))
            tail.append(read_seld_audio(p)); plain.append(read_seld_audio(p, encoder_tail=False))
            if shutil.which("ffmpeg"):
                raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(p), "-map", "0:a", "-f", "s16le", "-ac", "2", "-"],
                                     capture_output=True, check=True).stdout
                cli.append(np.frombuffer(raw, np.int16).reshape(-1, 2).T / 32768.0)
    print(f"samples read: with the padding {sorted({x.shape[1] for x in tail})}, "
          f"declared duration {sorted({x.shape[1] for x in plain})}")
    if cli:
        same = all(c.shape == t.shape and np.array_equal(c, t) for c, t in zip(cli, tail))
        print(f"ffmpeg command line ({len(cli)} clips): {sorted({c.shape[1] for c in cli})} samples; "
              f"equal to the padded reading: {same}")
    else: print("no ffmpeg command on PATH: the comparison with it is skipped")
    r_tail, r_plain = predict_seld(tail, model), predict_seld(plain, model)
    rows = only = 0; dx = 0.0; frames = set()
    for a, b in zip(r_tail, r_plain):
        m = a.merge(b, on=["frame", "cls"], how="outer", suffixes=("_t", "_p"), indicator=True)
        rows += len(m); one = m[m._merge != "both"]; only += len(one); frames |= set(one.frame.tolist())
        both = m[m._merge == "both"]
        if len(both):
            d = (both.x_t - both.x_p).abs(); dx = max(dx, float(d.max())); frames |= set(both.frame[d > 1e-6].tolist())
    print(f"{n} clips, {rows} rows: {only} in one reading only, x moves by up to {dx:.2f} px; "
          f"label frames that differ: {sorted(int(f) for f in frames)}")

if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 24)
