"""Property 2: the one-shot door admits one authenticated session, from the
backup host's address only, and nothing is left open afterwards."""

from __future__ import annotations

import socket

import pytest

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.security]


def test_stranger_is_closed_before_the_banner_and_the_real_host_still_gets_in(hostile) -> None:
    got = hostile("door")
    stranger = got["stranger"]
    # 127.0.0.2 is loopback too, but not the allowed address: no SSH banner.
    assert stranger["connected"] and stranger["received"] == ""
    assert "SSH-2.0" not in stranger.get("received", "")
    # The real backup host connected afterwards, within the deadline.
    assert got["pull"]["code"] == 0, got["pull"]["stderr"]
    assert got["pulled"] == ["file"]
    assert "refused a connection from 127.0.0.2" in got["initiator"]["stderr"]
    # One session only: the listener is gone once it let the first one in.
    assert got["second"] == {"connected": False, "error": "Connection refused"}
    assert got["runtime_left"] == []


def test_one_connection_runs_the_gate_once(hostile) -> None:
    """sshd's MaxSessions 1 limits sessions at a time, not in all: a second
    session over the same connection must not start a second sender."""
    got = hostile("two-sessions")
    assert got["first"]["code"] == 0, got["first"]["stderr"]
    assert got["second"]["code"] != 0, got["second"]
    assert "gate error: this door has run its one session already" in got["second"]["stderr"]
    assert got["runtime_left"] == []


def test_the_one_time_key_is_useless_after_the_run(hostile) -> None:
    first = hostile("ssh", options=[], command=["true"])
    # Nothing listens on the old port once the run has ended.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", first["port"])) != 0
    # A new run has a new door and a new key: the old key is refused there.
    second = hostile("old-key", key=first["key"])
    assert second["port"] != first["port"] or second["key"] != first["key"]
    assert second["ssh"]["code"] == 255
    # MaxAuthTries 1: the one wrong key ends the connection.
    assert "Too many authentication failures" in second["ssh"]["stderr"]
