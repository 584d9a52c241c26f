"""What a crashed run left, finished or marked (base.recover), against the
hardlink store."""

from __future__ import annotations

import os
from pathlib import Path

from pullsnap import errors
from pullsnap.grabber.store.base import recover
from pullsnap.grabber.store.hardlink import HardlinkStore
from pullsnap.grabber.store.repository import HostRepo
from tests.grabber.store.test_repository import N1, N2, good, latest, make_tree


def test_recover_publishes_a_finished_tree_left_incomplete(repo: HostRepo) -> None:
    # The crash came between rsync's success (record written) and the rename.
    good(repo, N1)
    os.symlink(N1, os.path.join(repo.path, "latest"))
    make_tree(repo.incomplete(N2), "finished")
    repo.write_record(N2, {"state": "complete"})
    assert repo.newest_good() is not None and repo.newest_good().name == N1

    done = recover(HardlinkStore(repo))
    assert any(N2 in line and "published" in line for line in done)
    assert os.path.isdir(repo.tree(N2)) and not os.path.exists(repo.incomplete(N2))
    assert Path(repo.tree(N2), "etc", "hostname").read_text() == "finished"
    assert latest(repo) == N2
    assert recover(HardlinkStore(repo)) == []  # idempotent


def test_recover_marks_a_stale_running_record_interrupted(repo: HostRepo) -> None:
    good(repo, N1)
    make_tree(repo.incomplete(N2))
    repo.write_record(N2, {"state": "running", "pid": 99999})

    assert recover(HardlinkStore(repo), running_elsewhere=True) == []
    assert repo.read_record(N2)["state"] == "running"

    done = recover(HardlinkStore(repo))
    assert done == [f"marked {N2} interrupted"]
    record = repo.read_record(N2)
    assert record["state"] == "interrupted"
    assert record["message"]
    assert record["pid"] == 99999  # the rest of the record is kept
    # Not published, but reusable as an extra --link-dest.
    assert not os.path.exists(repo.tree(N2))
    assert HardlinkStore(repo).reusable_trees() == [repo.incomplete(N2)]
    assert latest(repo) == N1


def test_recover_repairs_a_missing_latest(repo: HostRepo) -> None:
    good(repo, N1)
    good(repo, N2)
    recover(HardlinkStore(repo))
    assert latest(repo) == N2


def test_recover_without_room_leaves_the_record_running_and_goes_on(
    repo: HostRepo, monkeypatch
) -> None:
    """Recovery needs no free inode: a record it cannot rewrite stays
    "running" (read as interrupted while the lock is free), and the next
    run with room marks it."""
    good(repo, N1)
    make_tree(repo.incomplete(N2))
    repo.write_record(N2, {"state": "running", "pid": 99999})

    def full(attempt: object) -> None:
        raise errors.NoSpace("web1: cannot write the record: No space left on device")

    monkeypatch.setattr(repo, "mark_interrupted", full)
    done = recover(HardlinkStore(repo))
    assert done == [f"{N2} left unmarked (no space to rewrite its record)"]
    assert repo.read_record(N2)["state"] == "running"
    monkeypatch.undo()
    assert recover(HardlinkStore(repo)) == [f"marked {N2} interrupted"]
