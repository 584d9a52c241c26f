"""The free-space guard: before each run, make room by the fair rule or refuse.

The rule is share.py's (pure); this module weighs the repository and acts.
Before a run of H, in bytes and in inodes alike (statvfs f_bavail, f_favail):

    1  free >= H's need + what is protected for the other hosts' next runs
       (their full reservations): go ahead.  Most runs stop here, having
       read a few records of each host and nothing else.
    2  H's interrupted deletions (its trash) are finished; measure again.
    3  Each host's holdings (the store's usage, cached until its snapshots
       change) give the shares; a host already over its share gets nothing
       protected; measure again.
    4  Plan what to delete, with what each snapshot holds alone (the store's
       per-snapshot unique figure), least valued first:

           tier 0  what its host's retention removes anyway, any host's
                   (another host's under that host's lock, after deciding
                   again; none of a host with a run in progress)
                1  H's newest suspect (or uncounted partial) one, kept for inspection
                2  H's snapshots kept only by keep_daily, then 3 weekly,
                   4 monthly, 5 yearly: only while H holds more than its share

       and carry it out only if it reaches the target.  Otherwise nothing
       is deleted and the run is refused (NoSpace, exit 5) with a message
       naming the host that is growing.

Never a candidate: the newest good snapshot, the newest min_keep good ones,
anything within keep_within, the base of a running backup, anything not
ours, and anything another host's retention keeps.  The run then goes ahead
with a `Budget`: what it must leave free, watched while it runs (watch.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from pullsnap import errors
from pullsnap.config import GrabberConfig
from pullsnap.grabber.retention import prune, rules, share
from pullsnap.grabber.retention.share import Candidate
from pullsnap.grabber.store.base import HostUsage, Store, store_of
from pullsnap.grabber.store.repository import INCOMPLETE, HostRepo, hosts, iso
from pullsnap.grabber.store.space import Space, free_space, show

# What the guard may take, least valued first.  A snapshot kept for any
# other reason (within, newest, min_keep, protected, in progress, not ours)
# is never a candidate; of another host, only tier 0 is.
TIERS: dict[str, int] = {
    "remove": 0,
    "inspect": 1,
    "daily": 2,
    "weekly": 3,
    "monthly": 4,
    "yearly": 5,
}


@dataclass(frozen=True)
class Budget:
    """What a run must leave free while it runs: the other hosts' reservations."""

    keep: Space = field(default_factory=Space)
    hosts: tuple[str, ...] = ()  # whose next runs that is for


@dataclass(frozen=True)
class Room:
    deleted: list[str] = field(default_factory=list)  # HOST/NAME
    budget: Budget = field(default_factory=Budget)


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


# --- weighing -------------------------------------------------------------------------------


def floor(cfg: GrabberConfig) -> Space:
    """The least a run needs free, whatever its history."""
    return Space(cfg.min_free_abs, cfg.min_free_inodes)


def reservation(cfg: GrabberConfig, store: Store) -> Space:
    """What `store`'s host's next run may add (share.reservation)."""
    growth = [store.added(a) for a in store.host.recent_good(share.AVERAGE_OVER)]
    return share.reservation(growth, cfg.min_free_avg)


def reservations(cfg: GrabberConfig, own: Store) -> dict[str, Space]:
    """Every host's reservation (the running host's from its own store)."""
    found = {}
    for name in {*hosts(cfg.repository), own.host.host}:
        store = own if name == own.host.host else store_of(cfg, name)
        found[name] = reservation(cfg, store)
    return found


def largest_need(cfg: GrabberConfig, reserve: Mapping[str, Space]) -> Space:
    """What a run needs free, with what it keeps for the others, for the host
    that needs most (each side on its own): what `grabber check` compares."""
    needs = [r.at_least(floor(cfg)) + share.protected(reserve, h) for h, r in reserve.items()]
    found = floor(cfg)
    for need in needs:
        found = found.at_least(need)
    return found


def with_reserves(reserve: Mapping[str, Space]) -> tuple[str, ...]:
    return tuple(sorted(h for h, r in reserve.items() if r != Space()))


def candidates(
    cfg: GrabberConfig, own: str, usages: Mapping[str, HostUsage], now: dt.datetime
) -> list[Candidate]:
    """What the guard could delete, in the order it would (see the module docstring)."""
    zero_own, zero_others, kept_own = [], [], []
    for host in sorted(usages):
        repo = HostRepo(cfg.repository, host)
        if host != own and repo.is_locked():
            continue  # a run of its own is in progress: its snapshots are not ours to take
        decision, attempts = prune.decision_for(cfg, repo, now)
        alone = {t.name: t.alone for t in usages[host].trees}
        good = sum(rules.counts_as_good(a, cfg.policy_for(host)) for a in attempts)
        for a in attempts:
            rank = tier(decision, a.name)
            if rank is None or (rank > 0 and host != own):
                continue
            frees = alone.get(a.name, Space()) + alone.get(a.name + INCOMPLETE, Space())
            c = Candidate(host, a.name, rank, frees)
            if rank > 0:
                kept_own.append(c)
            elif host == own:
                zero_own.append(c)
            else:
                zero_others.append((-good, a.name, c))
    kept_own.sort(key=lambda c: (c.tier, c.name))
    return zero_own + [c for _, _, c in sorted(zero_others, key=lambda x: x[:2])] + kept_own


