import contextlib, subprocess, sys
from pathlib import Path
from savgbench.cli import main, COMMANDS

def test_unknown_command_is_rejected(capsys):
    assert main(["definitely-not-a-command"]) == 2
    assert "unknown command" in capsys.readouterr().err

def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS: assert name in out

def test_no_command_is_a_usage_error(capsys):
    """`savgbench` alone (`savgbench $CMD` with an empty variable in a script) fails with the usage on stderr."""
    assert main([]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "usage: savgbench COMMAND" in cap.err

def test_module_entry_runs():
    r = subprocess.run([sys.executable, "-c", "import sys; from savgbench.cli import main; sys.exit(main(['--version']))"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip()

import pytest

@pytest.fixture(scope="module")
def three_recordings(tmp_path_factory):
    "Three 8 s synthetic STARSS23 recordings (two in the dev split), made once for the tests that build from them."
    starss = tmp_path_factory.mktemp("starss")
    r = subprocess.run([sys.executable, "-m", "savgbench", "synth-starss", str(starss), "--recordings", "3",
                        "--seconds", "8", "--seed", "0"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return starss

@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_ctrl_c_during_a_parallel_build_stops_cleanly(tmp_path, sig, kill_at_end, three_recordings):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it), or SIGTERM to it (`kill -- -PGID`, a batch
    system), during `build-dataset --workers 2`: the command stops within seconds, ended by the same signal, with one
    line, no worker prints a traceback, no temporary file is left, and a second run builds the split."""
    import os, signal, time
    sig = getattr(signal, sig)
    starss, out = three_recordings, tmp_path / "out"
    cmd = [sys.executable, "-m", "savgbench", "build-dataset", str(starss), str(out), "--split", "dev", "--workers", "2"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    kill_at_end(p)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120 and not list(out.rglob("*.mp4")) and p.poll() is None: time.sleep(0.1)
    assert p.poll() is None, "the build ended before it could be interrupted"
    os.killpg(p.pid, sig)
    t1 = time.monotonic()
    _, err = p.communicate(timeout=120)
    assert p.returncode == -sig, err                    # ended by the signal, so a shell script running it stops too
    assert time.monotonic() - t1 < 12                   # the workers were stopped (left to finish: 15 s or more)
    said = "interrupted" if sig == signal.SIGINT else "stopped by SIGTERM"
    assert f"savgbench build-dataset: {said}" in err and "Traceback" not in err and "leaked" not in err, err
    assert [f for f in out.rglob(".*") if f.is_file()] == []
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    import json
    rep = json.loads((out / "build_report_dev.json").read_text())
    assert rep["recordings"] == 2 and rep["clips"] > 0 and not rep["failed_recordings"]
    assert rep["clips"] == len(list((out / "video_dev").glob("*.mp4"))) == len(list((out / "metadata_dev").glob("*.csv")))


def _slow_write(path):
    "A job that stays inside `atomic_path` for a minute (run in a `process_pool` worker)."
    import time
    from savgbench.core import atomic_path
    with atomic_path(path) as t:
        t.write_text("half"); time.sleep(60)
    return path

def test_process_pool_stops_running_and_queued_jobs_and_leaves_no_temporary_file(tmp_path):
    import time
    from savgbench.core import process_pool
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="^stop$"):          # the caller's exception comes through, unchanged
        with process_pool(2) as ex:
            futs = [ex.submit(_slow_write, tmp_path / f"out{i}.txt") for i in range(4)]   # two run, two wait
            while len(list(tmp_path.glob(".out*"))) < 2 and time.monotonic() - t0 < 60: time.sleep(0.05)
            assert len(list(tmp_path.glob(".out*"))) == 2      # both running jobs are half-way through a write
            raise RuntimeError("stop")
    assert time.monotonic() - t0 < 30                        # not the two minutes the jobs would take
    assert list(tmp_path.iterdir()) == []                    # no temporary file, no output
    from concurrent.futures import wait
    # every future is done when the pool has stopped, for `wait` too (a queued job's future cancelled by `shutdown` is
    # done, but woke no `wait`: it waited out its timeout, for ever without one)
    assert wait(futs, timeout=0).not_done == set() and all(f.done() for f in futs)

def test_a_future_the_caller_cancelled_is_not_notified_twice(caplog):
    """A queued job's future cancelled by the caller, then taken off the queue by the executor (which notifies it),
    before the pool stops on an exception: no 'Future ... in unexpected state' line from concurrent.futures."""
    import logging, time
    from concurrent.futures import wait
    from savgbench.core import process_pool
    with caplog.at_level(logging.DEBUG, logger="concurrent.futures"):
        with pytest.raises(RuntimeError, match="^stop$"):
            with process_pool(2) as ex:
                futs = [ex.submit(time.sleep, s) for s in (0.2, 60, 60, 60)]  # 3 go to the workers' queue, 1 waits
                assert futs[3].cancel()
                futs[0].result(timeout=60); time.sleep(0.5)   # a queue slot frees up: the executor notifies futs[3]
                raise RuntimeError("stop")
    assert wait(futs, timeout=0).not_done == set() and futs[3].cancelled()
    assert not [r for r in caplog.records if "unexpected state" in r.getMessage()], caplog.text


def _running(pid: int) -> bool:
    "Whether a process runs (a zombie, which a container's init may never reap, does not)."
    try: return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError: return False

@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_worker_whose_parent_is_killed_stops(tmp_path):
    "SIGKILL of the main process (the OOM killer, a batch system) cannot be passed on: its workers end by themselves."
    import os, signal, time
    script = (f"import sys, time; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
              "from test_cli import _slow_write\n"
              "from savgbench.core import process_pool\n"
              "if __name__ == '__main__':\n"
              "    with process_pool(1) as ex:\n"
              f"        ex.submit(_slow_write, {str(tmp_path / 'out.txt')!r})\n"
              "        while not ex._processes: time.sleep(0.05)\n"
              "        print(*ex._processes, flush=True); time.sleep(120)\n")
    (tmp_path / "main.py").write_text(script)
    p = subprocess.Popen([sys.executable, str(tmp_path / "main.py")], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(p.stdout.readline())
        t0 = time.monotonic()
        while not list(tmp_path.glob(".out*")) and time.monotonic() - t0 < 60: time.sleep(0.05)
        assert _running(worker) and list(tmp_path.glob(".out*"))     # the worker is writing
        p.kill(); p.wait()
        t1 = time.monotonic()
        while _running(worker) and time.monotonic() - t1 < 20: time.sleep(0.1)
        assert not _running(worker)                                   # gone within a second, not after its minute
    finally:
        if p.poll() is None: p.kill()
        with contextlib.suppress(ProcessLookupError, NameError):
            if _running(worker): os.kill(worker, signal.SIGKILL)


def test_a_reader_that_leaves_the_pipe_early_is_not_an_error(tmp_path):
    "`savgbench weights list | head -1`: no 'Broken pipe' error; the status of a program that SIGPIPE stopped (141)."
    import os
    p = subprocess.Popen([sys.executable, "-m", "savgbench", "weights", "list"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env={**os.environ, "SAVGBENCH_HOME": str(tmp_path)})
    p.stdout.close()                                    # the reader is gone before the first line is written
    err = p.stderr.read().decode(); p.wait(timeout=60)
    assert (p.returncode, err) == (141, ""), (p.returncode, err)
    for args in (["--help"], ["--version"]):            # printed before any command runs: the same
        p = subprocess.Popen([sys.executable, "-m", "savgbench", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.close(); err = p.stderr.read().decode(); p.wait(timeout=60)
        assert (p.returncode, err) == (141, ""), (args, p.returncode, err)


def test_another_broken_pipe_is_an_error_even_when_stdout_is_a_pipe(tmp_path):
    "A command whose own pipe breaks (not the reader of its output) fails with the error, not quietly with 141."
    (tmp_path / "fake_cmd.py").write_text(
        "import os\ndef run(argv):\n    print('working', flush=True)\n    r, w = os.pipe(); os.close(r)\n"
        "    os.write(w, b'x')\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import savgbench.cli as c; "
            "c.COMMANDS['fake'] = ('fake_cmd', 'run', 'a test command'); sys.argv = ['savgbench', 'fake']; sys.exit(c.main())")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == "working\n" and "savgbench fake: error: [Errno 32] Broken pipe" in r.stderr, r


def test_tqdm_disable_turns_off_the_progress_bars(tmp_path):
    """TQDM_DISABLE=1, tqdm's own setting, turns off the bars of commands that say whether to show them (here
    check-clips, whose bar shows from 20 clips on); without it the bar is there, and the report is the same."""
    import os
    for i in range(20): (tmp_path / f"c{i:02d}.mp4").touch()      # not clips: each is checked and named all the same
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    run = lambda **e: subprocess.run([sys.executable, "-m", "savgbench", "check-clips", str(tmp_path)],
                                     capture_output=True, text=True, env={**env, **e}, timeout=300)
    shown, quiet = run(), run(TQDM_DISABLE="1")
    assert shown.returncode == quiet.returncode == 1 and shown.stdout == quiet.stdout
    assert "check clips:" in shown.stderr and "0/20" in shown.stderr, shown.stderr
    assert "check clips:" not in quiet.stderr and "0/20" not in quiet.stderr, quiet.stderr
