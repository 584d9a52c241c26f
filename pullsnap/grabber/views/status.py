"""`grabber status`: is every host backed up recently enough?

Reads the repository (records, the host's `.verify.json`, the usage cache),
prints one block per host (or JSON, or one Nagios line), optionally
rewrites a Prometheus textfile, runs on_stale for hosts that just went
stale, and exits 11 (STALE) when any host is stale: a monitoring check.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence

from pullsnap.config import GrabberConfig
from pullsnap.grabber.store import atomicfile
from pullsnap.grabber.store.base import open_store
from pullsnap.grabber.store.repository import HostRepo, hosts
from pullsnap.grabber.store.space import Filesystem, filesystem
from pullsnap.grabber.views import health, prometheus, readonly, repospace
from pullsnap.grabber.views.health import HostStatus


def host_names(cfg: GrabberConfig, only: Sequence[str]) -> list[str]:
    if only:
        return list(dict.fromkeys(only))
    return sorted(set(hosts(cfg.repository)) | set(cfg.hosts))


def collect(
    cfg: GrabberConfig,
    only: Sequence[str] = (),
    now: dt.datetime | None = None,
    max_age: float | None = None,
    with_usage: bool = True,
) -> list[HostStatus]:
    """Every selected host's status, read from the repository."""
    readonly.require_readable(cfg)
    now = now or dt.datetime.now(dt.UTC)
    found = []
    for name in host_names(cfg, only):
        host, policy = HostRepo(cfg.repository, name), cfg.policy_for(name)
        verify = health.parse_verify(
            atomicfile.read_json(os.path.join(host.path, health.VERIFY_FILE))
        )
        used = open_store(host).usage().total if with_usage and host.exists() else None
        found.append(health.summarize(
            name, host.attempts(), now=now, locked=host.exists() and host.is_locked(),
            max_age=policy.max_age if max_age is None else max_age,
            verify=verify, used=used, partial_is_good=policy.partial_is_good,
            warn_partial=policy.warn_partial,
        ))  # fmt: skip
    return found


def filesystem_of(path: str) -> Filesystem | None:
    """The repository's filesystem (free and size), None when it cannot be told."""
    try:
        return filesystem(path)
    except OSError:
        return None


def room(cfg: GrabberConfig) -> repospace.RepoSpace | None:
    """The repository's room, bytes and inodes, against the status thresholds."""
    fs = filesystem_of(cfg.repository)
    limits = repospace.Limits(cfg.free_warn, cfg.free_crit, cfg.free_inodes_warn,
                              cfg.free_inodes_crit)  # fmt: skip
    return None if fs is None else repospace.assess(fs, limits)


def write_prometheus(
    cfg: GrabberConfig, statuses: Sequence[HostStatus], now: dt.datetime, target: str,
    warn: Callable[[str], None],
) -> bool:  # fmt: skip
    """Rewrite node_exporter's textfile `target`; False (and a warning) if it cannot."""
    text = prometheus.render(statuses, now, cfg.repository, filesystem_of(cfg.repository))
    try:
        atomicfile.replace(target, text.encode("utf-8"), 0o644)
    except OSError as e:
        warn(f"grabber: cannot write {target}: {e.strerror}: check the directory exists "
             "and is writable by this user")  # fmt: skip
        return False
    return True
