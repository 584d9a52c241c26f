"""A private ssh-agent holding the one-time key, so the key never is a file.

    ssh-agent -D -a <private dir>/agent     (foreground, dies with us)
    ssh-add -q -   < private key on stdin   (ssh-add(1): "-" reads stdin)

ssh then gets `IdentityAgent=<socket>` and, because `IdentitiesOnly=yes`
only offers keys named by IdentityFile, `IdentityFile=<the public key>`
(ssh_config(5): a public key file selects the matching agent key).
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import prctl

from pullsnap.childenv import child_env
from pullsnap.errors import HandoffError, RunFailed

SETUP_TIMEOUT = 10.0


def _read_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(blob):
        raise HandoffError("client_key is truncated")
    (length,) = struct.unpack(">I", blob[offset : offset + 4])
    end = offset + 4 + length
    if end > len(blob):
        raise HandoffError("client_key is truncated")
    return blob[offset + 4 : end], end


def public_blob(private_key: str) -> bytes:
    """The public key inside an unencrypted openssh-key-v1 private key (PROTOCOL.key)."""
    body = "".join(private_key.strip().splitlines()[1:-1])
    blob = base64.b64decode(body)
    magic = b"openssh-key-v1\0"
    if not blob.startswith(magic):
        raise HandoffError("client_key is not an OpenSSH private key")
    offset = len(magic)
    cipher, offset = _read_string(blob, offset)
    kdf, offset = _read_string(blob, offset)
    _, offset = _read_string(blob, offset)  # kdf options
    if cipher != b"none" or kdf != b"none":
        raise HandoffError("client_key is encrypted")
    if offset + 4 > len(blob):
        raise HandoffError("client_key is truncated")
    (count,) = struct.unpack(">I", blob[offset : offset + 4])
    if count != 1:
        raise HandoffError("client_key must hold exactly one key")
    public, _ = _read_string(blob, offset + 4)
    kind, _ = _read_string(public, 0)
    if kind != b"ssh-ed25519":
        raise HandoffError("client_key is not an ed25519 key")
    return public


def fingerprint(public: bytes) -> str:
    """ssh-keygen -l style: SHA256:<base64 without padding>."""
    digest = base64.b64encode(hashlib.sha256(public).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


@dataclass(frozen=True)
class AgentKey:
    socket: str
    public_file: str
    fingerprint: str


def _listening(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    prctl.set_pdeathsig(signal.SIGKILL)
    # ssh-agent is set-group-ID on Debian (group _ssh, against ptrace), and
    # exec of such a program clears the parent-death signal (prctl(2)
    # PR_SET_PDEATHSIG): a killed grabber would leave its agent running.
    # With no_new_privs the bit is ignored and the signal stays; the agent
    # needs no group (it makes itself undumpable on its own).
    prctl.set_no_new_privs(1)


def start_agent(private_dir: str, ssh_agent: str) -> subprocess.Popen:
    """Start the private agent; `one_time_agent` waits for it and adds the key.

    Started early (serve.Early), it comes up while the grabber still reads
    the handoff and loads the modules a pull needs."""
    sock = os.path.join(private_dir, "agent")
    return subprocess.Popen(
        [ssh_agent, "-D", "-a", sock],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=child_env(),
        preexec_fn=_die_with_parent,
    )


@contextmanager
def one_time_agent(
    private_key: str,
    private_dir: str,
    ssh_agent: str,
    ssh_add: str,
    started: subprocess.Popen | None = None,
) -> Iterator[AgentKey]:
    """Run an agent holding `private_key` for the duration of the block
    (`started`: one `start_agent` already started in `private_dir`)."""
    agent = started or start_agent(private_dir, ssh_agent)
    try:
        public = public_blob(private_key)
        sock = os.path.join(private_dir, "agent")
        public_file = os.path.join(private_dir, "id.pub")
        with open(public_file, "w", encoding="ascii") as f:
            f.write(f"ssh-ed25519 {base64.b64encode(public).decode()} pullsnap-once\n")
        deadline = time.monotonic() + SETUP_TIMEOUT
        # The socket file appears at bind(2), before listen(2) (ssh-agent.c
        # unix_listener): wait until a connection is accepted, or ssh-add
        # may meet ECONNREFUSED in between.
        while not _listening(sock):
            if agent.poll() is not None or time.monotonic() > deadline:
                raise RunFailed("ssh-agent did not start")
            time.sleep(0.002)
        added = subprocess.run(
            [ssh_add, "-q", "-"],
            input=private_key.encode("ascii"),
            capture_output=True,
            env=child_env(SSH_AUTH_SOCK=sock),
            timeout=SETUP_TIMEOUT,
            check=False,
        )
        if added.returncode != 0:
            raise HandoffError("client_key was refused by ssh-add")
        yield AgentKey(socket=sock, public_file=public_file, fingerprint=fingerprint(public))
    finally:
        agent.kill()
        agent.wait()
