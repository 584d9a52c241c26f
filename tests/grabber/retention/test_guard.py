"""The free-space guard on a temporary repository (retention/guard.py): it
deletes only when its plan reaches the target, never what another host's
retention keeps, its own kept snapshots only while over its share, and
names the host that is growing.  The rule itself: test_share.py.

The repository lives on the machine's filesystem; the guard is shown a
small one instead (`Virtual`): its size minus what the repository holds."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.config import grabber_from_dict
from pullsnap.grabber.retention import guard, prune
from pullsnap.grabber.store.base import open_store
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.store.space import Space
from tests.grabber.retention.test_prune import NOW, T0, days, make

RULES = {"keep_within": 0, "keep_daily": 2, "keep_weekly": 0, "keep_monthly": 0,
         "keep_yearly": 0, "min_interval": 0}  # fmt: skip


def config(root: str, policy: dict | None = None, **top):
    values = {"repository": root, "min_keep": 1, "min_free_abs": 0, "min_free_inodes": 0,
              "min_free_avg": 2.0, **top}  # fmt: skip
    return grabber_from_dict({**values, "policy": {**RULES, **(policy or {})}})


def held(root: str) -> Space:
    """What the repository takes on disk, each inode once (but the guard's
    own small files, which a real filesystem would count as well)."""
    seen: set[int] = set()
    used = Space()
    for dirpath, dirs, files in os.walk(root):
        for name in [".", *dirs, *(f for f in files if f not in (".lock", ".usage.json"))]:
            st = os.lstat(os.path.join(dirpath, name))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                used += Space(st.st_blocks * 512, 1)
    return used


class Virtual:
    """A filesystem holding only the repository, with `free` left now: what
    the guard measures, going up as it deletes."""

    def __init__(self, root: str, free: Space) -> None:
        self.size = held(root) + free

    def __call__(self, root: str) -> Space:
        return self.size - held(root)


def grew(host: HostRepo, names: str | list[str], added: Space) -> None:
    """Give snapshots' records a measured growth (what their runs would have written)."""
    for name in [names] if isinstance(names, str) else names:
        record = host.read_record(name)
        assert record is not None
        host.write_record(name, {**record, "added": added.as_record()})


def state(*hosts: HostRepo) -> dict[str, list[str]]:
    return {h.host: [a.name for a in h.attempts()] for h in hosts}


def test_the_guard_deletes_nothing_when_its_plan_falls_short(tmp_path: Path) -> None:
    """Old behaviour: delete across hosts one at a time, then fail anyway."""
    cfg = config(str(tmp_path), min_free_abs="1P")
    web1, web2 = HostRepo(cfg.repository, "web1"), HostRepo(cfg.repository, "web2")
    days(web1, 6)
    days(web2, 6)
    before = state(web1, web2)
    with pytest.raises(errors.NoSpace) as refused:
        guard.make_room(cfg, open_store(web1), print, NOW)
    assert state(web1, web2) == before
    assert "web1 is growing" in str(refused.value)


def test_a_plan_that_reaches_is_carried_out_and_takes_what_retention_removes(
    tmp_path: Path,
) -> None:
    cfg = config(str(tmp_path))
    web1, web2 = HostRepo(cfg.repository, "web1"), HostRepo(cfg.repository, "web2")
    mine, theirs = days(web1, 4), days(web2, 4)
    grew(web1, mine, Space(30_000, 6))  # web1's next run: 60,000 bytes and 12 inodes
    fs = Virtual(cfg.repository, Space(40_000, 1000))
    said: list[str] = []
    room = guard.make_room(cfg, open_store(web1), said.append, NOW, measure=fs)
    assert fs(cfg.repository).covers(Space(60_000, 12))
    # What each host's retention removes anyway (keep_daily 2), web1's first.
    assert room.deleted and room.deleted[0] == f"web1/{mine[0]}"
    for gone in room.deleted:
        host, name = gone.split("/")
        assert name in (mine[:2] if host == "web1" else theirs[:2])
    assert set(theirs[2:]) <= {a.name for a in web2.attempts()}
    assert all(line.startswith("low on space: deleting ") for line in said)


