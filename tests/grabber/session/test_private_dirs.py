"""What killed grabbers leave in the temporary directory is swept by the
next run of the same user, and nothing else is (serve.stale_private_dirs)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from pullsnap.grabber.session import serve

HOUR_AGO = time.time() - 3600


def _private(base: Path, name: str, *, agent: str = "", old: bool = True) -> Path:
    path = base / f"{serve.PRIVATE_PREFIX}{name}"
    path.mkdir(mode=0o700)
    (path / "id.pub").write_text("ssh-ed25519 AAAA one-time\n")
    if agent == "dead":  # a socket file nobody listens on: its agent died with the grabber
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(str(path / "agent"))
    if old:
        os.utime(path, (HOUR_AGO, HOUR_AGO))
    return path


def test_only_old_directories_of_this_user_whose_agent_is_gone_are_stale(tmp_path: Path) -> None:
    dead = _private(tmp_path, "dead", agent="dead")
    no_socket = _private(tmp_path, "nosocket")
    fresh = _private(tmp_path, "fresh", agent="dead", old=False)  # a run starting now
    live = _private(tmp_path, "live")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(live / "agent"))
    listener.listen(1)
    os.utime(live, (HOUR_AGO, HOUR_AGO))  # a long run: old, but its agent answers
    other = tmp_path / "something-else"
    other.mkdir()
    os.utime(other, (HOUR_AGO, HOUR_AGO))
    (tmp_path / f"{serve.PRIVATE_PREFIX}link").symlink_to(dead)
    foreign = _private(tmp_path, "foreign")
    root = os.geteuid() == 0
    if root:  # CI runs as root: another user's directory, however stale, is not ours
        os.chown(foreign, 4242, -1)
    try:
        found = set(serve.stale_private_dirs(str(tmp_path), os.geteuid(), time.time()))
    finally:
        listener.close()
    assert found == {str(dead), str(no_socket)} | (set() if root else {str(foreign)})
    assert not found & {str(fresh), str(live), str(other)}


def test_the_sweep_removes_them_and_leaves_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = _private(tmp_path, "dead", agent="dead")
    fresh = _private(tmp_path, "fresh")
    os.utime(fresh, None)
    monkeypatch.setattr(serve, "_private_base", lambda: str(tmp_path))
    serve.sweep_private_dirs()
    assert not dead.exists() and fresh.exists()