# --- acting ---------------------------------------------------------------------------------


def delete_for_space(cfg: GrabberConfig, own: str, chosen: Candidate, now: dt.datetime) -> bool:
    """Delete `chosen` now (the guard needs the space); False if it may not go after all.

    Another host's snapshot is deleted only under that host's lock, after
    deciding again that its own retention removes it: a running backup of
    that host, or a change of its history meanwhile, leaves it alone.
    """
    store = store_of(cfg, chosen.host)
    if chosen.host == own:
        store.delete(chosen.name)
        return True
    holder = {"pid": os.getpid(), "since": iso(now), "by": f"the free-space guard of {own}"}
    with store.host.try_lock(holder) as locked:
        if not locked:
            return False
        decision, _ = prune.decision_for(cfg, store.host, now)
        if tier(decision, chosen.name) != TIERS["remove"]:
            return False
        store.delete(chosen.name)
    return True


def make_room(
    cfg: GrabberConfig,
    store: Store,
    log: Callable[[str], None],
    now: dt.datetime,
    reading: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    measure: Callable[[str], Space] = free_space,
) -> Room:
    """Make room for a run of `store`'s host (its lock held) by the fair rule,
    or raise NoSpace.  `reading`: the context in which other trees are read
    (--super trees keep their owners' modes); `measure`: what is free."""
    own = store.host.host
    reserve = reservations(cfg, store)
    need = reserve[own].at_least(floor(cfg))
    keep = share.protected(reserve, own)
    if measure(cfg.repository).covers(need + keep):
        return Room([], Budget(keep, with_reserves({**reserve, own: Space()})))
    store.empty_trash()  # an interrupted deletion of its own: the cheapest room there is
    free = measure(cfg.repository)
    if free.covers(need + keep):
        return Room([], Budget(keep, with_reserves({**reserve, own: Space()})))

    with reading():
        usages = {h: (store if h == own else store_of(cfg, h)).usage()
                  for h in reserve}  # fmt: skip
    held = {h: u.held for h, u in usages.items()}
    fixed = {h: Space(cfg.policy_for(h).share, cfg.policy_for(h).share_inodes) for h in held}
    shares = share.shares(held, fixed, free)
    headroom = {h: shares[h] - held[h] for h in held}
    keep = share.protected(reserve, own, headroom)
    kept_for = with_reserves({h: r.at_most(headroom[h].positive())
                              for h, r in reserve.items() if h != own})  # fmt: skip
    if free.covers(need + keep):
        return Room([], Budget(keep, kept_for))

    short = (need + keep - free).positive()
    own_over = share.over_share(held[own], need, shares[own])
    found = candidates(cfg, own, usages, now)
    chosen = share.plan(found, short, own, own_over)
    if chosen is None:
        reach = share.reachable(found, own, own_over)
        raise errors.NoSpace(refusal(own, need, keep, kept_for, free, reach, held, shares))
    deleted = []
    for c in chosen:
        log(f"low on space: deleting {c.host}/{c.name} (it alone holds {show(c.frees)})")
        if delete_for_space(cfg, own, c, now):
            deleted.append(f"{c.host}/{c.name}")
    free = measure(cfg.repository)
    if not free.covers(need + keep):
        raise errors.NoSpace(
            f"{own}: deleted {len(deleted)} snapshot(s) as planned, and still {show(free)} "
            f"free of the {show(need + keep)} needed (others changed the repository "
            "meanwhile?): the next run tries again"
        )
    return Room(deleted, Budget(keep, kept_for))


def refusal(
    own: str, need: Space, keep: Space, kept_for: tuple[str, ...], free: Space, reach: Space,
    held: Mapping[str, Space], shares: Mapping[str, Space],
) -> str:  # fmt: skip
    """Why a run of `own` may not go ahead, naming the host that is growing (pure)."""
    others = f", plus {show(keep)} kept for the next runs of {', '.join(kept_for)}"
    others = others if kept_for else ""
    text = f"{own}: a run needs {show(need)} free{others}; {show(free)} are free"
    if share.over_share(held[own], need, shares[own]) != Space():
        return (
            f"{text}, and {own} is growing: it holds {show(held[own])} of its "
            f"{show(shares[own])} share, and what it may delete (its own older snapshots "
            f"down to min_keep, keep_within and the newest, and what retention removes "
            f"anyway) holds {show(reach)} alone: add space, give {own} a larger share "
            f"([hosts.{own}] share, share_inodes) or lower its min_free_avg, or delete "
            f"some of its snapshots"
        )
    over = [h for h in sorted(held) if h != own and not shares[h].covers(held[h])]
    if over:
        named = ", ".join(f"{h} ({show(held[h])} of {show(shares[h])})" for h in over)
        return (
            f"{text}; {own} keeps to its share, but {named} hold(s) more than its share: "
            f"their own runs give it back, or add space, or set their shares "
            f"([hosts.NAME] share, share_inodes)"
        )
    return (
        f"{text}; every host keeps to its share, so something else fills the filesystem "
        f"(or the shares set add up to more than it holds): add space"
    )