def test_another_hosts_kept_history_stays_whatever_the_growing_host_needs(
    tmp_path: Path,
) -> None:
    """The flood of issue 15: web1 grew 150 MiB on a small repository; web2
    keeps six daily snapshots (keep_daily 7)."""
    cfg = config(str(tmp_path), {"keep_daily": 7}, min_free_abs="20M")
    web1, web2 = HostRepo(cfg.repository, "web1"), HostRepo(cfg.repository, "web2")
    theirs = [make(web2, T0 - dt.timedelta(days=d)) for d in range(6)][::-1]
    flood = make(web1, T0 - dt.timedelta(hours=5))
    grew(web1, flood, Space(150 << 20, 10))
    with pytest.raises(errors.NoSpace) as refused:
        guard.make_room(cfg, open_store(web1), print, NOW,
                        measure=lambda root: Space(204 << 20, 10**6))  # fmt: skip
    assert [a.name for a in web2.attempts()] == theirs
    assert [a.name for a in web1.attempts()] == [flood]
    text = str(refused.value)
    assert text.startswith("web1: a run needs 300.0 MiB and ")
    assert "204.0 MiB" in text and "web1 is growing" in text


def test_a_host_over_its_share_gives_up_its_own_kept_snapshots_first(tmp_path: Path) -> None:
    cfg = config(str(tmp_path), {"keep_daily": 10})
    web1 = HostRepo(cfg.repository, "web1")
    mine = days(web1, 5)
    grew(web1, mine, Space(6000, 3))  # needs 12,000 bytes and 6 inodes
    fs = Virtual(cfg.repository, Space(4000, 100))
    room = guard.make_room(cfg, open_store(web1), print, NOW, measure=fs)
    # Kept by keep_daily, and still taken: web1 alone is over its share.
    decision, _ = prune.decision_for(cfg, web1, NOW)
    assert all(n in decision.keep for n in [a.name for a in web1.attempts()])
    assert room.deleted == [f"web1/{mine[0]}"]
    assert fs(cfg.repository).covers(Space(12_000, 6))


def test_a_host_over_its_share_gets_no_room_kept_for_its_next_run(tmp_path: Path) -> None:
    """A host cannot block others by inflating its own reservation."""
    cfg = config(str(tmp_path))
    web1, web2 = HostRepo(cfg.repository, "web1"), HostRepo(cfg.repository, "web2")
    big = days(web1, 2)
    grew(web1, big[-1], Space(10 << 30, 10**6))  # a reservation far beyond the filesystem
    Path(web1.tree(big[-1]), "flood").write_bytes(b"x" * (3 << 19))  # 1.5 MiB
    small = days(web2, 2)
    grew(web2, small[-1], Space(5000, 2))
    fs = Virtual(cfg.repository, Space(1 << 19, 1000))
    # web1 holds more than its half of 2 MiB: nothing is kept for its next run.
    room = guard.make_room(cfg, open_store(web2), print, NOW, measure=fs)
    assert room.deleted == [] and room.budget.keep.bytes == 0
    # web1 itself must leave web2's reservation free.
    with pytest.raises(errors.NoSpace, match="web1 is growing"):
        guard.make_room(cfg, open_store(web1), print, NOW, measure=fs)


def test_the_budget_keeps_the_other_hosts_reservations(tmp_path: Path) -> None:
    cfg = config(str(tmp_path))
    web1, web2, web3 = (HostRepo(cfg.repository, h) for h in ("web1", "web2", "web3"))
    days(web1, 1)
    grew(web2, days(web2, 1)[-1], Space(100, 2))
    grew(web3, days(web3, 1)[-1], Space(1000, 5))
    room = guard.make_room(cfg, open_store(web1), print, NOW)
    assert room.budget == guard.Budget(Space(2200, 14), ("web2", "web3"))


def test_guard_leaves_a_host_with_a_run_in_progress_alone(tmp_path: Path) -> None:
    cfg = config(str(tmp_path))
    web1, busy = HostRepo(cfg.repository, "web1"), HostRepo(cfg.repository, "web2")
    grew(web1, days(web1, 1)[-1], Space(15_000, 2))
    theirs = days(busy, 5)  # three of them removed by their own retention anyway
    fs = Virtual(cfg.repository, Space(1000, 1000))
    with busy.lock({"pid": 1, "since": "x"}), pytest.raises(errors.NoSpace):
        guard.make_room(cfg, open_store(web1), print, NOW, measure=fs)
    assert [a.name for a in busy.attempts()] == theirs
    # Free again: its own retention would remove three; the guard may take them.
    room = guard.make_room(cfg, open_store(web1), print, NOW, measure=fs)
    assert {d.split("/")[1] for d in room.deleted} <= set(theirs[:3])


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


def test_the_refusal_names_the_host_over_its_share() -> None:
    held = {"web1": Space(10, 1), "web2": Space(900, 9)}
    shares = {"web1": Space(500, 50), "web2": Space(500, 50)}
    text = guard.refusal("web1", Space(100, 5), Space(), (), Space(40, 2), Space(), held, shares)
    assert text.startswith("web1: a run needs 100 B and 5 inodes free; 40 B and 2 inodes are free")
    assert "web1 keeps to its share, but web2 (900 B and 9 inodes of 500 B" in text
