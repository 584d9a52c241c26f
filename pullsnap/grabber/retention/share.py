"""The fair rule between hosts that share a repository (pure).

Every quantity is a `Space`: bytes and inodes, each weighed on its own.

    reservation   what a host's next run may add: min_free_avg x the average
                  of what its last 10 good runs really took (the store's
                  measured "added"), in bytes and in inodes
    need          what a run of the host itself must find free: its
                  reservation, at least min_free_abs / min_free_inodes
    share         what a host may hold when space is short: its own `share`
                  / `share_inodes`, else an equal part of what the hosts
                  hold plus what is free, after the set shares
    protected     what a run must leave free for the others: each other
                  host's reservation, counted only as far as that host stays
                  within its share (a host that already holds more than its
                  share gets nothing kept free for its next run)

A run of H goes ahead when the free space covers H's need plus what is
protected for the others.  When it does not, H may give up what any host's
own retention removes anyway, and its own older snapshots while H holds more
than its share, nothing else; the plan is made first, with what each
snapshot holds alone, and carried out only if it reaches the target.

When every host is within its share, the free space covers each host's
need with what is protected for the others (the shares add up to what the
hosts hold plus what is free): a host that keeps to its share never loses a
snapshot its retention keeps, and never waits, because of another host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pullsnap.grabber.store.space import Space, total

AVERAGE_OVER = 10  # recent good runs the growth is averaged over


def reservation(growth: Sequence[Space], factor: float) -> Space:
    """`factor` x the average of the last AVERAGE_OVER entries of `growth`."""
    recent = list(growth)[-AVERAGE_OVER:]
    if not recent:
        return Space()
    summed = total(recent)
    count = len(recent)
    return Space(int(factor * summed.bytes / count), int(factor * summed.inodes / count))


def shares(held: Mapping[str, Space], fixed: Mapping[str, Space], free: Space) -> dict[str, Space]:
    """Each host's share: `fixed` where a side is set (non-zero), else an equal
    part of what is left of the hosts' holdings plus the free space."""
    capacity = free + total(held.values())

    def side(get: str) -> dict[str, int]:
        set_here = {h: getattr(fixed.get(h, Space()), get) for h in held}
        unset = [h for h, value in set_here.items() if value <= 0]
        left = max(0, getattr(capacity, get) - sum(v for v in set_here.values() if v > 0))
        equal = left // len(unset) if unset else 0
        return {h: value if value > 0 else equal for h, value in set_here.items()}

    b, i = side("bytes"), side("inodes")
    return {h: Space(b[h], i[h]) for h in held}


def protected(reserve: Mapping[str, Space], own: str,
              headroom: Mapping[str, Space] | None = None) -> Space:  # fmt: skip
    """What a run of `own` must leave free: the other hosts' reservations,
    each no larger than the room left in that host's share (`headroom`)."""
    kept = Space()
    for host, reserved in reserve.items():
        if host == own:
            continue
        if headroom is not None:
            reserved = reserved.at_most(headroom.get(host, Space()).positive())
        kept += reserved
    return kept


def over_share(held: Space, need: Space, share: Space) -> Space:
    """How much a host must give up to keep its holdings and its next run
    within its share (0 on a side it keeps to)."""
    return (held + need - share).positive()


@dataclass(frozen=True)
class Candidate:
    host: str
    name: str  # snapshot name; names sort by time
    tier: int  # 0: its host's retention removes it anyway; more: kept, least valued first
    frees: Space  # what it holds alone: deleting it frees at least this


def plan(candidates: Sequence[Candidate], short: Space, own: str,
         own_over: Space) -> list[Candidate] | None:  # fmt: skip
    """The deletions that free `short`, taken in order, or None when all of
    them would not: then nothing is deleted.

    A candidate of another host must be one its retention removes anyway
    (tier 0); one of `own` that its retention keeps is taken only while
    `own` is over its share by `own_over`.  A candidate that frees nothing
    alone is left: the plan counts only what it knows it frees."""
    chosen, freed = _take(candidates, short, own, own_over)
    return chosen if freed.covers(short) else None


def reachable(candidates: Sequence[Candidate], own: str, own_over: Space) -> Space:
    """What every deletion `plan` may choose frees together."""
    return _take(candidates, None, own, own_over)[1]


def _take(candidates: Sequence[Candidate], short: Space | None, own: str,
          own_over: Space) -> tuple[list[Candidate], Space]:  # fmt: skip
    chosen: list[Candidate] = []
    freed = Space()
    given_up = Space()  # by `own`, of what its retention keeps
    for c in candidates:
        if short is not None and freed.covers(short):
            break
        if c.tier > 0 and (c.host != own or given_up.covers(own_over)):
            continue
        if not _helps(c.frees, None if short is None else short - freed):
            continue
        chosen.append(c)
        freed += c.frees
        if c.tier > 0:
            given_up += c.frees
    return chosen, freed


def _helps(frees: Space, still: Space | None) -> bool:
    """Does deleting what frees `frees` bring `still` (None: anything) nearer?"""
    if still is None:
        return frees.bytes > 0 or frees.inodes > 0
    return (still.bytes > 0 and frees.bytes > 0) or (still.inodes > 0 and frees.inodes > 0)
