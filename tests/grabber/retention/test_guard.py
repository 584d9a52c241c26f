"""The free-space guard's pure decisions: how much must be free, and whom
to delete next (least valued first, the fullest host within a tier, oldest
first).  On disk, across hosts and locks: tests/grabber/retention/test_prune.py."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from pullsnap.grabber.retention import guard, prune
from pullsnap.grabber.retention.guard import Candidate
from pullsnap.grabber.store.repository import HostRepo, snapshot_name
from tests.grabber.retention.test_prune import NOW, config, days

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


# --- the next victim -------------------------------------------------------------------


def test_ranked_victims_lowest_tier_first_then_the_fullest_host() -> None:
    ranked = {"a": [(2, "n1"), (0, "n5")], "b": [(0, "n2"), (0, "n3")], "c": [(1, "n0")]}
    good = {"a": 5, "b": 9, "c": 20}
    assert guard.next_ranked_victim(ranked, good) == Candidate("b", "n2")
    del ranked["b"]
    assert guard.next_ranked_victim(ranked, good) == Candidate("a", "n5")
    assert guard.next_ranked_victim({"a": []}, good) is None


@st.composite
def rankings(draw: st.DrawFn) -> tuple[dict[str, list[tuple[int, str]]], dict[str, int]]:
    hosts = draw(st.lists(st.sampled_from("abcdef"), unique=True, max_size=5))
    ranked = {}
    for host in hosts:
        days = draw(st.lists(st.integers(0, 400), unique=True, max_size=8))
        ranked[host] = [(draw(st.integers(0, 5)), n) for n in names(*days)]
    good = {host: draw(st.integers(0, 30)) for host in hosts}
    return ranked, good


@given(rankings())
def test_the_victim_is_least_valued_then_from_the_fullest_host_then_oldest(
    case: tuple[dict[str, list[tuple[int, str]]], dict[str, int]],
) -> None:
    ranked, good = case
    chosen = guard.next_ranked_victim(ranked, good)
    everything = [(rank, host, name) for host, c in ranked.items() for rank, name in c]
    if not everything:
        assert chosen is None
        return
    assert chosen is not None
    rank = next(r for r, n in ranked[chosen.host] if n == chosen.name)
    for other_rank, host, name in everything:
        assert rank <= other_rank
        if other_rank == rank:
            assert good[chosen.host] >= good[host]
            if good[host] == good[chosen.host]:
                assert chosen.name <= name


def test_tier_follows_the_deciding_rule() -> None:
    from pullsnap.grabber.retention.rules import Decision

    decision = Decision(
        keep={"k1": ("weekly 1/4",), "k2": ("daily 2/7", "monthly 1/6"), "k3": ("newest good",),
              "k4": ("within 24h",), "k5": ("inspect (the newest suspect)",)},
        remove={"r1": "not kept by any rule"}, anchor=None,
    )  # fmt: skip
    tiers = {name: guard.tier(decision, name) for name in ("k1", "k2", "k3", "k4", "k5", "r1")}
    assert tiers == {"k1": 3, "k2": 2, "k3": None, "k4": None, "k5": 1, "r1": 0}
    assert guard.tier(decision, "unknown") is None


def test_free_bytes_is_what_an_unprivileged_writer_may_use(tmp_path) -> None:
    import os

    st_ = os.statvfs(tmp_path)
    assert guard.free_bytes(str(tmp_path)) == st_.f_bavail * st_.f_frsize
    assert guard.free_bytes(str(tmp_path)) <= st_.f_bfree * st_.f_frsize


# --- on disk, across hosts ------------------------------------------------------------


def test_guard_takes_what_the_policy_values_least_first(tmp_path) -> None:
    cfg = config(str(tmp_path), keep_daily=2, keep_weekly=2)
    one, two = HostRepo(cfg.repository, "web1"), HostRepo(cfg.repository, "web2")
    a = days(one, 30)
    b = days(two, 3)
    order = []
    skip: set[str] = set()
    while (victim := guard.victim(cfg, NOW, skip)) is not None:
        decision, _ = prune.decision_for(cfg, HostRepo(cfg.repository, victim.host), NOW)
        order.append((victim.host, victim.name, guard.tier(decision, victim.name)))
        assert guard.delete_for_space(cfg, "web1", victim, NOW)
    tiers = [tier for _, _, tier in order]
    assert tiers == sorted(tiers), "never a more valued snapshot before a less valued one"
    assert tiers[0] == guard.TIERS["remove"]
    # The newest good (min_keep 1) stays on each host.
    assert [x.name for x in one.attempts()] == [a[-1]]
    assert [x.name for x in two.attempts()] == [b[-1]]


def test_guard_leaves_a_host_with_a_run_in_progress_alone(tmp_path) -> None:
    cfg = config(str(tmp_path), keep_daily=0, keep_weekly=0)
    mine, busy = HostRepo(cfg.repository, "web1"), HostRepo(cfg.repository, "web2")
    days(mine, 2)
    theirs = days(busy, 5)
    with busy.lock({"pid": 1, "since": "x"}):
        victim = guard.victim(cfg, NOW, set())
        assert victim is not None and victim.host == "web2"  # more snapshots
        assert not guard.delete_for_space(cfg, "web1", victim, NOW)
        assert guard.victim(cfg, NOW, {"web2"}).host == "web1"
    assert [a.name for a in busy.attempts()] == theirs
