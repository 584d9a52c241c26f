"""The run's two keypairs.

* The ephemeral host key of the one-shot sshd: a file in the private run
  directory (sshd needs a HostKey file), removed with that directory.
* The one-time client key the grabber logs in with: its private half never
  touches a file.  ssh-keygen writes it into a FIFO that we hold open for
  reading, so it goes from ssh-keygen's memory through the pipe buffer into
  ours.  ssh-keygen finds the FIFO "already exists" and asks
  "Overwrite (y/n)?" on stdin; we answer `y`.  We open the read end first
  (non-blocking, so the open itself cannot block), otherwise ssh-keygen's
  open(2) would block forever; we keep it open until ssh-keygen has ended
  (a reader leaving early kills it with SIGPIPE); afterwards we check that
  the path is still our FIFO.  An ed25519 key is ~400 bytes, far below the
  pipe buffer (pipe(7): 64 KiB), so ssh-keygen never waits for us.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer

from pullsnap.errors import RunFailed
from pullsnap.initiator import children

MAX_PRIVATE_KEY = 16 * 1024


@dataclass(frozen=True)
class ClientKey:
    private: bytes  # OpenSSH armoured private key, in memory only
    public: str  # "ssh-ed25519 AAAA... comment"


def keygen_argv(ssh_keygen: str, path: str, comment: str) -> list[str]:
    return [ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path]


def _public_key(path: str) -> str:
    with open(path, encoding="ascii") as f:
        text = f.read().strip()
    os.unlink(path)
    fields = text.split()
    if len(fields) < 2 or fields[0] != "ssh-ed25519":
        raise RunFailed(f"ssh-keygen wrote an unexpected public key to {path}")
    return f"{fields[0]} {fields[1]}"


@defer.inlineCallbacks
def make_host_key(reactor: Any, ssh_keygen: str, run_dir: str, timeout: float):
    """Create run_dir/host_key; return its public key ("ssh-ed25519 AAAA")."""
    path = os.path.join(run_dir, "host_key")
    done = yield children.run(
        reactor, keygen_argv(ssh_keygen, path, "pullsnap-host"), timeout, "ssh-keygen (host key)"
    )
    if not done.ok():
        raise RunFailed(f"ssh-keygen failed to make the host key: {done.stderr_tail()}")
    return _public_key(path + ".pub")


@defer.inlineCallbacks
def make_client_key(reactor: Any, ssh_keygen: str, run_dir: str, timeout: float):
    """Make the one-time client keypair through a FIFO; return a ClientKey."""
    path = os.path.join(run_dir, "client_key")
    os.mkfifo(path, 0o600)
    fifo_stat = os.lstat(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        done = yield children.run(
            reactor,
            keygen_argv(ssh_keygen, path, "pullsnap-once"),
            timeout,
            "ssh-keygen (one-time key)",
            stdin=b"y\n",
        )
        if not done.ok():
            raise RunFailed(f"ssh-keygen failed to make the one-time key: {done.stderr_tail()}")
        private = _drain(reader)
    finally:
        os.close(reader)
    after = os.lstat(path)
    if not stat.S_ISFIFO(after.st_mode) or after.st_ino != fifo_stat.st_ino:
        raise RunFailed(f"{path} was replaced while ssh-keygen wrote the one-time key")
    os.unlink(path)
    if not private.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----\n"):
        raise RunFailed("ssh-keygen did not write an OpenSSH private key into the FIFO")
    return ClientKey(private=private, public=_public_key(path + ".pub"))


def _drain(fd: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        size += len(chunk)
        if size > MAX_PRIVATE_KEY:
            raise RunFailed("ssh-keygen wrote more than a private key into the FIFO")
        chunks.append(chunk)
    return b"".join(chunks)
