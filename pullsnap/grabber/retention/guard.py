"""The free-space guard (the original design), as pure decisions.

Before a run the repository's filesystem must have

    required = max(min_free_abs, min_free_avg × average growth of the host)

bytes free, where a host's growth is what its recent good runs added
(rsync's "Total transferred file size": with --link-dest everything else
is a hardlink).  While it has not, delete the oldest snapshot of the host
that has the most, round-robin across hosts, never leaving a host with
fewer than `min_keep` good snapshots and never touching a protected one
(the link-dest base of a running backup).  How much a deletion frees is
unknowable in advance (hardlinks), so the caller deletes one victim,
measures again and asks for the next.

The guard itself uses `next_ranked_victim`: candidates come ranked by how
little the time policy values them (retention.GUARD_TIERS) and the lowest
rank goes first; `next_victim` is the same choice when all ranks are equal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

AVERAGE_OVER = 10


@dataclass(frozen=True)
class Candidate:
    host: str
    name: str  # snapshot name; names sort by time


def required_free(min_free_abs: int, min_free_avg: float, recent_growth: Sequence[int]) -> int:
    """Bytes that must be free before a run of a host with this growth history."""
    recent = list(recent_growth)[-AVERAGE_OVER:]
    average = sum(recent) / len(recent) if recent else 0.0
    return max(min_free_abs, int(min_free_avg * average))


def next_victim(
    snapshots: Mapping[str, Sequence[str]],
    min_keep: int,
    protected: Iterable[Candidate] = (),
) -> Candidate | None:
    """The snapshot to delete next, or None when nothing may go.

    `snapshots` maps host -> names of its good snapshots.  The host with the
    most snapshots gives up its oldest deletable one; ties go to the host
    whose oldest snapshot is older, then by name, so repeated calls go
    round-robin across hosts of equal size.
    """
    keep = max(1, min_keep)
    shielded = set(protected)
    best: tuple[int, str, str] | None = None
    choice: Candidate | None = None
    for host, names in snapshots.items():
        ordered = sorted(names)
        if len(ordered) <= keep:
            continue
        # Only the oldest len - keep are deletable; the newest `keep` stay.
        deletable = [
            n for n in ordered[: len(ordered) - keep] if Candidate(host, n) not in shielded
        ]
        if not deletable:
            continue
        key = (-len(ordered), deletable[0], host)
        if best is None or key < best:
            best, choice = key, Candidate(host, deletable[0])
    return choice


def plan(
    free: int,
    required: int,
    snapshots: Mapping[str, Sequence[str]],
    min_keep: int,
    protected: Iterable[Candidate] = (),
    frees: Mapping[Candidate, int] | None = None,
) -> list[Candidate]:
    """Victims in order, assuming each frees `frees[victim]` bytes (default 0).

    For `--dry-run` and tests; the live guard measures after each deletion.
    """
    remaining = {host: list(names) for host, names in snapshots.items()}
    shielded = list(protected)
    order: list[Candidate] = []
    while free < required:
        victim = next_victim(remaining, min_keep, shielded)
        if victim is None:
            break
        order.append(victim)
        remaining[victim.host].remove(victim.name)
        free += (frees or {}).get(victim, 0)
    return order


def next_ranked_victim(
    ranked: Mapping[str, Sequence[tuple[int, str]]], good_counts: Mapping[str, int]
) -> Candidate | None:
    """The guard's next victim when the time policy ranks the candidates.

    `ranked` maps host -> (tier, name) of the snapshots the policy lets the
    guard take, tier 0 valued least (retention.GUARD_TIERS).  The lowest
    tier goes first, across hosts; within a tier the host with the most good
    snapshots gives up its oldest, so equal hosts take turns.
    """
    best: tuple[int, int, str, str] | None = None
    for host, candidates in ranked.items():
        for tier, name in candidates:
            key = (tier, -good_counts.get(host, 0), name, host)
            if best is None or key < best:
                best = key
    return None if best is None else Candidate(best[3], best[2])
