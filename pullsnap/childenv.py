"""The environment every child gets: fixed and minimal, never ours.

Whatever cron, systemd, sshd or an operator's shell put into our
environment stays out of rsync's, ssh's, the agent's and the hooks'
(Twisted's spawnProcess and subprocess take the environment explicitly).
"""

from __future__ import annotations

PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def child_env(**extra: str) -> dict[str, str]:
    """PATH and LC_ALL=C (messages parsed in English), plus `extra`."""
    return {"PATH": PATH, "LC_ALL": "C", **extra}
