"""The sender's Landlock policy (senderpolicy.py, pure): what the table says.
The sender confined for real: tests/initiator/test_gatecmd.py."""

from __future__ import annotations

import os

import pytest

from pullsnap import landlock
from pullsnap.initiator.senderpolicy import sender_confinement


def test_the_sender_reads_its_roots_executes_rsync_and_opens_no_socket(tmp_path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    link = tmp_path / "link"
    link.symlink_to(root)
    c = sender_confinement([str(link)], "/usr/bin/rsync")
    assert str(root) in c.read_only and str(link) not in c.read_only  # resolved
    assert c.read_write == ("/dev/null",)
    assert c.connect_tcp_ports == ()  # no TCP at all
    assert "/usr/bin/rsync" in c.executable and os.path.realpath("/usr/bin/rsync") in c.executable
    readable = set(c.read_only) | set(c.executable)
    assert not {"/", "/etc", "/etc/shadow", "/root", "/home"} & readable


def test_the_sender_refuses_relative_roots() -> None:
    with pytest.raises(landlock.LandlockError):
        sender_confinement(["data"], "/usr/bin/rsync")
