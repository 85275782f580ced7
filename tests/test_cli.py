import subprocess, sys
from savgbench.cli import main, COMMANDS

def test_unknown_command_is_rejected(capsys):
    assert main(["definitely-not-a-command"]) == 2
    assert "unknown command" in capsys.readouterr().err

def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in COMMANDS: assert name in out

def test_module_entry_runs():
    r = subprocess.run([sys.executable, "-c", "import sys; from savgbench.cli import main; sys.exit(main(['--version']))"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip()
