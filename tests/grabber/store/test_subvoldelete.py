"""Deleting a snapshot subvolume: through the CAP_SYS_ADMIN child, or as its
owner on a user_subvol_rm_allowed mount; a subvolume nested inside (a
receiver may make one) goes first."""

from __future__ import annotations

import os
import pwd

import pytest

from lab import make_user, remove_user
from pullsnap import caps
from pullsnap.grabber.store import btrfsioctl, subvoldelete
from tests.forked import in_child
from tests.labfixtures import remove_btrfs_tree

pytestmark = pytest.mark.root


def _snapshot_with_a_nested_one(top: str, uid: int = 0) -> None:
    parent = btrfsioctl.open_dir(top)
    btrfsioctl.create_subvolume(parent, "snap")
    os.makedirs(os.path.join(top, "snap", "deep"))
    inner = btrfsioctl.open_dir(os.path.join(top, "snap", "deep"))
    btrfsioctl.create_subvolume(inner, "nested")
    os.close(inner)
    for path in (os.path.join(top, "snap"), os.path.join(top, "snap", "deep"),
                 os.path.join(top, "snap", "deep", "nested")):  # fmt: skip
        os.chown(path, uid, uid)
    snap = btrfsioctl.open_dir("snap", parent)
    btrfsioctl.set_readonly(snap)
    os.close(snap)
    os.close(parent)


def test_the_admin_child_deletes_a_read_only_snapshot_and_what_it_nests(btrfs: str) -> None:
    top = os.path.join(btrfs, "delete-admin")
    remove_btrfs_tree(top)
    os.makedirs(top)
    try:
        _snapshot_with_a_nested_one(top)
        assert subvoldelete.nested(os.path.join(top, "snap")) == [
            os.path.join(top, "snap", "deep", "nested")]  # fmt: skip
        subvoldelete.delete(top, "snap", admin=True)
        assert os.listdir(top) == []
        with pytest.raises(subvoldelete.SubvolumeNotDeleted):
            subvoldelete.delete(top, "snap", admin=True)
    finally:
        remove_btrfs_tree(top)


def test_its_owner_deletes_it_without_any_capability(btrfs: str) -> None:
    user = f"psd-{os.getpid() % 100000}"
    make_user(user, "/nonexistent", "/usr/sbin/nologin")
    top = os.path.join(btrfs, "delete-owner")
    remove_btrfs_tree(top)
    os.makedirs(top)
    try:
        pw = pwd.getpwnam(user)
        os.chown(top, pw.pw_uid, pw.pw_gid)
        _snapshot_with_a_nested_one(top, pw.pw_uid)

        def body() -> dict:
            caps.drop_to_user(user, ())
            subvoldelete.delete(top, "snap", admin=False)
            return {"left": os.listdir(top)}

        assert in_child(body) == {"left": []}
    finally:
        remove_user(user)
        remove_btrfs_tree(top)
