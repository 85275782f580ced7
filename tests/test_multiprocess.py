"""Several training processes on one CPU machine (torch.distributed with gloo), started the way they are on GPUs:
`accelerate launch --multi_gpu --num_processes N ...`. Without GPUs accelerate needs ACCELERATE_USE_CPU=true to
give each process its rank (`accelerate launch --cpu` starts one process only)."""
import os, socket, subprocess, sys, textwrap
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def launch(tmp_path, args, nproc=2, check=True):
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(nproc),
           "--num_machines", "1", "--main_process_port", str(_free_port()), "--mixed_precision", "no",
           "--dynamo_backend", "no", *args]
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    if check: assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_joint_training_in_two_processes_keeps_replicas_in_sync(tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(textwrap.dedent("""
        import sys, torch
        from accelerate import Accelerator
        from savgbench.baselines.train import train_loop, joint_loss_fn, TrainConfig, SyntheticClips
        from savgbench.baselines.diffusion import GaussianDiffusion
        from savgbench.baselines.mmdiffusion import CoupledUNet, MMDiffusionConfig
        out = sys.argv[1]
        acc = Accelerator(mixed_precision="no")
        torch.manual_seed(0)                                    # the same initial weights in every process
        model = CoupledUNet(MMDiffusionConfig.tiny())
        cfg = TrainConfig(preset="tiny", batch_size=1, lr=1e-3, max_steps=3, mixed_precision="no", save_every=3, log_every=1)
        hist = train_loop(model, joint_loss_fn(GaussianDiffusion(1000)), SyntheticClips(8), cfg, out, accelerator=acc,
                          progress=False)
        torch.save({"world": acc.num_processes, "history": hist, "model": model.state_dict()}, f"{out}/rank{acc.process_index}.pt")
    """))
    launch(tmp_path, [str(worker), str(tmp_path / "run")])
    r0, r1 = (torch.load(tmp_path / "run" / f"rank{k}.pt", weights_only=False) for k in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["history"] != r1["history"]                       # each process trained on its own share of the batch
    torch.manual_seed(0)
    from savgbench.baselines.mmdiffusion import CoupledUNet, MMDiffusionConfig
    init = CoupledUNet(MMDiffusionConfig.tiny()).state_dict()
    moved = [k for k in init if init[k].is_floating_point() and not torch.equal(init[k], r0["model"][k])]
    assert len(moved) > 10
    for k in r0["model"]: assert torch.equal(r0["model"][k], r1["model"][k]), k   # gradients were all-reduced
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint_*.pt")) == ["checkpoint_3.pt"]
    from savgbench.baselines.train import read_train_log
    log = read_train_log(tmp_path / "run")                      # written once, with the means over both processes
    assert log["step"].tolist() == [1, 2, 3]
    import numpy as np
    np.testing.assert_allclose(log["loss"], (np.array(r0["history"]) + np.array(r1["history"])) / 2, rtol=1e-6)
    assert (log["samples_per_s"] > 0).all()


def test_seld_training_cli_in_two_processes(tmp_path):
    r = launch(tmp_path, ["-m", "savgbench", "train-seld", "--synthetic", "--preset", "tiny", "--steps", "4",
                          "--batch-size", "2", "--out", str(tmp_path / "seld")])
    assert r.stdout.count("seld_final.pt") == 1, r.stdout           # the run's result is printed by one process
    ck = torch.load(tmp_path / "seld" / "last.pt", weights_only=False)
    assert len(ck["rng_state"]) == 2 and ck["step"] == 4          # random states gathered from both processes
    assert ck["rng_state"][0] != ck["rng_state"][1]
    from savgbench.seld.model import SELDNet
    SELDNet.from_checkpoint(tmp_path / "seld" / "seld_final.pt")


def test_sampling_in_two_processes_shares_the_batches(tmp_path):
    "`savgbench sample` under two processes: every clip written once, by the process that owns its batch, all different."
    import numpy as np
    from savgbench.io import write_clip, validate_clip, read_clip
    from savgbench.baselines.train import train_joint_cli
    rng = np.random.default_rng(0)
    data = tmp_path / "data"; data.mkdir()
    for i in range(2):
        write_clip(data / f"clip{i}.mp4", rng.integers(0, 255, (20, 256, 256, 3), dtype=np.uint8),
                   (rng.standard_normal((2, 80000)) * 0.1).astype(np.float32))
    assert train_joint_cli([str(data), "--out", str(tmp_path / "joint"), "--preset", "tiny", "--steps", "1", "--batch-size", "2",
                            "--mixed-precision", "no", "--save-every", "1", "--num-workers", "0"]) == 0
    r = launch(tmp_path, ["-m", "savgbench.cli", "sample", "--checkpoint", str(tmp_path / "joint" / "checkpoint_1.pt"),
                            "--num", "3", "--batch-size", "1", "--sampler", "dpm_solver++_2m", "--steps", "3",
                            "--device", "cpu", "--sr-steps", "5", "--out", str(tmp_path / "clips")])
    assert "process 0: 2 clips" in r.stdout and "process 1: 1 clips" in r.stdout
    assert r.stderr.count("--sr-steps applies to super-resolution") == 1, r.stderr   # a usage note: once, not per process
    clips = sorted((tmp_path / "clips").glob("*.mp4"))
    assert [c.name for c in clips] == ["sample_00000.mp4", "sample_00001.mp4", "sample_00002.mp4"]
    for c in clips: validate_clip(c)
    audio = [read_clip(c).audio for c in clips]
    assert not np.allclose(audio[0], audio[1]) and not np.allclose(audio[1], audio[2])   # no shard repeats another


def resume_in_two_processes(tmp_path, outs, lrs):
    """Train the tiny joint model 2 steps into `tmp_path/outs[0]` in this process, then resume it to step 4 in two
    launched processes, process k with run folder `tmp_path/outs[k]` and learning rate `lrs[k]`."""
    from savgbench.baselines.train import train_loop, joint_loss_fn, TrainConfig, SyntheticClips
    from savgbench.baselines.diffusion import GaussianDiffusion
    from savgbench.baselines.mmdiffusion import CoupledUNet, MMDiffusionConfig
    cfg = TrainConfig(preset="tiny", batch_size=2, max_steps=2, mixed_precision="no", save_every=2, lr=lrs[0])
    train_loop(CoupledUNet(MMDiffusionConfig.tiny()), joint_loss_fn(GaussianDiffusion(1000)), SyntheticClips(8), cfg,
               tmp_path / outs[0], progress=False)
    worker = tmp_path / "worker.py"
    worker.write_text(textwrap.dedent("""
        import sys
        from accelerate import Accelerator
        from savgbench.baselines.train import train_loop, joint_loss_fn, TrainConfig, SyntheticClips
        from savgbench.baselines.diffusion import GaussianDiffusion
        from savgbench.baselines.mmdiffusion import CoupledUNet, MMDiffusionConfig
        acc = Accelerator(mixed_precision="no")
        out, lr = sys.argv[1 + 2 * acc.process_index: 3 + 2 * acc.process_index]
        cfg = TrainConfig(preset="tiny", batch_size=2, max_steps=4, mixed_precision="no", save_every=2, lr=float(lr))
        train_loop(CoupledUNet(MMDiffusionConfig.tiny()), joint_loss_fn(GaussianDiffusion(1000)), SyntheticClips(8), cfg,
                   out, accelerator=acc, progress=False)
    """))
    args = [a for k in range(2) for a in (str(tmp_path / outs[k]), repr(lrs[k]))]
    return launch(tmp_path, [str(worker), *args], check=False)


def test_processes_that_see_different_run_folders_refuse_to_resume(tmp_path):
    """Machines without a shared filesystem: the first process finds a checkpoint, the second an empty folder. The run
    stops with an error naming the steps instead of training two different replicas."""
    r = resume_in_two_processes(tmp_path, ["seen", "unseen"], [2e-4, 2e-4])     # what each machine sees at one path
    assert r.returncode != 0
    assert "found different checkpoints in the run folder" in r.stderr and "by process: 2, 0" in r.stderr, r.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "seen").glob("checkpoint_*.pt")) == ["checkpoint_2.pt"]   # nothing trained on
    assert not list((tmp_path / "unseen").glob("checkpoint_*.pt"))


