"""What the read-only operator commands (status, report, versions, diff, du)
share: checking that this user may read the repository, and host names
from the command line.  Each failure is one line that says what to do."""

from __future__ import annotations

import os

from pullsnap import errors
from pullsnap.config import GrabberConfig
from pullsnap.grabber import hints
from pullsnap.grabber.store.repository import HostRepo


def require_readable(cfg: GrabberConfig) -> None:
    if not os.path.isdir(cfg.repository):
        raise errors.UsageError(
            f"repository {cfg.repository} does not exist: check `repository` in {cfg.path}"
        )
    if not os.access(cfg.repository, os.R_OK | os.X_OK):
        raise errors.UsageError(
            f"cannot read the repository {cfg.repository} as this user: run as the grabber "
            "user (e.g. sudo -u pullsnap grabber ...) or as root"
        )


def existing_host(cfg: GrabberConfig, name: str) -> HostRepo:
    """The host's directory, after checking the repository can be read."""
    require_readable(cfg)
    host = HostRepo(cfg.repository, name)
    if not host.exists():
        raise errors.NoSuchHost(name, cfg.repository, hints.grabber(cfg.path, "list"))
    return host
