"""The free-space guard: whom to delete, in which order, and when to stop.

DESIGN "Retention" 2 and "Security properties" 6: never below `min_keep`
good snapshots per host, never a protected one, oldest first, round-robin.
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullsnap.grabber.retention import guard
from pullsnap.grabber.retention.guard import Candidate
from pullsnap.grabber.store.repository import snapshot_name

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def names(*days: int) -> list[str]:
    return [snapshot_name(T0 + dt.timedelta(days=d)) for d in days]


# --- required_free -----------------------------------------------------------------


def test_required_free_is_the_absolute_floor_without_history() -> None:
    assert guard.required_free(1000, 2.0, []) == 1000


def test_required_free_follows_average_growth() -> None:
    assert guard.required_free(100, 2.0, [1000, 3000]) == 4000
    assert guard.required_free(100, 0.5, [1000, 3000]) == 1000
    assert guard.required_free(10_000, 2.0, [1000, 3000]) == 10_000


def test_required_free_averages_only_the_recent_runs() -> None:
    old_giant = [10**12]
    recent = [100] * guard.AVERAGE_OVER
    assert guard.required_free(0, 1.0, old_giant + recent) == 100
    assert guard.required_free(0, 1.0, recent + old_giant) == (100 * 9 + 10**12) // 10


# --- next_victim ---------------------------------------------------------------------


def test_oldest_of_the_host_with_most_snapshots_goes_first() -> None:
    snaps = {"a": names(5, 6, 7), "b": names(1, 2, 3, 4), "c": names(0, 9)}
    assert guard.next_victim(snaps, min_keep=1) == Candidate("b", names(1)[0])


def test_unsorted_input_still_gives_the_oldest() -> None:
    snaps = {"a": names(7, 3, 5, 1)}
    assert guard.next_victim(snaps, min_keep=1) == Candidate("a", names(1)[0])


def test_round_robin_across_hosts_of_equal_size() -> None:
    snaps = {"b": names(1, 2, 3), "a": names(1, 2, 3)}
    order = guard.plan(0, 1, snaps, min_keep=1)
    assert [(v.host, v.name) for v in order] == [
        ("a", names(1)[0]),
        ("b", names(1)[0]),
        ("a", names(2)[0]),
        ("b", names(2)[0]),
    ]


def test_never_below_min_keep() -> None:
    snaps = {"a": names(1, 2, 3), "b": names(1, 2)}
    assert guard.next_victim(snaps, min_keep=3) is None
    assert guard.next_victim(snaps, min_keep=2) == Candidate("a", names(1)[0])
    # min_keep below one still keeps the newest snapshot of every host.
    assert guard.plan(0, 1, {"a": names(1, 2)}, min_keep=0) == [Candidate("a", names(1)[0])]


def test_protected_snapshots_are_skipped() -> None:
    snaps = {"a": names(1, 2, 3, 4)}
    protected = [Candidate("a", names(1)[0])]
    assert guard.next_victim(snaps, 1, protected) == Candidate("a", names(2)[0])
    everything = [Candidate("a", n) for n in names(1, 2, 3)]
    assert guard.next_victim(snaps, 1, everything) is None
    # A name protected for another host does not shield this host's snapshot.
    assert guard.next_victim(snaps, 1, [Candidate("b", names(1)[0])]) == Candidate("a", names(1)[0])


def test_a_fully_protected_big_host_yields_to_the_next() -> None:
    snaps = {"a": names(1, 2, 3, 4), "b": names(1, 2, 3)}
    protected = [Candidate("a", n) for n in names(1, 2, 3)]
    assert guard.next_victim(snaps, 1, protected) == Candidate("b", names(1)[0])


def test_nothing_may_go() -> None:
    assert guard.next_victim({}, 1) is None
    assert guard.next_victim({"a": [], "b": names(1)}, 1) is None


def test_plan_stops_when_enough_is_free() -> None:
    snaps = {"a": names(1, 2, 3, 4, 5)}
    frees = {Candidate("a", n): 10 for n in names(1, 2, 3, 4, 5)}
    assert guard.plan(100, 100, snaps, 1, frees=frees) == []
    assert guard.plan(85, 100, snaps, 1, frees=frees) == [Candidate("a", n) for n in names(1, 2)]
    # Not enough even after everything allowed: stop at min_keep.
    assert guard.plan(0, 10**9, snaps, 2, frees=frees) == [
        Candidate("a", n) for n in names(1, 2, 3)
    ]


def test_plan_does_not_modify_its_input() -> None:
    snaps = {"a": names(1, 2, 3)}
    guard.plan(0, 1, snaps, 1)
    assert snaps == {"a": names(1, 2, 3)}


# --- properties over random histories --------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[str, list[str]], set[Candidate], dict]:
    hosts = draw(st.lists(st.sampled_from("abcdef"), unique=True, max_size=5))
    snaps: dict[str, list[str]] = {}
    for host in hosts:
        days = draw(st.lists(st.integers(0, 400), unique=True, max_size=12))
        snaps[host] = names(*days)
    every = [Candidate(h, n) for h, ns in snaps.items() for n in ns]
    protected = set(draw(st.lists(st.sampled_from(every), max_size=4))) if every else set()
    frees = {c: draw(st.integers(0, 50)) for c in every}
    return snaps, protected, frees


@given(
    history=histories(),
    min_keep=st.integers(0, 5),
    free=st.integers(0, 200),
    want=st.integers(0, 400),
)
def test_plan_properties(
    history: tuple[dict[str, list[str]], set[Candidate], dict],
    min_keep: int,
    free: int,
    want: int,
) -> None:
    snaps, protected, frees = history
    order = guard.plan(free, want, snaps, min_keep, protected, frees)
    keep = max(1, min_keep)

    assert len(set(order)) == len(order)
    for victim in order:
        assert victim.name in snaps[victim.host]
        # Never a host's newest `keep` snapshots, never a protected one.
        assert victim.name not in sorted(snaps[victim.host])[-keep:]
        assert victim not in protected

    # Per host, oldest first: each victim is the oldest deletable one left.
    for host, host_names in snaps.items():
        taken = [v.name for v in order if v.host == host]
        assert taken == sorted(taken)
        unprotected = [n for n in sorted(host_names) if Candidate(host, n) not in protected]
        assert taken == unprotected[: len(taken)]

    # Stops as soon as enough is freed, and only stops early when nothing may go.
    running = free
    for victim in order:
        assert running < want
        running += frees[victim]
    if running < want:
        remaining = {h: [n for n in ns if Candidate(h, n) not in order] for h, ns in snaps.items()}
        assert guard.next_victim(remaining, min_keep, protected) is None
        for host, host_names in remaining.items():
            deletable = [
                n for n in sorted(host_names)[:-keep] if Candidate(host, n) not in protected
            ]
            assert deletable == []


@given(history=histories(), min_keep=st.integers(1, 4))
def test_next_victim_comes_from_a_host_with_the_most_deletable_pressure(
    history: tuple[dict[str, list[str]], set[Candidate], dict], min_keep: int
) -> None:
    snaps, protected, _ = history
    victim = guard.next_victim(snaps, min_keep, protected)
    if victim is None:
        return
    # No other host that could give something up has more snapshots.
    for host, host_names in snaps.items():
        could = [n for n in sorted(host_names)[:-min_keep] if Candidate(host, n) not in protected]
        if could:
            assert len(host_names) <= len(snaps[victim.host])


@pytest.mark.parametrize("min_keep", [1, 3])
def test_deleting_everything_allowed_leaves_min_keep_per_host(min_keep: int) -> None:
    snaps = {"a": names(*range(10)), "b": names(*range(4)), "c": names(0)}
    order = guard.plan(0, 10**9, snaps, min_keep)
    left = {h: len(ns) - sum(v.host == h for v in order) for h, ns in snaps.items()}
    assert left == {h: min(len(ns), min_keep) for h, ns in snaps.items()}
