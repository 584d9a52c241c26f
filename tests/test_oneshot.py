"""Short commands through `sh` (oneshot.py): the status and both outputs
whatever the status, a clean environment, clear failures to start or end."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pullsnap import childenv, oneshot


def test_status_and_both_outputs_whatever_the_status() -> None:
    done = oneshot.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert done == oneshot.Done(3, "out\n", "err\n") and not done.ok
    assert oneshot.run(["true"]).ok


def test_the_child_gets_only_the_environment_given(monkeypatch) -> None:
    monkeypatch.setenv("LEAK_ME", "1")
    lines = set(oneshot.run(["env"]).stdout.splitlines())
    assert lines == {f"{k}={v}" for k, v in childenv.child_env().items()}
    done = oneshot.run(["/usr/bin/env"], env={"PATH": "/bin", "X": "y z"})
    assert set(done.stdout.splitlines()) == {"PATH=/bin", "X=y z"}


def test_stdin_is_given_or_empty() -> None:
    assert oneshot.run(["cat"], stdin="key\n").stdout == "key\n"
    assert oneshot.run(["cat"]).stdout == ""  # closed, not the test's terminal


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_no_thread_outlives_a_command() -> None:
    """Capabilities change only in a process of one thread (caps.py)."""
    before = _threads()
    oneshot.run(["sh", "-c", "echo a; echo b >&2"])
    with pytest.raises(TimeoutError):
        oneshot.run(["sleep", "5"], timeout=0.2)
    assert _threads() == before


def test_a_signal_is_a_negative_status() -> None:
    assert oneshot.run(["sh", "-c", "kill -9 $$"]).code == -signal.SIGKILL


def test_a_program_that_is_not_there_or_not_one_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        oneshot.run(["no-such-program-here"])
    assert missing.value.errno == errno.ENOENT and missing.value.filename == "no-such-program-here"
    script = tmp_path / "not-a-program"
    script.write_text("\x7fELF garbage")
    script.chmod(0o755)
    with pytest.raises(OSError):
        oneshot.run([str(script)])


def test_past_the_timeout_the_child_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    with pytest.raises(TimeoutError, match=r"sh took longer than 0\.5 s"):
        oneshot.run(["sh", "-c", f"echo $$ > {marker}; exec sleep 30"], timeout=0.5)
    pid = int(marker.read_text())
    assert not Path(f"/proc/{pid}").exists()  # killed and reaped, not left behind


def test_which_resolves_names_on_the_childrens_path(tmp_path: Path, monkeypatch) -> None:
    assert oneshot.which("rsync") == "/usr/bin/rsync"
    assert oneshot.which("/usr/bin/rsync") == "/usr/bin/rsync"
    assert oneshot.which("no-such-program-here") is None
    (tmp_path / "tool").write_text("#!/bin/sh\n")
    assert oneshot.which("tool", str(tmp_path)) is None  # not executable
    (tmp_path / "tool").chmod(0o755)
    assert oneshot.which("tool", f"/nonexistent:{tmp_path}") == str(tmp_path / "tool")
    monkeypatch.chdir(tmp_path)
    assert oneshot.which("tool", ":/nonexistent") is None  # "" is not the working directory


BACKUP_PATH = ("pullsnap.grabber.cli", "pullsnap.grabber.session.serve",
               "pullsnap.initiator.run", "pullsnap.initiator.console")  # fmt: skip


@pytest.mark.parametrize("module", BACKUP_PATH)
def test_a_backup_runs_without_loading_sh(module: str) -> None:
    program = f"import sys, {module}\nprint('sh' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=60, check=True)  # fmt: skip
    assert done.stdout == "False\n"


def test_a_foreground_command_writes_to_our_own_outputs(capfd) -> None:
    """What `grabber restore` runs on a terminal: rsync's progress line goes
    straight to the operator, and the status comes back."""
    code = oneshot.run_foreground(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert code == 3
    out, err = capfd.readouterr()
    assert (out, err) == ("out\n", "err\n")
    assert oneshot.run_foreground(["true"]) == 0
    with pytest.raises(FileNotFoundError):
        oneshot.run_foreground(["no-such-program-here"])
