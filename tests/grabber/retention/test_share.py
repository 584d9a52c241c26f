"""The fair rule between hosts (retention/share.py, pure): reservations,
shares, what a run must leave for the others, and the plan that deletes
only when it reaches the target."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pullsnap.grabber.retention import share
from pullsnap.grabber.retention.share import Candidate
from pullsnap.grabber.store.space import Space, total

MIB = 1 << 20


def test_a_reservation_is_the_factor_times_the_recent_average() -> None:
    assert share.reservation([], 2.0) == Space()
    assert share.reservation([Space(100, 10), Space(300, 30)], 2.0) == Space(400, 40)
    old_giant = [Space(10**12, 10**9)]
    recent = [Space(100, 1)] * share.AVERAGE_OVER
    assert share.reservation(old_giant + recent, 1.0) == Space(100, 1)


def test_equal_shares_split_what_the_hosts_hold_and_what_is_free() -> None:
    held = {"web1": Space(300, 30), "web2": Space(100, 10)}
    assert share.shares(held, {}, Space(200, 20)) == {
        "web1": Space(300, 30), "web2": Space(300, 30)}  # fmt: skip


def test_a_set_share_is_kept_and_the_rest_is_split() -> None:
    held = {"big": Space(500, 5), "a": Space(0, 0), "b": Space(100, 1)}
    found = share.shares(held, {"big": Space(800, 0)}, Space(400, 94))
    assert found["big"] == Space(800, 33)  # inodes not set: an equal part of 100
    assert found["a"] == found["b"] == Space(100, 33)


def test_a_host_over_its_share_gets_nothing_kept_for_it() -> None:
    reserve = {"web1": Space(300 * MIB, 0), "web2": Space(2 * MIB, 10), "web3": Space(5, 5)}
    assert share.protected(reserve, "web2") == Space(300 * MIB + 5, 5)
    headroom = {"web1": Space(-1, 0), "web3": Space(2, 100)}
    assert share.protected(reserve, "web2", headroom) == Space(2, 5)


def test_over_share_is_what_a_host_must_give_up() -> None:
    assert share.over_share(Space(100, 10), Space(50, 5), Space(200, 20)) == Space()
    assert share.over_share(Space(180, 10), Space(50, 20), Space(200, 20)) == Space(30, 10)


def _c(host: str, name: str, tier: int, b: int, i: int = 0) -> Candidate:
    return Candidate(host, name, tier, Space(b, i))


def test_the_plan_takes_what_it_needs_and_no_more() -> None:
    found = [_c("web2", "a", 0, 10), _c("web1", "b", 0, 10), _c("web1", "c", 2, 50)]
    assert share.plan(found, Space(15, 0), "web1", Space(100, 0)) == found[:2]
    assert share.plan(found, Space(60, 0), "web1", Space(100, 0)) == found


def test_no_plan_when_the_deletions_fall_short() -> None:
    found = [_c("web2", "a", 0, 10), _c("web1", "b", 2, 10)]
    assert share.plan(found, Space(25, 0), "web1", Space(100, 0)) is None
    assert share.reachable(found, "web1", Space(100, 0)) == Space(20, 0)


def test_another_hosts_kept_snapshots_are_never_planned() -> None:
    kept = [_c("web2", "a", 2, 10**9, 10**9), _c("web2", "b", 1, 10**9, 10**9)]
    assert share.plan(kept, Space(1, 1), "web1", Space(10**12, 10**12)) is None
    assert share.reachable(kept, "web1", Space(10**12, 10**12)) == Space()


def test_own_kept_snapshots_go_only_while_over_share() -> None:
    own = [_c("web1", "a", 2, 10), _c("web1", "b", 2, 10), _c("web1", "c", 3, 10)]
    # 15 over its share: two of them (20 given up) bring it within; the third stays.
    assert share.plan(own, Space(30, 0), "web1", Space(15, 0)) is None
    assert share.plan(own, Space(20, 0), "web1", Space(15, 0)) == own[:2]
    assert share.plan(own, Space(5, 0), "web1", Space()) is None  # within its share


def test_a_deletion_that_frees_nothing_known_is_not_planned() -> None:
    found = [_c("web1", "empty", 0, 0, 0), _c("web1", "bytes", 0, 100, 0)]
    assert share.plan(found, Space(0, 1), "web1", Space()) is None
    assert share.plan(found, Space(50, 0), "web1", Space()) == found[1:]


candidates = st.lists(
    st.builds(
        Candidate,
        st.sampled_from(["web1", "web2", "web3"]),
        st.text("abcdef", min_size=1, max_size=3),
        st.integers(0, 5),
        st.builds(Space, st.integers(0, 100), st.integers(0, 100)),
    ),
    max_size=12,
)
spaces = st.builds(Space, st.integers(0, 300), st.integers(0, 300))


@given(candidates, spaces, spaces)
def test_a_plan_reaches_the_target_and_keeps_to_the_rule(
    found: list[Candidate], short: Space, own_over: Space
) -> None:
    chosen = share.plan(found, short, "web1", own_over)
    if chosen is None:
        # Nothing allowed would have reached it either.
        assert not share.reachable(found, "web1", own_over).covers(short)
        return
    assert total(c.frees for c in chosen).covers(short)
    for c in chosen:
        assert c.tier == 0 or c.host == "web1", "another host's kept snapshot"
    kept = [c for c in chosen if c.tier > 0]
    if kept:
        # Each own kept one was taken while the host was still over its share.
        assert not total(c.frees for c in kept[:-1]).covers(own_over)


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), spaces, min_size=1),
    st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), spaces),
    spaces,
)
def test_a_host_within_its_share_always_finds_its_need_and_the_others_reservations(
    held: dict[str, Space], reserve: dict[str, Space], free: Space
) -> None:
    """The claim of the module docstring: when every host keeps to its equal
    share (its holdings and its next run), the free space covers a run of
    any of them with what is protected for the others."""
    reserve = {h: reserve.get(h, Space()) for h in held}
    shares = share.shares(held, {}, free)
    if any(share.over_share(held[h], reserve[h], shares[h]) != Space() for h in held):
        return
    headroom = {h: shares[h] - held[h] for h in held}
    for host in held:
        assert free.covers(reserve[host] + share.protected(reserve, host, headroom))
