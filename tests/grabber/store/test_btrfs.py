"""The btrfs store through its interface, on a real btrfs (as root: the
admin path deletes): plan, begin, publish, discard, delete."""

from __future__ import annotations

import os

import pytest

from pullsnap import errors
from pullsnap.grabber.integrity import manifest
from pullsnap.grabber.store import btrfsioctl
from pullsnap.grabber.store.btrfs import BtrfsStore
from pullsnap.grabber.store.repository import HostRepo
from tests.labfixtures import remove_btrfs_tree

pytestmark = pytest.mark.root

N1, N2, N3 = "2026-01-01T000000Z", "2026-01-02T000000Z", "2026-01-03T000000Z"


def _flags(path: str) -> tuple[bool, bool]:
    fd = btrfsioctl.open_dir(path)
    try:
        return btrfsioctl.is_subvolume(fd), btrfsioctl.is_readonly(fd)
    finally:
        os.close(fd)


@pytest.fixture
def store(btrfs: str):
    root = os.path.join(btrfs, f"store-{os.getpid()}")
    remove_btrfs_tree(root)
    host = HostRepo(root, "web1")
    host.ensure()
    yield BtrfsStore(host, admin=True)
    remove_btrfs_tree(root)


def _run(store: BtrfsStore, name: str, files: dict[str, bytes]) -> None:
    host = store.host
    target = store.plan(name)
    host.write_record(name, {"state": "running"})
    store.begin(target)
    for rel, data in files.items():
        with open(os.path.join(target.tree, rel), "wb") as f:
            f.write(data)
    host.write_record(name, {"state": "complete"})
    store.publish(name)


def test_each_run_is_a_writable_snapshot_of_the_last_published_read_only(store) -> None:
    host = store.host
    first = store.plan(N1)
    assert first.bases == () and not first.link and first.tree == host.incomplete(N1)
    _run(store, N1, {"a": b"one\n", "b": b"two\n"})
    assert _flags(host.tree(N1)) == (True, True)
    assert os.readlink(os.path.join(host.path, "latest")) == N1
    second = store.plan(N2)
    assert second.bases == (host.tree(N1),)
    _run(store, N2, {"a": b"changed\n"})
    with open(os.path.join(host.tree(N2), "b"), "rb") as f:
        assert f.read() == b"two\n"  # carried by the snapshot, not by rsync
    with open(os.path.join(host.tree(N1), "a"), "rb") as f:
        assert f.read() == b"one\n"
    # A file written after the snapshot was made has a ctime the cutoff sees.
    cutoff = store.written_after(N2)
    assert cutoff is not None and os.lstat(os.path.join(host.tree(N2), "a")).st_ctime_ns >= cutoff
    assert BtrfsStore(host, admin=True).written_after(N2) == 0  # unknown here: hash it all


def test_hard_links_are_separated_before_an_in_place_run(store) -> None:
    host = store.host
    _run(store, N1, {"a": b"same\n"})
    # The base's manifest shows a and b as one file; the writable copy keeps one name.
    entries = [manifest.Entry(b"a", "d", 5, 7, N1), manifest.Entry(b"b", "d", 5, 7, N1)]
    manifest.write(host.manifest_path(N1), {"snapshot": N1}, entries)
    target = store.plan(N2)
    host.write_record(N2, {"state": "running"})
    fd = btrfsioctl.open_dir(host.tree(N1))
    btrfsioctl.set_readonly(fd, False)
    os.link(os.path.join(host.tree(N1), "a"), os.path.join(host.tree(N1), "b"))
    btrfsioctl.set_readonly(fd)
    os.close(fd)
    store.begin(target)
    assert sorted(os.listdir(target.tree)) == ["a"]
    assert sorted(os.listdir(host.tree(N1))) == ["a", "b"]


def test_an_interrupted_tree_is_the_next_start_and_goes_after_success(store) -> None:
    host = store.host
    _run(store, N1, {"a": b"one\n"})
    target = store.plan(N2)
    host.write_record(N2, {"state": "interrupted"})
    store.begin(target)
    with open(os.path.join(target.tree, "half"), "wb") as f:
        f.write(b"arrived\n")
    resumed = store.plan(N3)
    assert resumed.bases == (host.incomplete(N2),) and resumed.reused == (host.incomplete(N2),)
    host.write_record(N3, {"state": "running"})
    store.begin(resumed)
    assert sorted(os.listdir(resumed.tree)) == ["a", "half"]
    store.discard(N2)
    assert not os.path.exists(host.incomplete(N2))


def test_delete_refuses_the_newest_and_removes_a_read_only_snapshot(store) -> None:
    host = store.host
    _run(store, N1, {"a": b"one\n"})
    _run(store, N2, {"a": b"two\n"})
    with pytest.raises(errors.NewestGood):
        store.delete(N2)
    store.delete(N1)
    assert not os.path.exists(host.tree(N1)) and host.read_record(N1) is None
    assert [t.name for t in store.usage(use_cache=False).trees] == [N2]