def test_a_process_that_cannot_resume_stops_the_others(tmp_path):
    """One process's resume error (here: it runs with another learning rate than the checkpoint's) stops every process
    at once with a line saying which one failed, instead of leaving the others waiting for it until a timeout."""
    r = resume_in_two_processes(tmp_path, ["run", "run"], [2e-4, 1e-3])          # process 1 asks for other settings
    assert r.returncode != 0
    assert "was trained with other settings (lr: 0.0002 -> 0.001)" in r.stderr, r.stderr[-3000:]   # process 1's own error
    assert "process 1 of this run could not resume" in r.stderr, r.stderr[-3000:]                  # process 0 knows why
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint_*.pt")) == ["checkpoint_2.pt"]


def launch_machines(tmp_path, args, machines=2):
    """One `accelerate launch` per simulated machine, one process each, all meeting at one rendezvous address as the
    nodes of a cluster do (`--num_machines N --machine_rank r`). Returns each launcher's (stdout, stderr)."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                               str(machines), "--num_machines", str(machines), "--machine_rank", str(r),
                               "--main_process_ip", "127.0.0.1", "--main_process_port", port, "--mixed_precision", "no",
                               "--dynamo_backend", "no", *args], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in range(machines)]
    try: outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None: p.kill()
    for r, (p, (_, err)) in enumerate(zip(procs, outs)): assert p.returncode == 0, f"machine {r}: {err[-3000:]}"
    return outs


def test_joint_training_cli_on_two_machines_resumes_on_both(tmp_path):
    """`savgbench train-joint` on two (simulated) machines sharing the run folder: one process per machine, the
    checkpoint and log written once, and a second launch resumes on both machines from that checkpoint."""
    import numpy as np
    from savgbench.io import write_clip
    from savgbench.baselines.train import read_train_log
    rng = np.random.default_rng(0)
    data = tmp_path / "data"; data.mkdir()
    for i in range(2):
        write_clip(data / f"clip{i}.mp4", rng.integers(0, 255, (20, 256, 256, 3), dtype=np.uint8),
                   (rng.standard_normal((2, 80000)) * 0.1).astype(np.float32))
    run = tmp_path / "run"
    common = ["-m", "savgbench", "train-joint", str(data), "--out", str(run), "--preset", "tiny", "--batch-size", "1",
              "--save-every", "2", "--log-every", "1", "--mixed-precision", "no", "--num-workers", "0"]
    first = launch_machines(tmp_path, [*common, "--steps", "2"])
    assert sum(o.count("step 2: loss") for o, _ in first) == 1, first        # the run's result, printed once
    second = launch_machines(tmp_path, [*common, "--steps", "4"])
    assert sum(o.count("resuming from") for o, _ in second) == 1
    assert sum(o.count("step 4: loss") for o, _ in second) == 1
    assert sorted(p.name for p in run.glob("checkpoint_*.pt")) == ["checkpoint_2.pt", "checkpoint_4.pt"]
    log = read_train_log(run)
    assert log["step"].tolist() == [1, 2, 3, 4] and (log["samples_per_s"] > 0).all()
    ck = torch.load(run / "checkpoint_4.pt", weights_only=False)
    assert ck["step"] == 4 and len(ck["history"]) == 4
