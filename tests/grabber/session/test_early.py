"""The grabber's private directory (early.py): made held, in a base whose path
rsync -e can carry, removed whole at the end; a killed grabber's is swept by
the next run of the same user (the rule itself: tests/test_rundir.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pullsnap.config import GrabberConfig
from pullsnap.grabber.session import early

KILLED = (
    "import sys, time; from pullsnap.config import GrabberConfig\n"
    "from pullsnap.grabber.session.early import Early\n"
    "e = Early(GrabberConfig(ssh_agent='/usr/bin/ssh-agent'))\n"
    "print(e.private, flush=True); time.sleep(120)\n"
)


def test_the_base_is_plain_enough_for_rsync_e(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert early.private_base() == str(tmp_path)
    odd = tmp_path / "with space"
    odd.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(odd))
    assert early.private_base() == "/tmp"


def test_a_run_leaves_nothing_and_a_killed_one_is_swept(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    run = early.Early(GrabberConfig())
    assert run.agent is not None and os.path.basename(run.private).startswith(early.PRIVATE_PREFIX)
    assert early.sweep() == []  # a live run's directory stays
    run.close()
    assert not os.path.exists(run.private)
    assert run.agent.process.poll() is not None  # the agent ended with it

    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path))
    killed = subprocess.Popen([sys.executable, "-c", KILLED], stdout=subprocess.PIPE, env=env)
    assert killed.stdout is not None
    left = killed.stdout.readline().decode().strip()
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert os.path.isdir(left)  # SIGKILL gave it no chance to clean up
    assert early.sweep() == [left]
    assert not os.path.exists(left)
