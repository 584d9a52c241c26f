"""The free-space watch while a run pulls (retention/watch.py)."""

from __future__ import annotations

from pullsnap.grabber.retention.guard import Budget
from pullsnap.grabber.retention.watch import SpaceWatch
from pullsnap.grabber.store.space import Space


class Falling:
    """A filesystem whose free space the run takes, step by step."""

    def __init__(self, *frees: Space) -> None:
        self.frees = list(frees)

    def __call__(self, root: str) -> Space:
        return self.frees.pop(0) if len(self.frees) > 1 else self.frees[0]


def test_the_run_may_take_all_but_what_is_kept_for_the_others() -> None:
    budget = Budget(Space(100, 10), ("web2",))
    fs = Falling(Space(1000, 100), Space(500, 50), Space(100, 10), Space(99, 50))
    watch = SpaceWatch("/srv/pullsnap", "web1", budget, fs)
    assert watch.needed
    assert watch() == "" and watch() == ""
    reason = watch()
    assert reason.startswith("web1 is growing: its run was stopped with 99 B and 50 inodes free")
    assert "100 B and 10 inodes kept for the next runs of web2" in reason
    assert "after taking 901 B and 50 inodes" in reason


def test_inodes_stop_it_as_bytes_do() -> None:
    watch = SpaceWatch("/r", "web1", Budget(Space(0, 10), ("web2",)),
                       Falling(Space(10**9, 100), Space(10**9, 9)))  # fmt: skip
    assert "9 inodes free" in watch()


def test_nothing_kept_for_others_needs_no_watch() -> None:
    watch = SpaceWatch("/r", "web1", Budget(), Falling(Space(0, 0)))
    assert not watch.needed and watch() == ""
