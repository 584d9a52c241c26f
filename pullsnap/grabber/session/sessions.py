"""A cap on one host's concurrent sessions: `max_sessions_per_host`.

    <repository>/.sessions/<host>/0 .. N-1    flock(2) one of them for the session's life

A login with a host's key costs the backup host a grabber, an ssh-agent and
an sshd for up to `handoff_timeout` before anything is pulled; a host that
opens logins in a loop would tie up memory and processes for everyone.  So
the grabber takes one of its host's N places right after the binding names
the host, before it reads the handoff, starts ssh-agent or makes its
private directory, and refuses (exit 4, one result line) when all are held.
Every key bound to the host counts against the same places.  Kernel locks:
a killed session frees its place; the files stay (a refused session finds
them all made and makes none).
"""

from __future__ import annotations

import contextlib
import os

from pullsnap import errors
from pullsnap.flock import try_flock

SESSIONS = ".sessions"


class Session:
    """One held place (or none, without a cap), until `close`."""

    def __init__(self, fd: int = -1, place: int = -1) -> None:
        self.fd = fd
        self.place = place

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def refusal(host: str, limit: int) -> str:
    """The one line a session over the cap gets (pure)."""
    sessions = "session" if limit == 1 else "sessions"
    return (
        f"{host} already has {limit} {sessions} open (max_sessions_per_host = {limit}): this "
        "login is refused before anything starts; the others end by themselves (a stalled "
        "one after handoff_timeout), or raise max_sessions_per_host"
    )


def _mkdir(path: str) -> None:
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)


def hold(root: str, host: str, limit: int) -> Session:
    """Take a free place among `limit` for `host` (0: no cap), or raise Locked."""
    if limit <= 0:
        return Session()
    directory = os.path.join(root, SESSIONS, host)
    _mkdir(os.path.dirname(directory))
    _mkdir(directory)
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    for place in range(limit):
        fd = os.open(os.path.join(directory, str(place)), flags, 0o600)
        if try_flock(fd):
            return Session(fd, place)
        os.close(fd)
    raise errors.Locked(refusal(host, limit))
