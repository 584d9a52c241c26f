"""One host's concurrent sessions (sessions.py): kernel locks, a place each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.session import sessions


def test_places_are_taken_in_turn_and_one_more_is_refused(tmp_path: Path) -> None:
    first = sessions.hold(str(tmp_path), "web1", 2)
    second = sessions.hold(str(tmp_path), "web1", 2)
    assert (first.place, second.place) == (0, 1)
    made = sorted(os.listdir(tmp_path / ".sessions" / "web1"))
    with pytest.raises(errors.Locked, match=r"web1 already has 2 sessions open") as refused:
        sessions.hold(str(tmp_path), "web1", 2)
    assert refused.value.exit_code == errors.LOCKED
    assert "max_sessions_per_host" in str(refused.value)
    assert sorted(os.listdir(tmp_path / ".sessions" / "web1")) == made  # it made nothing
    # Another host has places of its own.
    assert sessions.hold(str(tmp_path), "web2", 2).place == 0
    second.close()
    assert sessions.hold(str(tmp_path), "web1", 2).place == 1
    first.close()


def test_no_cap_takes_nothing(tmp_path: Path) -> None:
    held = sessions.hold(str(tmp_path), "web1", 0)
    assert held.fd == -1 and not (tmp_path / ".sessions").exists()
    held.close()


def test_a_killed_session_frees_its_place(tmp_path: Path) -> None:
    code = (
        "import sys, time\nfrom pullsnap.grabber.session import sessions\n"
        f"sessions.hold({str(tmp_path)!r}, 'web1', 1)\nprint('held', flush=True)\ntime.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(errors.Locked):
            sessions.hold(str(tmp_path), "web1", 1)
    finally:
        holder.kill()
        holder.wait()
    assert sessions.hold(str(tmp_path), "web1", 1).place == 0
