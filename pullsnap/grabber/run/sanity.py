"""Is a new snapshot plausible?  Suspect snapshots and `grabber accept`.

A compromised backed-up host can send "exclude everything" or delete its
data before a run.  Such a snapshot is kept (it may be evidence) but if its
file count or byte count dropped by more than `suspect_drop` against the
previous good snapshot it is marked suspect: it does not become `latest`,
is not a --link-dest base, and does not count as good for retention or
`min_keep`.  An operator who knows the shrink was real clears the mark with
`grabber accept HOST SNAPSHOT`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

from pullsnap import errors
from pullsnap.grabber import hints
from pullsnap.grabber.run.context import Found, Run
from pullsnap.grabber.store.repository import HostRepo, iso


def suspicion(
    previous: Mapping[str, int], current: Mapping[str, int], drop: float
) -> dict[str, Any] | None:
    """Why the current stats look wrong next to the previous ones, or None (pure).

    Compares rsync's "Number of files" and "Total file size"; a drop of more
    than `drop` (a fraction) in either is suspect.  0 disables the check.
    """
    if drop <= 0:
        return None
    reasons = []
    for key, label in (("files", "files"), ("total_size", "bytes")):
        before, after = int(previous.get(key, 0)), int(current.get(key, 0))
        if before > 0 and after < before * (1 - drop):
            reasons.append(f"{label} fell from {before:,} to {after:,}")
    if not reasons:
        return None
    return {"reason": "; ".join(reasons), "limit": drop}


def check(run: Run) -> Found:
    """Is the run's new snapshot suspect?  Asked before the record says it
    finished and before it is published."""
    previous = run.host.newest_good()
    if previous is None or run.result is None:
        return Found()
    drop = run.cfg.policy_for(run.host.host).suspect_drop
    found = suspicion(previous.record.get("stats", {}), run.result.stats, drop)
    if found is None:
        return Found()
    found["previous"] = previous.name
    text = (
        f"snapshot kept but marked suspect ({found['reason']} since {previous.name}); "
        f"if that is right: {hints.grabber(run.cfg.path, 'accept', run.host.host, run.name)}"
    )
    run.out.log(text)
    return Found({"suspect": found}, code=errors.SUSPECT, message=text)


def accept(host: HostRepo, name: str, now: dt.datetime) -> None:
    """`grabber accept`: a suspect snapshot becomes a good one (under the host lock)."""
    record = host.read_record(name)
    if record is None or not record.get("suspect"):
        raise errors.UsageError(f"{host.host}/{name} is not a suspect snapshot")
    holder = {"pid": os.getpid(), "since": iso(now), "by": "grabber accept"}
    with host.lock(holder):
        record["accepted_suspect"] = {**record.pop("suspect"), "at": iso(now)}
        host.write_record(name, record)
        newest = host.newest_good()
        if newest is not None:
            host.point_latest(newest.name)
