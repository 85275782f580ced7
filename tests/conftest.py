import math
from fractions import Fraction
from pathlib import Path
import signal
import numpy as np, pandas as pd, pytest

# A background job of a non-interactive shell (`bash tools/test.sh &`, nohup) starts with Ctrl-C ignored, and every
# process it starts inherits that, so the tests that press Ctrl-C would see a run that rightly stays deaf to it. They
# test the behaviour of a command run from a terminal: give this process, and so the commands it starts, the default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN: signal.signal(signal.SIGINT, signal.default_int_handler)

@pytest.fixture
def kill_at_end():
    """Call it with a process started in a session of its own: if the process still runs when the test ends (a failed
    test), it is killed with its process group, data workers included, instead of running on."""
    import contextlib, os
    procs = []
    yield procs.append
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError): os.killpg(p.pid, signal.SIGKILL)
            p.wait(30)

from savgbench.io import write_foa, write_starss_metadata, write_clip
from savgbench.geometry import equirect_position

def make_recording(root, rows, seconds=7.0, sources=((20, 0, 0.004),), name="fold3_room01_mix001",
                   subset="dev-train-synth", size=(480, 240), seed=1):
    """A hand-made STARSS23-format recording: FOA with a tone per (azimuth, elevation, amplitude) source,
    label `rows` (frame, cls, source, azimuth, elevation) and a static equirectangular video with a small disc
    at each source's position."""
    import cv2
    root = Path(root); rng = np.random.default_rng(seed)
    n = int(seconds * 24000); t = np.arange(n) / 24000
    foa = 1e-4 * rng.standard_normal((4, n))
    W, H = size
    frame = np.full((H, W, 3), 60, np.uint8)
    for i, (az, el, amp) in enumerate(sources):
        s = amp * np.sin(2*np.pi*(300 + 50*i)*t)
        a, e = np.deg2rad(az), np.deg2rad(el)
        foa += np.stack([s, s*np.sin(a)*np.cos(e), s*np.sin(e), s*np.cos(a)*np.cos(e)])
        col, row = equirect_position(az, el, W, H)
        cv2.circle(frame, (round(float(col)*16), round(float(row)*16)), 4*16, (255, 255, 255), -1, cv2.LINE_AA, 4)
    write_foa(root/f"foa_dev/{subset}/{name}.wav", foa.astype(np.float32))
    df = pd.DataFrame(rows, columns=["frame", "cls", "source", "azimuth", "elevation"]).sort_values("frame", kind="stable")
    write_starss_metadata(root/f"metadata_dev/{subset}/{name}.csv", df)
    fps = Fraction(30000, 1001)
    write_clip(root/f"video_dev/{subset}/{name}.mp4", np.repeat(frame[None], math.ceil(seconds * fps), 0),
               np.zeros((2, 16000), np.float32), fps=fps)
    return root

@pytest.fixture
def recording_factory(tmp_path):
    def make(rows, **kw): return make_recording(tmp_path/"starss", rows, **kw)
    return make
