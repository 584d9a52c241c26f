"""The subvolume ioctls on a real btrfs: create, snapshot, the read-only
flag, delete; a name is one name, never a path."""

from __future__ import annotations

import os

import pytest

from pullsnap.grabber.store import btrfsioctl
from tests.labfixtures import remove_btrfs_tree


def test_a_name_with_a_slash_or_too_long_is_refused_before_the_kernel() -> None:
    for bad in ("a/b", "", "x" * 256):
        with pytest.raises(ValueError):
            btrfsioctl._vol_args(bad)


@pytest.mark.root
def test_create_snapshot_flag_and_destroy(btrfs: str) -> None:
    top = os.path.join(btrfs, "ioctl-test")
    remove_btrfs_tree(top)
    os.makedirs(top)
    parent = btrfsioctl.open_dir(top)
    try:
        btrfsioctl.create_subvolume(parent, "a")
        with open(os.path.join(top, "a", "f"), "w") as f:
            f.write("data\n")
        a = btrfsioctl.open_dir("a", parent)
        assert btrfsioctl.is_subvolume(a) and not btrfsioctl.is_subvolume(parent)
        btrfsioctl.set_readonly(a)
        assert btrfsioctl.is_readonly(a)
        with pytest.raises(OSError):
            os.close(os.open(os.path.join(top, "a", "g"), os.O_WRONLY | os.O_CREAT, 0o600))
        btrfsioctl.snapshot(a, parent, "b")  # a writable snapshot of a read-only one
        b = btrfsioctl.open_dir("b", parent)
        assert btrfsioctl.is_subvolume(b) and not btrfsioctl.is_readonly(b)
        assert os.listdir(os.path.join(top, "b")) == ["f"]
        # Each subvolume has a device of its own, and the same inode numbers.
        fa, fb = (os.lstat(os.path.join(top, n, "f")) for n in ("a", "b"))
        assert fa.st_ino == fb.st_ino and fa.st_dev != fb.st_dev
        os.close(a)
        os.close(b)
        btrfsioctl.destroy(parent, "a")
        btrfsioctl.destroy(parent, "b")
        assert os.listdir(top) == []
    finally:
        os.close(parent)
        remove_btrfs_tree(top)
