"""Migrating a hardlinked snapshot into a subvolume with reflinks: the
tree, its hard links and owners the same, nothing copied."""

from __future__ import annotations

import os

import pytest

from pullsnap.grabber.store import btrfsioctl, migrate
from pullsnap.grabber.store.repository import HostRepo
from tests.labfixtures import remove_btrfs_tree

pytestmark = pytest.mark.root

N1 = "2026-01-01T000000Z"


def test_the_newest_tree_becomes_a_read_only_subvolume_as_it_was(btrfs: str) -> None:
    root = os.path.join(btrfs, f"migrate-{os.getpid()}")
    remove_btrfs_tree(root)
    host = HostRepo(root, "web1")
    host.ensure()
    tree = host.tree(N1)
    try:
        os.makedirs(os.path.join(tree, "etc"))
        with open(os.path.join(tree, "etc", "a"), "wb") as f:
            f.write(os.urandom(1 << 20))
        os.link(os.path.join(tree, "etc", "a"), os.path.join(tree, "b"))
        os.chown(os.path.join(tree, "b"), 4242, 4343)
        os.chmod(os.path.join(tree, "etc"), 0o750)
        host.write_record(N1, {"state": "complete"})
        said: list[str] = []
        assert migrate.migrate(host, "now", said.append) == N1
        fd = btrfsioctl.open_dir(tree)
        assert btrfsioctl.is_subvolume(fd) and btrfsioctl.is_readonly(fd)
        os.close(fd)
        a, b = os.lstat(os.path.join(tree, "etc", "a")), os.lstat(os.path.join(tree, "b"))
        assert a.st_ino == b.st_ino and (b.st_uid, b.st_gid) == (4242, 4343)
        assert os.stat(os.path.join(tree, "etc")).st_mode & 0o777 == 0o750
        assert not os.path.exists(tree + migrate.MIGRATING)
        assert os.listdir(host.trash()) == []
        assert "is a subvolume now" in said[-1]
    finally:
        remove_btrfs_tree(root)
