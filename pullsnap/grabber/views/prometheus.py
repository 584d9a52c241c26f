"""Host status as a node_exporter textfile (Prometheus text exposition format).

    # HELP pullsnap_last_success_timestamp_seconds Start of the newest good snapshot ...
    # TYPE pullsnap_last_success_timestamp_seconds gauge
    pullsnap_last_success_timestamp_seconds{host="web1"} 1795659420

node_exporter's textfile collector reads every `*.prom` file in its
`--collector.textfile.directory`; `grabber status --prometheus FILE` (or the
`prometheus_file` key) rewrites one atomically.  Pure rendering; the format
is Prometheus' "Text-based format" (exposition_formats.md): one HELP and
TYPE line per metric family, label values with `\\`, `"` and newline escaped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from pullsnap.grabber.store.repository import GOOD_STATES, parse_name
from pullsnap.grabber.store.space import Filesystem
from pullsnap.grabber.views.health import HostStatus

# name -> (help text, value of a host's status; None leaves the sample out)
PER_HOST: dict[str, tuple[str, Callable[[HostStatus, dt.datetime], float | None]]] = {
    "pullsnap_last_success_timestamp_seconds": (
        "Start of the newest good snapshot (Unix time); 0 when there is none.",
        lambda s, now: 0 if s.last_good is None else _started(s.last_good),
    ),
    "pullsnap_stale": (
        "1 when the newest good snapshot is older than max_age (or missing).",
        lambda s, now: int(s.stale),
    ),
    "pullsnap_max_age_seconds": ("The host's staleness threshold.", lambda s, now: s.max_age),
    "pullsnap_partial": (
        "1 when the newest good snapshot is partial (unreadable files or missing sources) "
        "and warn_partial is on.",
        lambda s, now: int(bool(s.warnings)),
    ),
    "pullsnap_last_run_success": (
        "1 when the newest finished run made a good snapshot.",
        lambda s, now: None if s.last_run is None else int(s.last_run_state in GOOD_STATES),
    ),
    "pullsnap_last_run_duration_seconds": (
        "How long the newest finished run took.",
        lambda s, now: s.last_seconds,
    ),
    "pullsnap_last_run_transferred_bytes": (
        "Bytes the newest finished run received over the wire.",
        lambda s, now: s.last_received,
    ),
    "pullsnap_last_run_added_bytes": (
        "Bytes the newest finished run's snapshot took on disk (measured, directories included).",
        lambda s, now: s.last_added,
    ),
    "pullsnap_last_run_added_inodes": (
        "Inodes the newest finished run's snapshot took.",
        lambda s, now: s.last_added_inodes,
    ),
    "pullsnap_last_run_files": (
        "Files in the newest finished run's snapshot.",
        lambda s, now: s.last_files,
    ),
    "pullsnap_snapshots": ("Good snapshots of the host.", lambda s, now: s.snapshots),
    "pullsnap_suspect_snapshots": (
        "Snapshots kept but marked suspect (they shrank too much).",
        lambda s, now: len(s.suspect),
    ),
    "pullsnap_failed_attempts": ("Failed runs the repository remembers.", lambda s, now: s.failed),
    "pullsnap_interrupted_attempts": (
        "Runs that ended without a verdict.",
        lambda s, now: s.interrupted,
    ),
    "pullsnap_used_bytes": (
        "Space the host's snapshots use on disk, every hardlinked file once.",
        lambda s, now: s.used,
    ),
    "pullsnap_last_verify_ok": (
        "1 when the last grabber verify found no mismatch; absent when never run.",
        lambda s, now: None if s.verify is None else int(s.verify.result == "ok"),
    ),
}


def _started(name: str) -> float:
    when = parse_name(name)
    return 0 if when is None else when.timestamp()


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


# name -> (help text, value of the repository's filesystem; None leaves it out)
REPOSITORY: dict[str, tuple[str, Callable[[Filesystem], int | None]]] = {
    "pullsnap_repository_free_bytes": (
        "Free space for the repository (f_bavail).",
        lambda fs: fs.free.bytes,
    ),
    "pullsnap_repository_size_bytes": (
        "Size of the repository's filesystem.",
        lambda fs: fs.size.bytes,
    ),
    "pullsnap_repository_free_inodes": (
        "Free inodes for the repository (f_favail); absent where inodes are made as needed.",
        lambda fs: fs.free.inodes if fs.inode_limit else None,
    ),
    "pullsnap_repository_inodes": (
        "Inodes of the repository's filesystem.",
        lambda fs: fs.size.inodes if fs.inode_limit else None,
    ),
}


def render(
    statuses: Sequence[HostStatus], now: dt.datetime, repository: str, fs: Filesystem | None
) -> str:
    """The whole textfile (pure)."""
    lines = []
    for name, (text, value) in PER_HOST.items():
        samples = [(s.host, value(s, now)) for s in statuses]
        samples = [(host, v) for host, v in samples if v is not None]
        if not samples:
            continue
        lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
        lines += [f'{name}{{host="{escape(host)}"}} {number(v)}' for host, v in samples]
    label = f'{{repository="{escape(repository)}"}}'
    for name, (text, value) in REPOSITORY.items():
        found = value(fs) if fs is not None else None
        if found is not None:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} gauge", f"{name}{label} {found}"]
    lines += [
        "# HELP pullsnap_status_timestamp_seconds When grabber status wrote this file.",
        "# TYPE pullsnap_status_timestamp_seconds gauge",
        f"pullsnap_status_timestamp_seconds {number(int(now.timestamp()))}",
    ]
    return "\n".join(lines) + "\n"
