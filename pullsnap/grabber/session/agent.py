"""A private ssh-agent holding the one-time key, so the key never is a file.

    ssh-agent -D -a <private dir>/agent     (foreground, dies with us)
    ssh-add -q -   < private key on stdin   (ssh-add(1): "-" reads stdin)

ssh then gets `IdentityAgent=<socket>` and, because `IdentitiesOnly=yes`
only offers keys named by IdentityFile, `IdentityFile=<the public key>`
(ssh_config(5): a public key file selects the matching agent key).
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

import prctl

from pullsnap import sshkeys
from pullsnap.childenv import child_env
from pullsnap.errors import ClientKeyError, RunFailed

SETUP_TIMEOUT = 10.0
SOCKET = "agent"  # its name in the private directory


def public_blob(private_key: str) -> bytes:
    """The public key inside the one-time private key (a HandoffError if it is
    not an unencrypted ed25519 openssh-key-v1 key)."""
    return sshkeys.public_of_private(sshkeys.private_key_blob(private_key))


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


class Agent:
    """The private agent, from its start to its end: started early (serve.Early),
    so that it comes up while the grabber still reads the handoff and loads
    the modules a pull needs; `add` waits for it and hands it the key;
    `close` (or the grabber's death: PR_SET_PDEATHSIG) ends it."""

    def __init__(self, private_dir: str, ssh_agent: str) -> None:
        self.private_dir = private_dir
        self.socket = os.path.join(private_dir, SOCKET)
        self.process = subprocess.Popen(
            [ssh_agent, "-D", "-a", self.socket],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_env(),
            preexec_fn=_die_with_parent,
        )

    def add(self, private_key: str, ssh_add: str) -> AgentKey:
        """Hand the agent the one-time key; what ssh needs to use it."""
        public = public_blob(private_key)
        public_file = os.path.join(self.private_dir, "id.pub")
        with open(public_file, "w", encoding="ascii") as f:
            f.write(f"ssh-ed25519 {base64.b64encode(public).decode()} pullsnap-once\n")
        deadline = time.monotonic() + SETUP_TIMEOUT
        # The socket file appears at bind(2), before listen(2) (ssh-agent.c
        # unix_listener): wait until a connection is accepted, or ssh-add
        # may meet ECONNREFUSED in between.
        while not _listening(self.socket):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RunFailed("ssh-agent did not start")
            time.sleep(0.002)
        added = subprocess.run(
            [ssh_add, "-q", "-"],
            input=private_key.encode("ascii"),
            capture_output=True,
            env=child_env(SSH_AUTH_SOCK=self.socket),
            timeout=SETUP_TIMEOUT,
            check=False,
        )
        if added.returncode != 0:
            raise ClientKeyError("was refused by ssh-add")
        return AgentKey(self.socket, public_file, sshkeys.fingerprint(public))

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
