"""Extents on a real btrfs: what a file shares, what each snapshot holds
alone, the host's every extent once; agreeing with `btrfs filesystem du`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from pullsnap.grabber.store import btrfsioctl
from pullsnap.grabber.store.btrfsusage import ExclusiveMeter, Extents, exclusive_bytes, measure
from pullsnap.grabber.store.repository import HostRepo
from tests.btrfsview import btrfs_du
from tests.labfixtures import remove_btrfs_tree

MIB = 1 << 20


def test_extents_counts_each_extent_once_for_the_total() -> None:
    acc = Extents()
    acc.start()
    acc.add(1000, 10, shared=False)
    acc.add(2000, 5, shared=True)
    assert (acc.size, acc.alone) == (15, 10)
    acc.start()
    acc.add(2000, 5, shared=True)
    acc.add(3000, 7, shared=False)
    acc.add(1002, 3, shared=True)  # a part of the first extent, met again
    assert (acc.size, acc.alone, acc.total) == (15, 7, 22)


@contextlib.contextmanager
def _host_with_a_subvolume(btrfs: str, repo_name: str) -> Iterator[tuple[HostRepo, str]]:
    """A host in a repository of its own on the btrfs, its first snapshot an
    empty writable subvolume; (host, that snapshot's path).  Removed after."""
    repo = os.path.join(btrfs, repo_name)
    remove_btrfs_tree(repo)
    host = HostRepo(repo, "web1")
    host.ensure()
    try:
        parent = btrfsioctl.open_dir(host.path)
        try:
            btrfsioctl.create_subvolume(parent, "2026-01-01T000000Z")
        finally:
            os.close(parent)
        yield host, host.tree("2026-01-01T000000Z")
    finally:
        remove_btrfs_tree(repo)


def _second_snapshot(host: HostRepo, one: str) -> str:
    """A writable snapshot of `one` (written out first), as the second snapshot."""
    os.sync()
    parent, fd = btrfsioctl.open_dir(host.path), btrfsioctl.open_dir(one)
    try:
        btrfsioctl.snapshot(fd, parent, "2026-01-02T000000Z")
    finally:
        os.close(fd)
        os.close(parent)
    return host.tree("2026-01-02T000000Z")


@pytest.mark.root
def test_snapshots_share_what_did_not_change(btrfs: str) -> None:
    with _host_with_a_subvolume(btrfs, "usage-test") as (host, one):
        with open(os.path.join(one, "f"), "wb") as f:
            f.write(os.urandom(4 * MIB))
        two = _second_snapshot(host, one)
        with open(os.path.join(two, "f"), "r+b") as f:
            f.seek(MIB)
            f.write(os.urandom(MIB))
        with open(os.path.join(two, "f"), "rb") as f:
            assert exclusive_bytes(f.fileno()) == MIB  # the rewritten MiB is its own
        meter = ExclusiveMeter()
        dir_fd = os.open(two, os.O_RDONLY | os.O_DIRECTORY)
        meter.entry(dir_fd, b"f", 0)
        os.close(dir_fd)
        assert meter.result().bytes == MIB and meter.result().inodes == 1
        for name in ("2026-01-01T000000Z", "2026-01-02T000000Z"):
            host.write_record(name, {"state": "complete"})
        found = measure(host, use_cache=False)
        trees = {t.name: t for t in found.trees}
        expected = btrfs_du([one, two, host.path])
        assert trees["2026-01-01T000000Z"].size == expected[one][0] == 4 * MIB
        # The first snapshot's one extent is still partly the second's: shared.
        assert trees["2026-01-01T000000Z"].unique == expected[one][1] == 0
        assert trees["2026-01-02T000000Z"].unique == expected[two][1] == MIB
        assert found.total == expected[host.path][1] + expected[host.path][2] == 5 * MIB
        assert measure(host) == found  # from the cache while the trees are the same


@pytest.mark.root
def test_inline_data_is_left_out_as_btrfs_filesystem_du_does(btrfs: str) -> None:
    """A small file's data lives in the metadata (FIEMAP: inline, at address
    0, never "shared"): no snapshot owns what it shares with the next, and the
    host total is the real extents only."""
    with _host_with_a_subvolume(btrfs, "usage-inline-test") as (host, one):
        for i in range(5):
            with open(os.path.join(one, f"small{i}"), "wb") as f:
                f.write(b"x" * 100 * (i + 1))
        with open(os.path.join(one, "big"), "wb") as f:
            f.write(os.urandom(MIB))
        with open(os.path.join(one, "small0"), "rb") as f:
            assert exclusive_bytes(f.fileno()) > 0  # what a run wrote, for "added"
        two = _second_snapshot(host, one)
        for name in ("2026-01-01T000000Z", "2026-01-02T000000Z"):
            host.write_record(name, {"state": "complete"})
        found = measure(host, use_cache=False)
        expected = btrfs_du([one, two, host.path])
        for tree in found.trees:
            path = host.tree(tree.name)
            assert (tree.size, tree.unique) == expected[path][:2] == (MIB, 0), tree
        assert found.total == expected[host.path][1] + expected[host.path][2] == MIB
