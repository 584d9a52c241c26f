"""Which snapshots the time policy keeps, and why (pure).

The bucket rules are borg prune's (borg help prune; archiver.py
`prune_split`), over the host's good snapshots, newest first:

    keep_within   every good snapshot at most this much older than the anchor
    keep_daily    the newest snapshot of each of the N newest days that have one,
    keep_weekly   ... ISO weeks,
    keep_monthly  ... months,
    keep_yearly   ... years,

with periods in the backup host's local time.  The rules run in that order;
a snapshot an earlier rule kept does not count towards a later one, and its
period is used up (the later rule goes on to older periods).  When a rule
finds fewer periods than it asks for, it also keeps the oldest good
snapshot ("oldest" in its reason).

Clocks lie, so nothing here reads one.  `keep_within` counts back from the
anchor, the newest good snapshot not dated after the backup host's clock
(`anchor_for`); buckets count periods that hold snapshots, not periods of
the calendar.  The snapshot a run just made is kept and takes part only
from the next prune on: a run whose clock was years ahead or behind decides
over the same history, with the same anchor, as a run with a correct clock.

Whatever the rules say, these are kept: the newest good snapshot, the newest
`min_keep` good ones, protected names (the link-dest base of a running
backup, the run's own snapshot), anything younger than `keep_within`,
attempts newer than the anchor (their trees are reused by the next run),
runs in progress, finished trees a crash left unpublished, and anything
without this grabber's record (not ours to delete).  Suspect snapshots (and
partial ones when `partial_is_good` is false) never count as good; the
newest is kept for inspection, older ones age out like unkept snapshots.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pullsnap.config import HostPolicy
from pullsnap.grabber.store.repository import GOOD_STATES, Attempt
from pullsnap.units import human_duration

# The bucket rules in the order they run, with the period a local time falls in.
BUCKETS: tuple[tuple[str, Callable[[dt.datetime], tuple[int, ...]]], ...] = (
    ("daily", lambda t: (t.year, t.month, t.day)),
    ("weekly", lambda t: tuple(t.isocalendar())[:2]),
    ("monthly", lambda t: (t.year, t.month)),
    ("yearly", lambda t: (t.year,)),
)


def local_time(when: dt.datetime) -> dt.datetime:
    """The backup host's local time (TZ and DST as the C library sees them)."""
    return when.astimezone()


@dataclass(frozen=True)
class Decision:
    """What a prune keeps (name -> reasons, the deciding one first) and
    removes (name -> why, oldest first)."""

    keep: Mapping[str, tuple[str, ...]]
    remove: Mapping[str, str]
    anchor: dt.datetime | None


def counts_as_good(attempt: Attempt, policy: HostPolicy) -> bool:
    """A good snapshot for retention: suspect never, partial if the policy says so."""
    return attempt.good and (attempt.state != "partial" or policy.partial_is_good)


def anchor_for(
    attempts: Iterable[Attempt], policy: HostPolicy, now: dt.datetime, exclude: str = ""
) -> dt.datetime | None:
    """The newest good snapshot not dated after `now`; if every one is
    (the clock went back), the newest good one.  None: no good snapshot."""
    times = sorted(a.when for a in attempts if a.name != exclude and counts_as_good(a, policy))
    if not times:
        return None
    past = [t for t in times if t <= now]
    return past[-1] if past else times[-1]


def _kind(attempt: Attempt, policy: HostPolicy, host: str) -> str:
    """good, inspect, leftover, running, unpublished or foreign."""
    record = attempt.record
    if not record or record.get("host", host) != host:
        return "foreign"
    if attempt.state in GOOD_STATES:
        if not attempt.has_tree:
            return "unpublished" if attempt.has_incomplete else "foreign"
        return "good" if counts_as_good(attempt, policy) else "inspect"
    if attempt.state in ("failed", "interrupted"):
        return "leftover"
    if attempt.state == "running":
        return "running"
    return "foreign"


_KEPT_AS = {
    "running": "a run in progress (or one the next run marks interrupted)",
    "unpublished": "finished before a crash: the next run publishes it",
    "foreign": "no record of this grabber: left alone",
}


def decide(
    attempts: Sequence[Attempt],
    policy: HostPolicy,
    min_keep: int,
    anchor: dt.datetime | None,
    host: str,
    protect: Mapping[str, str] | None = None,
    fresh: str = "",
    to_local: Callable[[dt.datetime], dt.datetime] = local_time,
) -> Decision:
    """Keep and remove lists for one host's attempts (see the module docstring).

    `protect` maps names to the reason they must stay (they still count in
    the buckets); `fresh` is the snapshot the current run made: kept, and
    left out of the buckets as it is left out of `anchor_for`.
    """
    protect = dict(protect or {})
    if fresh:
        protect[fresh] = "made by this run"
    keep: dict[str, list[str]] = {}
    remove: dict[str, str] = {}

    def hold(name: str, reason: str) -> None:
        keep.setdefault(name, []).append(reason)

    kinds = {a.name: _kind(a, policy, host) for a in attempts}
    if anchor is None:
        # No good snapshot to count from: nothing is removed.
        for a in attempts:
            hold(a.name, protect.get(a.name) or "no good snapshot yet: nothing is removed")
        return Decision({n: tuple(r) for n, r in keep.items()}, {}, None)

    within = dt.timedelta(seconds=policy.keep_within)
    good = sorted(
        (a for a in attempts if kinds[a.name] == "good" and a.name != fresh),
        key=lambda a: a.name,
        reverse=True,
    )

    # The rules, borg's way.
    claimed: set[str] = set()
    if policy.keep_within > 0:
        for a in good:
            if anchor - a.when <= within:
                hold(a.name, f"within {human_duration(policy.keep_within)}")
                claimed.add(a.name)
    for rule, period_of in BUCKETS:
        wanted = getattr(policy, f"keep_{rule}")
        if wanted <= 0 or not good:
            continue
        taken, last = 0, None
        for a in good:
            period = period_of(to_local(a.when))
            if period == last:
                continue
            last = period
            if a.name not in claimed:
                taken += 1
                hold(a.name, f"{rule} {taken}/{wanted}")
                claimed.add(a.name)
                if taken == wanted:
                    break
        oldest = good[-1]
        if taken < wanted and oldest.name not in claimed:
            hold(oldest.name, f"{rule} {taken + 1}/{wanted}, oldest")
            claimed.add(oldest.name)

    # What stays whatever the rules say.
    if good:
        hold(good[0].name, "newest good")
    for a in good[: max(1, min_keep)]:
        hold(a.name, f"min_keep {max(1, min_keep)}")
    for name, why in protect.items():
        if name in kinds:
            hold(name, why)
    inspect = [a for a in attempts if kinds[a.name] == "inspect"]
    if inspect:
        newest = max(inspect, key=lambda a: a.name)
        hold(newest.name, "inspect (the newest suspect or uncounted partial one)")

    for a in sorted(attempts, key=lambda a: a.name):
        kind = kinds[a.name]
        if kind in _KEPT_AS:
            hold(a.name, _KEPT_AS[kind])
            continue
        if a.name in keep:
            continue
        if a.when > anchor:
            hold(a.name, "newer than the newest good snapshot")
        elif anchor - a.when <= within:
            hold(a.name, f"within {human_duration(policy.keep_within)}")
        elif kind == "good":
            remove[a.name] = "not kept by any rule"
        elif kind == "inspect":
            remove[a.name] = "suspect" if a.record.get("suspect") else "partial, not counted"
        else:
            remove[a.name] = f"{a.state} attempt"
    return Decision({n: tuple(r) for n, r in keep.items()}, remove, anchor)
