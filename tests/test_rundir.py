"""The one rule for what a killed run left (rundir.py): a directory whose
lock nobody holds goes, and nothing else does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from pullsnap import rundir

PREFIX = "pullsnap-test-"
HOLD = (
    "import sys, time; from pullsnap import rundir\n"
    "path, fd = rundir.make(sys.argv[1], sys.argv[2], 'lock')\n"
    "print(path, flush=True); time.sleep(120)\n"
)


def _holder(base: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(base), PREFIX], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().decode().strip()


def test_a_made_directory_is_private_and_held(tmp_path: Path) -> None:
    path, fd = rundir.make(str(tmp_path), PREFIX, "lock")
    try:
        assert os.path.basename(path).startswith(PREFIX)
        assert os.stat(path).st_mode & 0o777 == 0o700
        assert os.listdir(path) == ["lock"]
        assert rundir.sweep(str(tmp_path), PREFIX, "lock") == []  # held: ours, alive
    finally:
        os.close(fd)
    assert rundir.sweep(str(tmp_path), PREFIX, "lock") == [path]  # let go: swept
    assert not os.path.exists(path)


def test_a_killed_holder_leaves_a_directory_the_next_sweep_removes(tmp_path: Path) -> None:
    proc, path = _holder(tmp_path)
    try:
        assert rundir.sweep(str(tmp_path), PREFIX, "lock") == []
        assert os.path.isdir(path)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert rundir.sweep(str(tmp_path), PREFIX, "lock") == [path]


def test_what_is_not_a_run_directory_of_ours_is_left_alone(tmp_path: Path) -> None:
    being_made = tmp_path / f"{PREFIX}new"  # no lock file yet: its run is starting
    being_made.mkdir()
    other_prefix = tmp_path / "something-else"
    other_prefix.mkdir()
    (other_prefix / "lock").write_text("")
    a_file = tmp_path / f"{PREFIX}file"
    a_file.write_text("x")
    released = tmp_path / f"{PREFIX}released"
    released.mkdir()
    (released / "lock").write_text("")
    (tmp_path / f"{PREFIX}link").symlink_to(released)
    foreign = tmp_path / f"{PREFIX}foreign"
    foreign.mkdir()
    (foreign / "lock").write_text("")
    root = os.geteuid() == 0
    if root:  # CI runs as root: another user's directory, however dead, is not ours
        os.chown(foreign, 4242, -1)
    swept = rundir.sweep(str(tmp_path), PREFIX, "lock")
    assert set(swept) == {str(released)} | (set() if root else {str(foreign)})
    assert being_made.is_dir() and other_prefix.is_dir() and a_file.is_file()
    assert (tmp_path / f"{PREFIX}link").is_symlink()
    assert rundir.sweep(str(tmp_path / "missing"), PREFIX, "lock") == []
