"""The btrfs store: what a run builds on (plain records and trees), then
on the loop-mounted btrfs: the run's writable subvolume, hard-link groups
separated from the base, publishing read-only, and deleting subvolumes,
plain trees left by the hardlink store, and the trash."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.store import btrfsioctl
from pullsnap.grabber.store.btrfs import CTIME_MARGIN_NS, BtrfsStore
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.store.space import Space
from tests.btrfsview import subvolume_flags
from tests.grabber.store.test_repository import HOST, N1, N2, N3, N4, N5, good, latest, make_tree

# --- plan (no btrfs needed) ------------------------------------------------------------------


def _left(repo: HostRepo, name: str, state: str) -> None:
    make_tree(repo.incomplete(name))
    repo.write_record(name, {"state": state})


def test_the_first_run_builds_on_nothing(repo: HostRepo) -> None:
    target = BtrfsStore(repo, admin=False).plan(N1)
    assert (target.name, target.tree) == (N1, repo.incomplete(N1))
    assert target.bases == () and target.reused == () and target.link is False
    assert not os.path.exists(target.tree)  # planning changes nothing


def test_a_run_starts_from_the_newest_good_snapshot(repo: HostRepo) -> None:
    good(repo, N1)
    good(repo, N2)
    target = BtrfsStore(repo, admin=True).plan(N3)
    assert target.bases == (repo.tree(N2),) and target.reused == ()


def test_a_newer_interrupted_tree_is_where_the_run_starts(repo: HostRepo) -> None:
    """What had arrived is not sent again; every interrupted or failed tree
    is discarded after success, the older than the base too."""
    _left(repo, N1, "interrupted")
    good(repo, N2)
    _left(repo, N3, "failed")
    _left(repo, N4, "running")  # another run's: never taken
    target = BtrfsStore(repo, admin=False).plan(N5)
    assert target.bases == (repo.incomplete(N3),)
    assert target.reused == (repo.incomplete(N3), repo.incomplete(N1))


def test_an_interrupted_tree_older_than_the_base_is_not_built_on(repo: HostRepo) -> None:
    _left(repo, N1, "interrupted")
    good(repo, N2)
    target = BtrfsStore(repo, admin=False).plan(N3)
    assert target.bases == (repo.tree(N2),)
    assert target.reused == (repo.incomplete(N1),)


def test_added_is_what_the_record_says(repo: HostRepo) -> None:
    good(repo, N1, added={"bytes": 4096, "inodes": 3})
    good(repo, N2, stats={"transferred_size": 10})
    store = BtrfsStore(repo, admin=False)
    first, second = repo.good()
    assert store.added(first) == Space(4096, 3)
    assert store.added(second) == Space(10, 0)


# --- on btrfs ----------------------------------------------------------------------------------


@pytest.fixture
def host(btrfs_dir: str) -> HostRepo:
    r = HostRepo(os.path.join(btrfs_dir, "repo"), HOST)
    r.ensure()
    return r


def _run(store: BtrfsStore, name: str, files: dict[str, bytes], links: tuple = ()) -> None:
    """A run that writes `files` (and hard links: (existing, new)) and publishes."""
    target = store.plan(name)
    store.begin(target)
    for rel, data in files.items():
        Path(target.tree, rel).parent.mkdir(parents=True, exist_ok=True)
        Path(target.tree, rel).write_bytes(data)
    for old, new in links:
        os.link(os.path.join(target.tree, old), os.path.join(target.tree, new))
    store.host.write_record(name, {"state": "complete", "host": HOST})
    store.publish(name)


@pytest.mark.root
def test_the_first_run_writes_into_a_new_writable_subvolume(host: HostRepo) -> None:
    store = BtrfsStore(host, admin=False)
    assert store.written_after(N1) == 0  # not begun here: everything is hashed
    before = time.time_ns()
    store.begin(store.plan(N1))
    after = time.time_ns()
    tree = host.incomplete(N1)
    assert subvolume_flags(tree) == (True, False)
    assert os.stat(tree).st_mode & 0o777 == 0o700
    assert os.listdir(tree) == []
    began = store.written_after(N1)
    assert began is not None and before - CTIME_MARGIN_NS <= began <= after - CTIME_MARGIN_NS


@pytest.mark.root
def test_publish_makes_it_read_only_under_its_name_and_latest_follows(host: HostRepo) -> None:
    store = BtrfsStore(host, admin=False)
    _run(store, N2, {"etc/hostname": b"web1\n"})
    assert not os.path.exists(host.incomplete(N2))
    assert subvolume_flags(host.tree(N2)) == (True, True)
    assert latest(host) == N2
    with pytest.raises(OSError):
        Path(host.tree(N2), "etc", "new").write_bytes(b"x")
    # An older run published later does not pull `latest` back.
    store.begin(store.plan(N1))
    host.write_record(N1, {"state": "partial", "host": HOST})
    store.publish(N1)
    assert subvolume_flags(host.tree(N1)) == (True, True)
    assert latest(host) == N2


@pytest.mark.root
def test_a_run_is_a_snapshot_of_the_base_with_its_link_groups_split(host: HostRepo) -> None:
    """rsync --inplace would write through a hard link into the other names:
    each group keeps its first name only, and the base keeps all of them."""
    store = BtrfsStore(host, admin=False)
    _run(store, N1, {"a": b"linked\n", "sub/x": b"plain\n"}, links=(("a", "b"), ("a", "sub/c")))
    target = store.plan(N2)
    assert target.bases == (host.tree(N1),)
    store.begin(target)
    tree = target.tree
    assert subvolume_flags(tree) == (True, False)
    assert sorted(str(p.relative_to(tree)) for p in Path(tree).rglob("*")) == [
        "a", "sub", "sub/x"]  # fmt: skip
    assert Path(tree, "a").read_bytes() == b"linked\n" and os.stat(Path(tree, "a")).st_nlink == 1
    Path(tree, "a").write_bytes(b"rewritten in place\n")
    base = host.tree(N1)
    assert Path(base, "b").read_bytes() == b"linked\n"
    assert Path(base, "a").read_bytes() == b"linked\n"
    assert os.stat(Path(base, "a")).st_nlink == 3


@pytest.mark.root
@pytest.mark.parametrize("admin", [True, False])
def test_delete_removes_the_read_only_subvolume_and_its_record(host: HostRepo, admin: bool) -> None:
    store = BtrfsStore(host, admin=admin)
    _run(store, N1, {"f": b"1"})
    _run(store, N2, {"f": b"2"})
    with pytest.raises(errors.NewestGood):
        store.delete(N2)
    store.delete(N1)
    assert not os.path.lexists(host.tree(N1))
    assert host.read_record(N1) is None
    assert [a.name for a in host.good()] == [N2]
    assert subvolume_flags(host.tree(N2)) == (True, True)


@pytest.mark.root
def test_a_plain_tree_the_hardlink_store_left_is_deleted_as_a_tree(host: HostRepo) -> None:
    """After `grabber migrate` the older snapshots are still plain trees."""
    store = BtrfsStore(host, admin=True)
    _run(store, N2, {"f": b"2"})
    good(host, N1, host=HOST)
    os.link(os.path.join(host.tree(N1), "etc", "hostname"), os.path.join(host.tree(N1), "x"))
    fd = btrfsioctl.open_dir(host.tree(N1))
    try:
        assert not btrfsioctl.is_subvolume(fd)
    finally:
        os.close(fd)
    store.delete(N1)
    assert not os.path.lexists(host.tree(N1)) and host.read_record(N1) is None


@pytest.mark.root
def test_a_symlink_in_a_snapshot_s_place_is_left_alone(host: HostRepo, tmp_path: Path) -> None:
    store = BtrfsStore(host, admin=True)
    _run(store, N2, {"f": b"2"})
    host.write_record(N1, {"state": "complete", "host": HOST})
    os.symlink(tmp_path, host.tree(N1))
    (tmp_path / "precious").write_text("x")
    with pytest.raises(errors.NotADirectory):
        store.delete(N1)
    assert (tmp_path / "precious").read_text() == "x"
    assert host.read_record(N1) is not None


@pytest.mark.root
@pytest.mark.parametrize("admin", [True, False])
def test_discard_removes_the_run_s_subvolume_or_leftover_tree(host: HostRepo, admin: bool) -> None:
    store = BtrfsStore(host, admin=admin)
    store.begin(store.plan(N1))
    Path(host.incomplete(N1), "partial").write_bytes(b"half")
    store.discard(N1)
    assert not os.path.lexists(host.incomplete(N1))
    store.discard(N1)  # nothing there: nothing to do
    make_tree(host.incomplete(N2))  # a hardlink store's interrupted tree
    store.discard(N2)
    assert not os.path.lexists(host.incomplete(N2))


@pytest.mark.root
def test_empty_trash_removes_what_was_set_aside(host: HostRepo) -> None:
    store = BtrfsStore(host, admin=False)
    store.empty_trash()  # no trash yet
    os.mkdir(host.trash(), 0o700)
    make_tree(os.path.join(host.trash(), "old.hardlink.1"))
    Path(host.trash(), "stray").write_text("x")
    store.empty_trash()
    assert os.listdir(host.trash()) == []
