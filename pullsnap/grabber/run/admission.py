"""May this host run now?  The per-host minimum interval.

A compromised backed-up host could trigger run after run to push good
snapshots out of retention.  Runs that produce a snapshot are therefore at
least `min_interval` apart, measured with the backup host's clock from the
start of the newest such run.  Failed runs produce nothing and do not
count, so a network blip can be retried at once.  The operator on the
backup host lets one run through early with `grabber allow-run HOST`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

from pullsnap import errors
from pullsnap.grabber import hints
from pullsnap.grabber.store.repository import GOOD_STATES, Attempt, HostRepo, iso, parse_name
from pullsnap.units import human_duration

ALLOW_RUN = ".allow-run"


def last_snapshot_start(attempts: Sequence[Attempt]) -> dt.datetime | None:
    """When the newest run that made a snapshot (good, partial or suspect) began."""
    for attempt in reversed(attempts):
        if attempt.state in GOOD_STATES and (attempt.has_tree or attempt.has_incomplete):
            begin = attempt.record.get("begin", "")
            try:
                return dt.datetime.strptime(begin, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
            except ValueError:
                return parse_name(attempt.name)
    return None


def wait_left(last: dt.datetime | None, now: dt.datetime, min_interval: float) -> float:
    """Seconds until the next run may start; 0 if it may start now (pure).

    A clock that went backwards (now before the last start) cannot tell how
    long it has been; the run is allowed rather than blocked until the clock
    catches up.
    """
    if last is None or min_interval <= 0 or now < last:
        return 0.0
    elapsed = (now - last).total_seconds()
    return max(0.0, min_interval - elapsed)


def admit(host: HostRepo, now: dt.datetime, min_interval: float, config: str = "") -> str | None:
    """Raise TooSoon, or return a note when an operator's allowance was used."""
    last = last_snapshot_start(host.attempts())
    left = wait_left(last, now, min_interval)
    if left <= 0:
        return None
    allowance = os.path.join(host.path, ALLOW_RUN)
    if os.path.lexists(allowance):
        os.unlink(allowance)
        return "the minimum interval was lifted once by `grabber allow-run`"
    assert last is not None
    ago = human_duration((now - last).total_seconds())
    after = iso(now + dt.timedelta(seconds=left))
    raise errors.TooSoon(
        f"{host.host}: the last snapshot began {iso(last)}, {ago} ago; min_interval is "
        f"{human_duration(min_interval)}, so the next run may start after {after} "
        f"(on the backup host: {hints.grabber(config, 'allow-run', host.host)})"
    )


def first_run_note(host: str, began: dt.datetime, min_interval: float, config: str) -> str:
    """What the first snapshot of a host tells the operator (pure): a second
    run right after it, as when testing a new setup, is refused as too soon."""
    after = iso(began + dt.timedelta(seconds=min_interval))
    return (
        f"first snapshot of {host}; runs are at least min_interval {human_duration(min_interval)}"
        f" apart, the next may start after {after}; to run again sooner, on the backup host: "
        f"{hints.grabber(config, 'allow-run', host)}"
    )


def allow_one_run(host: HostRepo) -> None:
    """`grabber allow-run`: let the next run of `host` start before its interval."""
    path = os.path.join(host.path, ALLOW_RUN)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    st = os.stat(host.path)
    if os.geteuid() == 0:
        os.chown(path, st.st_uid, st.st_gid)
