"""The free-space guard: before each run, make room or refuse.

Before a run the repository's filesystem must have

    required = max(min_free_abs, min_free_avg × average growth of the host)

bytes free, where a host's growth is what its recent good runs added (the
store says how much: for hardlinked snapshots rsync's "Total transferred
file size", everything else being a hard link).  While it has not, the
guard first finishes interrupted deletions of this host (the trash), then
deletes, one at a time and measuring again after each, the snapshot the time
rules value least, across hosts:

    tier 0  what a prune would remove anyway
         1  the newest suspect (or uncounted partial) one, kept for inspection
         2  kept only by keep_daily, then 3 weekly, 4 monthly, 5 yearly

Within a tier the host with the most good snapshots gives up its oldest, so
equal hosts take turns.  A snapshot kept for any other reason (the newest
good one, min_keep, keep_within, the base of a running backup, not ours) is
never taken, and another host's snapshots go only under that host's lock,
after deciding again.  When nothing more may go the run is refused
(NoSpace, exit 5).  How much a deletion frees is unknowable in advance
(hard links), hence one victim at a time.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pullsnap import errors
from pullsnap.config import GrabberConfig
from pullsnap.grabber.retention import prune, rules
from pullsnap.grabber.store.base import Store, open_store
from pullsnap.grabber.store.repository import HostRepo, hosts, iso
from pullsnap.units import human_size

AVERAGE_OVER = 10  # recent good runs the growth is averaged over

# What the guard may take, least valued first.  A snapshot kept for any
# other reason (within, newest, min_keep, protected, in progress, not ours)
# is never a candidate.
TIERS: dict[str, int] = {
    "remove": 0,
    "inspect": 1,
    "daily": 2,
    "weekly": 3,
    "monthly": 4,
    "yearly": 5,
}


@dataclass(frozen=True)
class Candidate:
    host: str
    name: str  # snapshot name; names sort by time


def free_bytes(path: str) -> int:
    """Bytes an unprivileged writer may still use on `path`'s filesystem (f_bavail)."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def required_free(min_free_abs: int, min_free_avg: float, recent_growth: Sequence[int]) -> int:
    """Bytes that must be free before a run of a host with this growth history."""
    recent = list(recent_growth)[-AVERAGE_OVER:]
    average = sum(recent) / len(recent) if recent else 0.0
    return max(min_free_abs, int(min_free_avg * average))


def required_for(cfg: GrabberConfig, store: Store) -> int:
    """What must be free before a run of `store`'s host."""
    growth = [store.added(a) for a in store.host.good()]
    return required_free(cfg.min_free_abs, cfg.min_free_avg, growth)


def tier(decision: rules.Decision, name: str) -> int | None:
    """How little the rules value `name` (0 = least), or None: not for the guard."""
    if name in decision.remove:
        return TIERS["remove"]
    reasons = decision.keep.get(name, ())
    if not reasons:
        return None
    # A reason's first word says which rule it is.
    kinds = {reason.split(" ", 1)[0] for reason in reasons}
    if not kinds <= set(TIERS):
        return None
    return min(TIERS[kind] for kind in kinds)


def next_ranked_victim(
    ranked: Mapping[str, Sequence[tuple[int, str]]], good_counts: Mapping[str, int]
) -> Candidate | None:
    """The next victim (pure): `ranked` maps host -> (tier, name) of what the
    guard may take.  The lowest tier goes first, across hosts; within a tier
    the host with the most good snapshots gives up its oldest."""
    best: tuple[int, int, str, str] | None = None
    for host, candidates in ranked.items():
        for rank, name in candidates:
            key = (rank, -good_counts.get(host, 0), name, host)
            if best is None or key < best:
                best = key
    return None if best is None else Candidate(best[3], best[2])


def victim(cfg: GrabberConfig, now: dt.datetime, skip: set[str]) -> Candidate | None:
    """The snapshot the rules value least, across hosts not in `skip`."""
    ranked: dict[str, list[tuple[int, str]]] = {}
    good: dict[str, int] = {}
    for name in hosts(cfg.repository):
        if name in skip:
            continue
        decision, attempts = prune.decision_for(cfg, HostRepo(cfg.repository, name), now)
        policy = cfg.policy_for(name)
        good[name] = sum(rules.counts_as_good(a, policy) for a in attempts)
        tiers = [(tier(decision, a.name), a.name) for a in attempts]
        ranked[name] = [(rank, n) for rank, n in tiers if rank is not None]
    return next_ranked_victim(ranked, good)


def delete_for_space(cfg: GrabberConfig, own: str, chosen: Candidate, now: dt.datetime) -> bool:
    """Delete `chosen` now (the guard needs the space); False if its host is busy.

    Another host's snapshots are deleted only under that host's lock, after
    deciding again: its running backup is never touched.
    """
    store = open_store(HostRepo(cfg.repository, chosen.host))
    if chosen.host == own:
        store.delete(chosen.name)
        return True
    holder = {"pid": os.getpid(), "since": iso(now), "by": f"the free-space guard of {own}"}
    with store.host.try_lock(holder) as locked:
        if not locked:
            return False
        decision, _ = prune.decision_for(cfg, store.host, now)
        if tier(decision, chosen.name) is None:
            return False
        store.delete(chosen.name)
    return True


def make_room(
    cfg: GrabberConfig, store: Store, log: Callable[[str], None], now: dt.datetime
) -> list[str]:
    """Delete until the required space is free (this host's lock held); the
    snapshots deleted, as HOST/NAME.  Raises NoSpace when nothing more may go."""
    required = required_for(cfg, store)
    deleted: list[str] = []
    busy: set[str] = set()
    trash_emptied = False
    while True:
        free = free_bytes(cfg.repository)
        if free >= required:
            return deleted
        if not trash_emptied:
            # An interrupted deletion of this host's is the cheapest space there is.
            store.empty_trash()
            trash_emptied = True
            continue
        chosen = victim(cfg, now, busy)
        if chosen is None:
            raise errors.NoSpace(
                f"need {human_size(required)} free in {cfg.repository}, have {human_size(free)}"
                f" after pruning {len(deleted)} snapshot(s); nothing more may go (min_keep = "
                f"{cfg.min_keep}, keep_within, newest good): add space or lower "
                "min_free_abs/min_keep/keep_within"
            )
        log(f"low on space: deleting {chosen.host}/{chosen.name}")
        if delete_for_space(cfg, store.host.host, chosen, now):
            deleted.append(f"{chosen.host}/{chosen.name}")
        else:
            busy.add(chosen.host)
