"""The time policy (retention/rules.py): borg's bucket semantics, what is never
removed, clock jumps, and properties over random histories."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from pullsnap.config import HostPolicy
from pullsnap.grabber.retention import guard, rules
from pullsnap.grabber.store.repository import Attempt, snapshot_name

HOST = "web1"
UTC = dt.UTC
T0 = dt.datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
NONE = HostPolicy(
    keep_within=0, keep_daily=0, keep_weekly=0, keep_monthly=0, keep_yearly=0, min_interval=0
)


def utc(when: dt.datetime) -> dt.datetime:
    return when.astimezone(UTC)


def snap(when: dt.datetime, state: str = "complete", tree: bool = True, **record) -> Attempt:
    name = snapshot_name(when)
    return Attempt(name, state, tree, False, {"host": HOST, "state": state, **record})


def decide(attempts, policy, min_keep=1, now=None, fresh="", protect=None):
    anchor = rules.anchor_for(attempts, policy, now or T0 + dt.timedelta(days=1), fresh)
    return rules.decide(attempts, policy, min_keep, anchor, HOST, protect, fresh, utc)


def days_back(count: int, hour: int = 2) -> list[Attempt]:
    return [snap(T0.replace(hour=hour) - dt.timedelta(days=i)) for i in range(count)]


# --- borg's bucket semantics ------------------------------------------------------------


def test_daily_keeps_the_newest_of_each_of_the_newest_days() -> None:
    history = [snap(T0 - dt.timedelta(hours=6 * i)) for i in range(20)]  # 4 a day
    decision = decide(history, replace(NONE, keep_daily=3))
    kept_daily = sorted(n for n, r in decision.keep.items() if r[0].startswith("daily"))
    # Newest of 25th (02:00), 24th (20:00), 23rd (20:00).
    assert kept_daily == [
        snapshot_name(dt.datetime(2026, 11, 23, 20, 0, tzinfo=UTC)),
        snapshot_name(dt.datetime(2026, 11, 24, 20, 0, tzinfo=UTC)),
        snapshot_name(T0),
    ]
    assert len(decision.remove) == 17


def test_periods_are_local_time() -> None:
    """23:30 and 00:30 UTC are one day at UTC-3 and two days in UTC."""
    before = snap(dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    late = snap(dt.datetime(2026, 11, 24, 23, 30, tzinfo=UTC))
    early = snap(dt.datetime(2026, 11, 25, 0, 30, tzinfo=UTC))
    history, policy = [before, late, early], replace(NONE, keep_daily=2)
    west = dt.timezone(dt.timedelta(hours=-3))
    anchor = early.when
    in_utc = rules.decide(history, policy, 1, anchor, HOST, to_local=utc)
    in_west = rules.decide(history, policy, 1, anchor, HOST, to_local=lambda t: t.astimezone(west))
    assert list(in_utc.remove) == [before.name]
    assert list(in_west.remove) == [late.name]


def test_a_rule_short_of_periods_keeps_the_oldest() -> None:
    history = [snap(T0 - dt.timedelta(minutes=10 * i)) for i in range(5)]  # all one day
    decision = decide(history, replace(NONE, keep_daily=3))
    assert decision.keep[history[0].name][0] == "daily 1/3"
    assert decision.keep[history[-1].name][0] == "daily 2/3, oldest"
    assert sorted(decision.remove) == sorted(a.name for a in history[1:4])


def test_earlier_rules_use_up_their_periods() -> None:
    """As borg: a snapshot kept by keep_within does not count for daily, and
    daily goes on to older days."""
    history = days_back(10)
    policy = replace(NONE, keep_within=36 * 3600, keep_daily=2)
    decision = decide(history, policy)
    reasons = {n: r[0] for n, r in decision.keep.items()}
    assert reasons[history[0].name].startswith("within")
    assert reasons[history[1].name].startswith("within")
    assert reasons[history[2].name] == "daily 1/2"
    assert reasons[history[3].name] == "daily 2/2"
    assert set(decision.remove) == {a.name for a in history[4:]}


def test_weekly_monthly_yearly_take_the_newest_of_their_periods() -> None:
    history = days_back(800)
    policy = replace(NONE, keep_weekly=2, keep_monthly=2, keep_yearly=3)
    decision = decide(history, policy)
    first = {n: r[0] for n, r in decision.keep.items()}
    by_rule: dict[str, list[str]] = {}
    for name, reason in first.items():
        by_rule.setdefault(reason.split(" ")[0], []).append(name)
    assert len(by_rule["weekly"]) == 2
    assert len(by_rule["monthly"]) == 2
    assert len(by_rule["yearly"]) == 3
    # The newest snapshot is the first week's; monthly starts at the month before.
    assert first[history[0].name] == "weekly 1/2"
    assert max(by_rule["monthly"]) < snapshot_name(dt.datetime(2026, 11, 1, tzinfo=UTC))


# --- never removed ------------------------------------------------------------------------


def test_never_removed_whatever_the_policy_says() -> None:
    old = T0 - dt.timedelta(days=400)
    history = [
        snap(old + dt.timedelta(days=i)) for i in range(5)
    ] + [
        Attempt(snapshot_name(old + dt.timedelta(days=10)), "unknown", True, False, {}),
        snap(old + dt.timedelta(days=11), state="running", tree=False),
        Attempt(snapshot_name(old + dt.timedelta(days=12)), "complete", False, True,
                {"host": HOST, "state": "complete"}),
        snap(old + dt.timedelta(days=13), host="web2"),
    ]  # fmt: skip
    protect = {history[0].name: "link-dest of the running x"}
    decision = decide(history, NONE, min_keep=2, protect=protect)
    assert set(decision.remove) == {history[1].name, history[2].name}
    assert "newest good" in decision.keep[history[4].name]
    assert "min_keep 2" in decision.keep[history[3].name]
    assert decision.keep[history[0].name] == ("link-dest of the running x",)
    for a in history[5:]:
        assert a.name in decision.keep and guard.tier(decision, a.name) is None


def test_suspect_is_not_good_and_the_newest_is_kept_for_inspection() -> None:
    good = days_back(3)
    suspects = [snap(T0 - dt.timedelta(days=d, hours=1), suspect={"reason": "x"}) for d in (5, 6)]
    decision = decide(good + suspects, NONE, min_keep=3)
    assert decision.keep[suspects[0].name][0].startswith("inspect")
    assert decision.remove == {suspects[1].name: "suspect"}
    assert guard.tier(decision, suspects[0].name) == guard.TIERS["inspect"]
    # Suspect ones are no anchor and do not count towards min_keep.
    newest_suspect = snap(T0 + dt.timedelta(hours=1), suspect={"reason": "x"})
    decision = decide([*good, newest_suspect], NONE, min_keep=1)
    assert decision.anchor == good[0].when
    assert set(decision.remove) == {good[1].name, good[2].name}


def test_partial_counts_as_good_unless_the_policy_says_not() -> None:
    history = [snap(T0 - dt.timedelta(days=2)), snap(T0 - dt.timedelta(days=1), state="partial")]
    counted = decide(history, NONE)
    assert counted.remove == {history[0].name: "not kept by any rule"}
    uncounted = decide(history, replace(NONE, partial_is_good=False))
    assert uncounted.anchor == history[0].when
    assert uncounted.remove == {}
    assert uncounted.keep[history[1].name][0].startswith("inspect")


def test_failed_attempts_age_out_after_the_newest_good() -> None:
    failed_old = snap(T0 - dt.timedelta(days=5), state="failed", tree=False)
    failed_new = snap(T0 + dt.timedelta(hours=1), state="interrupted", tree=False)
    history = [failed_old, *days_back(2), failed_new]
    decision = decide(history, NONE, min_keep=2)
    assert decision.remove == {failed_old.name: "failed attempt"}
    assert failed_new.name in decision.keep


def test_nothing_is_removed_without_a_good_snapshot() -> None:
    history = [snap(T0 - dt.timedelta(days=i), suspect={"r": 1}) for i in range(4)]
    decision = decide(history, NONE)
    assert decision.anchor is None and decision.remove == {}


def test_guard_tiers_follow_the_rules() -> None:
    history = days_back(40)
    policy = replace(NONE, keep_daily=3, keep_weekly=2, keep_monthly=1)
    decision = decide(history, policy, min_keep=1)
    tiers = {a.name: guard.tier(decision, a.name) for a in history}
    assert tiers[history[0].name] is None  # newest good
    assert tiers[history[1].name] == guard.TIERS["daily"]
    assert {tiers[n] for n in decision.remove} == {0}
    assert guard.TIERS["weekly"] in tiers.values()


# --- clocks ------------------------------------------------------------------------------


def test_the_wall_clock_only_picks_the_anchor() -> None:
    """A clock years ahead or behind decides exactly as a correct one."""
    history = [snap(T0 - dt.timedelta(hours=7 * i)) for i in range(60)]
    policy = replace(NONE, keep_within=24 * 3600, keep_daily=3, keep_weekly=2)
    correct = decide(history, policy, now=T0 + dt.timedelta(hours=1))
    ahead = decide(history, policy, now=T0 + dt.timedelta(days=5 * 365))
    behind = decide(history, policy, now=T0 - dt.timedelta(days=5 * 365))
    assert ahead == correct and behind == correct


def _run_made(history: list[Attempt], made: dt.datetime, now: dt.datetime, policy: HostPolicy):
    fresh = snap(made)
    return decide([*history, fresh], policy, min_keep=2, now=now, fresh=fresh.name), fresh


def test_a_run_with_a_wrong_clock_expires_no_more_than_a_correct_one() -> None:
    history = [snap(T0 - dt.timedelta(hours=5 * i)) for i in range(50)]
    policy = replace(NONE, keep_within=24 * 3600, keep_daily=4, keep_weekly=2)
    real = T0 + dt.timedelta(hours=5)
    correct, _ = _run_made(history, real, real, policy)
    for skew in (dt.timedelta(days=5 * 365), -dt.timedelta(days=5 * 365)):
        wrong, fresh = _run_made(history, real + skew, real + skew, policy)
        assert set(wrong.remove) <= set(correct.remove)
        assert wrong.keep[fresh.name] == ("made by this run",)


# --- properties over random histories -------------------------------------------------------

_STATES = st.sampled_from(["complete"] * 6 + ["partial", "failed", "interrupted", "suspect"])


@st.composite
def histories(draw) -> list[Attempt]:
    offsets = draw(st.lists(st.integers(0, 3 * 365 * 24), min_size=0, max_size=40, unique=True))
    found = []
    for hours in sorted(offsets):
        state = draw(_STATES)
        extra = {"suspect": {"reason": "x"}} if state == "suspect" else {}
        state = "complete" if state == "suspect" else state
        tree = state in ("complete", "partial")
        found.append(snap(T0 - dt.timedelta(hours=hours), state=state, tree=tree, **extra))
    return found


_POLICIES = st.builds(
    HostPolicy,
    keep_within=st.sampled_from([0, 3600, 86400, 7 * 86400]),
    keep_daily=st.integers(0, 10),
    keep_weekly=st.integers(0, 6),
    keep_monthly=st.integers(0, 8),
    keep_yearly=st.integers(0, 3),
    partial_is_good=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(history=histories(), policy=_POLICIES, min_keep=st.integers(1, 4))
def test_policy_properties(history: list[Attempt], policy: HostPolicy, min_keep: int) -> None:
    decision = decide(history, policy, min_keep)
    names = {a.name for a in history}
    assert set(decision.keep) | set(decision.remove) == names
    assert not set(decision.keep) & set(decision.remove)
    good = [a for a in history if rules.counts_as_good(a, policy)]
    if good:
        newest = max(good, key=lambda a: a.name)
        assert newest.name in decision.keep
        # min_keep newest good stay.
        for a in sorted(good, key=lambda a: a.name)[-min_keep:]:
            assert a.name in decision.keep
    # At most the asked count per bucket (its "oldest" fill included).
    for rule, _ in rules.BUCKETS:
        claimed = [r for r in decision.keep.values() if r[0].split(" ")[0] == rule]
        assert len(claimed) <= getattr(policy, f"keep_{rule}")
    # Anything younger than keep_within (from the anchor) stays.
    if decision.anchor is not None:
        for a in history:
            if (decision.anchor - a.when).total_seconds() <= policy.keep_within:
                assert a.name in decision.keep
    # Idempotent: pruning the survivors again removes nothing.
    survivors = [a for a in history if a.name not in decision.remove]
    again = decide(survivors, policy, min_keep)
    assert again.remove == {}
    assert again.anchor == decision.anchor
