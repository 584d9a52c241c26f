"""What a run needs from other programs, started before the handoff is read.

    <base>/pullsnap-grab-XXXX/   0700: agent socket, id.pub, known_hosts
        lock                     flock(2) held while the run lives

The private directory, ssh-agent in it and `rsync --version` start first,
before the handoff is read and the modules a pull needs are loaded, so they
come up meanwhile.  A directory a killed grabber left (SIGKILL gives no
chance to remove it; nothing secret is in it, but they pile up) is removed by
a later run of the same user once its lock is free (pullsnap/rundir.py:
the same rule as the initiator's run directories).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from pullsnap import rundir, versions
from pullsnap.config import GrabberConfig
from pullsnap.grabber.session.agent import Agent

PRIVATE_PREFIX = "pullsnap-grab-"
LOCK = "lock"


def private_base() -> str:
    """Where private directories go.  Their paths go into ssh -o options
    through rsync -e, which split on whitespace: /tmp when the usual base
    has odd characters."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    if not os.path.isdir(base) or not re.match(r"^/[A-Za-z0-9._/-]*\Z", base):
        base = "/tmp"
    return base


def sweep(base: str | None = None) -> list[str]:
    """Remove the private directories killed grabbers of this user left."""
    return rundir.sweep(base or private_base(), PRIVATE_PREFIX, LOCK)


class Early:
    """The private directory (held), ssh-agent in it, the rsync version probe."""

    def __init__(self, cfg: GrabberConfig) -> None:
        self.private, self._lock = rundir.make(private_base(), PRIVATE_PREFIX, LOCK)
        self.agent: Agent | None = None
        self.rsync_version = versions.start_probe((cfg.rsync, "--version"))
        try:
            self.agent = Agent(self.private, cfg.ssh_agent)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """End the agent, reap the probe, remove the directory, then let go of it."""
        if self.agent is not None:
            self.agent.close()
        self.rsync_version()
        shutil.rmtree(self.private, ignore_errors=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1
