"""The hardlink store on a temporary repository: what a run builds on,
publishing, deleting through the trash."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.store import repository
from pullsnap.grabber.store.hardlink import HardlinkStore
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.store.space import Space
from tests.grabber.store.test_repository import (
    HOST,
    N1,
    N2,
    N3,
    N4,
    good,
    latest,
    make_tree,
)  # fmt: skip

# --- publish ------------------------------------------------------------------------------------


def test_publish_moves_the_tree_and_latest(repo: HostRepo) -> None:
    make_tree(repo.incomplete(N2), "second")
    repo.write_record(N2, {"state": "complete"})
    HardlinkStore(repo).publish(N2)
    assert not os.path.exists(repo.incomplete(N2))
    assert Path(repo.tree(N2), "etc", "hostname").read_text() == "second"
    assert latest(repo) == N2

    # An older attempt published later does not pull `latest` back.
    make_tree(repo.incomplete(N1), "first")
    repo.write_record(N1, {"state": "partial"})
    HardlinkStore(repo).publish(N1)
    assert os.path.isdir(repo.tree(N1))
    assert latest(repo) == N2
    assert [a.name for a in repo.good()] == [N1, N2]


def test_reusable_trees_are_newest_first(repo: HostRepo) -> None:
    for name, state in ((N1, "failed"), (N2, "interrupted"), (N3, "running"), (N4, "failed")):
        make_tree(repo.incomplete(name))
        repo.write_record(name, {"state": state})
    assert HardlinkStore(repo).reusable_trees() == [
        repo.incomplete(N4),
        repo.incomplete(N2),
        repo.incomplete(N1),
    ]


# --- a run's target --------------------------------------------------------------------------


def test_a_run_builds_on_the_newest_good_then_interrupted_trees_then_a_newer_suspect(
    repo: HostRepo,
) -> None:
    good(repo, N1)
    make_tree(repo.incomplete(N2))
    repo.write_record(N2, {"state": "interrupted"})
    good(repo, N3, suspect={"reason": "x"})
    store = HardlinkStore(repo)
    target = store.plan(N4)
    assert target.name == N4 and target.tree == repo.incomplete(N4)
    assert target.bases == (repo.tree(N1), repo.incomplete(N2), repo.tree(N3))
    assert target.reused == (repo.incomplete(N2),)
    assert not os.path.exists(target.tree)  # planning changes nothing
    store.begin(target)
    assert os.stat(target.tree).st_mode & 0o777 == 0o700


def test_a_suspect_older_than_the_base_is_not_built_on(repo: HostRepo) -> None:
    good(repo, N1, suspect={"reason": "x"})
    good(repo, N2)
    assert HardlinkStore(repo).plan(N3).bases == (repo.tree(N2),)
    assert HardlinkStore(HostRepo(repo.root, "new")).plan(N3).bases == ()


def test_added_is_what_the_run_measured_else_what_rsync_transferred(repo: HostRepo) -> None:
    good(repo, N1, stats={"transferred_size": 1234})
    good(repo, N2)
    good(repo, N3, stats={"transferred_size": 0}, added={"bytes": 5 << 20, "inodes": 7})
    store = HardlinkStore(repo)
    assert [store.added(a) for a in repo.good()] == [Space(1234, 0), Space(), Space(5 << 20, 7)]


# --- delete ---------------------------------------------------------------------------------------


def test_delete_refuses_the_newest_good(repo: HostRepo) -> None:
    good(repo, N1)
    good(repo, N2)
    make_tree(repo.incomplete(N3))
    repo.write_record(N3, {"state": "failed"})
    with pytest.raises(errors.NewestGood, match="newest good snapshot"):
        HardlinkStore(repo).delete(N2)
    assert os.path.isdir(repo.tree(N2))


def test_delete_refuses_a_directory_without_a_record(repo: HostRepo) -> None:
    good(repo, N2)
    make_tree(repo.tree(N1))
    with pytest.raises(errors.NotOurSnapshot, match="does not look like a pullsnap snapshot"):
        HardlinkStore(repo).delete(N1)
    assert os.path.isdir(repo.tree(N1))


def test_delete_refuses_a_record_for_another_host(repo: HostRepo) -> None:
    good(repo, N2)
    make_tree(repo.tree(N1))
    Path(repo.record_path(N1)).write_text(json.dumps({"state": "complete", "host": "db2"}))
    with pytest.raises(errors.NotOurSnapshot, match="does not look like a pullsnap snapshot"):
        HardlinkStore(repo).delete(N1)
    assert os.path.isdir(repo.tree(N1))


@pytest.mark.parametrize(
    "name", ["latest", ".lock", "..", "../web1", f"{N1}.incomplete", f"{N1}/etc", "etc"]
)
def test_delete_refuses_names_that_are_not_snapshots(repo: HostRepo, name: str) -> None:
    good(repo, N1)
    good(repo, N2)
    os.symlink(N2, os.path.join(repo.path, "latest"))
    # Even with a record beside it, a wrong name is refused.
    with open(repo.record_path(name), "w") as f:
        json.dump({"host": HOST, "state": "complete"}, f)
    before = sorted(os.listdir(repo.path))
    with pytest.raises(errors.NotOurSnapshot, match="does not look like a pullsnap snapshot"):
        HardlinkStore(repo).delete(name)
    assert sorted(os.listdir(repo.path)) == before
    assert os.path.isdir(repo.tree(N1))


def test_delete_removes_read_only_trees(repo: HostRepo) -> None:
    good(repo, N1)
    good(repo, N2)
    deep = Path(repo.tree(N1), "ro", "inner")
    deep.mkdir(parents=True)
    (deep / "file").write_text("x")
    (deep / "file").chmod(0o444)
    os.symlink("/", deep / "link-to-root")
    for path in (deep, deep.parent, Path(repo.tree(N1), "etc"), Path(repo.tree(N1))):
        path.chmod(0o555)
    # The interrupted tree of the same attempt goes too.
    make_tree(repo.incomplete(N1))
    Path(repo.incomplete(N1), "etc").chmod(0o555)

    HardlinkStore(repo).delete(N1)
    assert not os.path.lexists(repo.tree(N1))
    assert not os.path.lexists(repo.incomplete(N1))
    assert not os.path.lexists(repo.record_path(N1))
    assert os.listdir(os.path.join(repo.path, repository.TRASH)) == []
    assert [a.name for a in repo.attempts()] == [N2]
    assert os.path.isdir("/")  # the symlink was removed, not followed


def test_empty_trash(repo: HostRepo) -> None:
    trash = Path(repo.path, repository.TRASH)
    (trash / "left.123" / "d").mkdir(parents=True)
    (trash / "left.123" / "d").chmod(0o555)
    HardlinkStore(repo).empty_trash()
    assert list(trash.iterdir()) == []
