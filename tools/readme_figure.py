"""Draw images/alignment_example.png for the README: one synthetic SAVGBench clip with its Spatial AV-Align evidence
(SELD rows of the built-in demo model, HOG person boxes, TP/FN bands, x-track).

    python tools/readme_figure.py CLIP.mp4 [OUT.png]

OUT.png defaults to alignment_example.png in the current folder; give images/alignment_example.png to replace the
README's figure.
"""
import sys
from pathlib import Path
import matplotlib; matplotlib.use("Agg")

from savgbench.io import read_clip
from savgbench.seld.infer import seld_files
from savgbench.detect import make_detector
from savgbench.align.viewer import ClipAlignment, plot_clip_alignment

clip_path = Path(sys.argv[1])
out = Path(sys.argv[2] if len(sys.argv) > 2 else "alignment_example.png")
clip = read_clip(clip_path)
table, _ = seld_files([clip_path], checkpoint="demo", progress=False)     # the built-in demo SELD model
seld = table[["frame", "cls", "x"]].to_numpy(float)
det = make_detector("hog")([clip_path], progress=False)[clip_path.stem]
ca = ClipAlignment(clip_path.stem, clip.video, seld, det, clip.audio)
fig = plot_clip_alignment(ca)
fig.savefig(out, dpi=90, bbox_inches="tight")
print(f"{out}: {len(seld)} SELD rows, score {ca.score}")
