"""The lifeline: a sender whose initiator died, even by SIGKILL, ends at once
(sshd's privilege-separated session would otherwise keep it going)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pullsnap.initiator import lifeline

pytestmark = pytest.mark.faults  # the snapshot lifecycle under faults (issue 5)

HOLDER = (
    "import sys, time; from pullsnap.initiator import lifeline\n"
    "lifeline.hold(sys.argv[1]); print('held', flush=True); time.sleep(120)\n"
)
# The gate's part: fork the watcher, then become the "sender".
SENDER = (
    "import os, sys; from pullsnap.initiator import lifeline\n"
    "lifeline.watch(sys.argv[1]); print('watching', flush=True)\n"
    "os.execv('/bin/sleep', ['sleep', '120'])\n"
)


def _start(code: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def _ended(proc: subprocess.Popen, timeout: float) -> bool:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_the_sender_ends_when_the_initiator_is_killed(tmp_path: Path) -> None:
    holder = _start(HOLDER, str(tmp_path))
    sender = _start(SENDER, str(tmp_path / lifeline.NAME))
    try:
        time.sleep(0.2)
        assert sender.poll() is None, "the sender must run while the initiator lives"
        holder.send_signal(signal.SIGKILL)
        assert _ended(sender, 10)
        assert sender.returncode == -signal.SIGKILL
    finally:
        for proc in (holder, sender):
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def test_the_watcher_ends_with_a_sender_that_finishes(tmp_path: Path) -> None:
    holder = _start(HOLDER, str(tmp_path))
    sender = _start(SENDER, str(tmp_path / lifeline.NAME))
    try:
        watchers = [
            int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _parent(pid) == sender.pid
        ]
        assert len(watchers) == 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _titled(watchers[0]):
            time.sleep(0.01)  # it retitles itself right after the fork
        assert _titled(watchers[0])
        sender.send_signal(signal.SIGTERM)
        sender.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.path.exists(f"/proc/{watchers[0]}/stat"):
            time.sleep(0.02)
        assert not os.path.exists(f"/proc/{watchers[0]}/stat") or _zombie(watchers[0])
        assert holder.poll() is None
    finally:
        for proc in (holder, sender):
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _stat(pid: int | str) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()


def _parent(pid: str) -> int:
    try:
        return int(_stat(pid)[1])
    except (OSError, ValueError):
        return 0


def _zombie(pid: int) -> bool:
    try:
        return _stat(pid)[0] == "Z"
    except OSError:
        return True


def _titled(pid: int) -> bool:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().startswith(lifeline.WATCHER_TITLE.encode())


def test_sweep_removes_only_what_killed_initiators_left(tmp_path: Path) -> None:
    """SIGKILL leaves a run directory (its host key, sshd_config) behind: the
    next run removes it once nobody holds its lifeline, and nothing else."""
    dead = tmp_path / f"{lifeline.RUN_DIR_PREFIX}dead"
    dead.mkdir(mode=0o700)
    os.close(lifeline.hold(str(dead)))  # its initiator ended without cleaning up
    (dead / "host_key").write_text("private\n")
    alive = tmp_path / f"{lifeline.RUN_DIR_PREFIX}alive"
    alive.mkdir(mode=0o700)
    held = lifeline.hold(str(alive))
    young = tmp_path / f"{lifeline.RUN_DIR_PREFIX}young"  # no lifeline yet
    young.mkdir(mode=0o700)
    other = tmp_path / "other"
    other.mkdir()
    os.close(lifeline.hold(str(other)))
    try:
        assert lifeline.sweep(str(tmp_path)) == [str(dead)]
    finally:
        os.close(held)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in (alive, young, other))
    assert os.listdir(alive) == [lifeline.NAME], "the lock is taken before the name shows"
