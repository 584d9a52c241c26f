"""Deleting a snapshot subvolume on the loop-mounted btrfs (mounted
user_subvol_rm_allowed): through the CAP_SYS_ADMIN child, nested subvolumes
first; as the subvolume's owner without any capability; and refused to a
user who does not own it."""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from pathlib import Path

import pytest

from pullsnap.grabber.store import btrfsioctl, subvoldelete
from pullsnap.grabber.store.subvoldelete import SubvolumeNotDeleted, nested
from tests.labfixtures import Lab

pytestmark = [pytest.mark.root]


def _subvolume(parent: str, name: str, readonly: bool = False) -> str:
    fd = btrfsioctl.open_dir(parent)
    try:
        btrfsioctl.create_subvolume(fd, name)
    finally:
        os.close(fd)
    path = os.path.join(parent, name)
    Path(path, "file").write_text(name)
    if readonly:
        _set_readonly(path)
    return path


def _set_readonly(path: str) -> None:
    fd = btrfsioctl.open_dir(path)
    try:
        btrfsioctl.set_readonly(fd)
    finally:
        os.close(fd)


def _as_user(pw: pwd.struct_passwd, action: Callable[[], None]) -> str:
    """Run `action` in a child as `pw` (no capability left): "" or the error."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            action()
        except BaseException as e:
            os.write(write, f"{type(e).__name__}: {e}".encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        said = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == (1 if said else 0)
    return said


def test_nested_lists_the_subvolumes_right_below(btrfs_dir: str, tmp_path: Path) -> None:
    top = _subvolume(btrfs_dir, "top")
    os.makedirs(os.path.join(top, "plain", "deeper"))
    inner = _subvolume(os.path.join(top, "plain"), "inner")
    _subvolume(inner, "innermost")  # found in turn, when inner is walked
    beside = _subvolume(top, "beside")
    assert sorted(nested(top)) == sorted([inner, beside])
    assert nested(inner) == [os.path.join(inner, "innermost")]
    assert nested(beside) == []
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert nested(str(tmp_path)) == []  # one filesystem, one device


def test_the_admin_child_deletes_a_read_only_snapshot_with_nested_ones(btrfs_dir: str) -> None:
    """A receiver may make subvolumes in its own tree before it is published
    read-only: all of it goes, innermost first."""
    snap = _subvolume(btrfs_dir, "snap")
    os.makedirs(os.path.join(snap, "root-only"), mode=0o700)
    inner = _subvolume(os.path.join(snap, "root-only"), "made-by-receiver")
    _subvolume(inner, "deeper")
    _set_readonly(snap)
    subvoldelete.delete(btrfs_dir, "snap", admin=True)
    assert os.listdir(btrfs_dir) == []


def test_the_admin_child_says_which_subvolume_and_why(btrfs_dir: str) -> None:
    with pytest.raises(SubvolumeNotDeleted) as e:
        subvoldelete.delete(btrfs_dir, "missing", admin=True)
    assert str(e.value) == (f"cannot delete the subvolume {btrfs_dir}/missing: "
                            "No such file or directory")  # fmt: skip
    os.mkdir(os.path.join(btrfs_dir, "plain"))
    with pytest.raises(SubvolumeNotDeleted):
        subvoldelete.delete(btrfs_dir, "plain", admin=True)
    assert os.path.isdir(os.path.join(btrfs_dir, "plain"))


def _owned_by(pw: pwd.struct_passwd, btrfs_dir: str) -> tuple[str, str]:
    parent = os.path.join(btrfs_dir, "host")
    os.mkdir(parent, 0o700)
    os.chown(parent, pw.pw_uid, pw.pw_gid)
    snap = _subvolume(parent, "snap")
    os.chown(snap, pw.pw_uid, pw.pw_gid)
    os.chown(os.path.join(snap, "file"), pw.pw_uid, pw.pw_gid)
    _set_readonly(snap)
    return parent, snap


def test_its_owner_deletes_a_read_only_snapshot_without_a_capability(
    lab: Lab, btrfs_dir: str
) -> None:
    owner = lab.grabber_pw()
    parent, snap = _owned_by(owner, btrfs_dir)
    said = _as_user(owner, lambda: subvoldelete.delete(parent, "snap", admin=False))
    assert said == ""
    assert not os.path.exists(snap)


def test_a_user_who_does_not_own_it_cannot_delete_it(lab: Lab, btrfs_dir: str) -> None:
    owner, other = lab.grabber_pw(), pwd.getpwnam(lab.plain_user)
    parent, snap = _owned_by(owner, btrfs_dir)
    os.chmod(parent, 0o777)  # even with the directory writable
    said = _as_user(other, lambda: subvoldelete.delete(parent, "snap", admin=False))
    assert said.startswith(f"SubvolumeNotDeleted: cannot delete the subvolume {snap}: ")
    assert Path(snap, "file").read_text() == "snap"
    fd = btrfsioctl.open_dir(snap)
    try:
        assert btrfsioctl.is_readonly(fd)
    finally:
        os.close(fd)
