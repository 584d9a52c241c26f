"""btrfs subvolumes through their ioctls: the request numbers and argument
(pure), then creating, snapshotting, flagging and deleting subvolumes on the
loop-mounted btrfs, and refusing names and symlinks that would walk elsewhere."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pullsnap.grabber.store import btrfsioctl
from pullsnap.grabber.store.btrfsioctl import _vol_args
from tests.btrfsview import subvolume_flags

# include/uapi/asm-generic/ioctl.h: dir << 30 | size << 16 | type << 8 | nr.
_WRITE, _READ = 1, 2


def _ioc(direction: int, nr: int, size: int) -> int:
    return direction << 30 | size << 16 | 0x94 << 8 | nr


def test_request_numbers_are_btrfs_h_s() -> None:
    """include/uapi/linux/btrfs.h: SNAP_CREATE 1, SUBVOL_CREATE 14,
    SNAP_DESTROY 15 (struct btrfs_ioctl_vol_args, 4096 bytes),
    SUBVOL_GETFLAGS 25 and SUBVOL_SETFLAGS 26 (__u64)."""
    assert btrfsioctl._VOL_ARGS.size == 4096
    assert _ioc(_WRITE, 1, 4096) == btrfsioctl.SNAP_CREATE
    assert _ioc(_WRITE, 14, 4096) == btrfsioctl.SUBVOL_CREATE
    assert _ioc(_WRITE, 15, 4096) == btrfsioctl.SNAP_DESTROY
    assert _ioc(_READ, 25, 8) == btrfsioctl.SUBVOL_GETFLAGS
    assert _ioc(_WRITE, 26, 8) == btrfsioctl.SUBVOL_SETFLAGS


def test_vol_args_carry_the_fd_and_a_nul_terminated_name() -> None:
    raw = _vol_args("snap", 7)
    assert len(raw) == 4096
    assert int.from_bytes(raw[:8], "little", signed=True) == 7
    assert raw[8:13] == b"snap\0" and set(raw[13:]) == {0}
    assert _vol_args("x" * 255)[8 : 8 + 256] == b"x" * 255 + b"\0"


@pytest.mark.parametrize("name", ["", "a/b", "/abs", "../up", "x" * 256])
def test_only_a_single_file_name_is_accepted(name: str) -> None:
    with pytest.raises(ValueError, match="not a single file name"):
        _vol_args(name)


def test_a_directory_elsewhere_is_not_a_subvolume(tmp_path: Path) -> None:
    fd = btrfsioctl.open_dir(str(tmp_path))
    try:
        assert not btrfsioctl.is_subvolume(fd)
    finally:
        os.close(fd)


def test_open_dir_follows_no_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    os.symlink("real", tmp_path / "link")
    with pytest.raises(OSError) as e:
        btrfsioctl.open_dir(str(tmp_path / "link"))
    assert e.value.errno in (errno.ELOOP, errno.ENOTDIR)
    parent = btrfsioctl.open_dir(str(tmp_path))
    try:
        os.close(btrfsioctl.open_dir("real", dir_fd=parent))
        with pytest.raises(OSError):
            btrfsioctl.open_dir("link", dir_fd=parent)
    finally:
        os.close(parent)


# --- on btrfs ---------------------------------------------------------------------------------


def _open(path: str) -> int:
    return btrfsioctl.open_dir(path)


@pytest.mark.root
def test_create_snapshot_and_destroy(btrfs_dir: str) -> None:
    parent = _open(btrfs_dir)
    try:
        btrfsioctl.create_subvolume(parent, "vol")
        vol = os.path.join(btrfs_dir, "vol")
        assert os.stat(vol).st_ino == btrfsioctl.SUBVOLUME_INO
        assert subvolume_flags(vol) == (True, False)
        Path(vol, "file").write_bytes(b"before\n")
        os.mkdir(os.path.join(vol, "plain"))
        plain = _open(os.path.join(vol, "plain"))
        try:
            assert not btrfsioctl.is_subvolume(plain)
            with pytest.raises(OSError) as e:
                btrfsioctl.flags(plain)  # a subvolume's flags only
            assert e.value.errno == errno.EINVAL
        finally:
            os.close(plain)

        source = _open(vol)
        try:
            btrfsioctl.snapshot(source, parent, "snap")
        finally:
            os.close(source)
        snap = os.path.join(btrfs_dir, "snap")
        assert subvolume_flags(snap) == (True, False)  # writable
        Path(snap, "file").write_bytes(b"after\n")
        assert Path(vol, "file").read_bytes() == b"before\n"  # each its own
        assert os.stat(snap).st_dev != os.stat(vol).st_dev

        with pytest.raises(FileExistsError):
            btrfsioctl.create_subvolume(parent, "vol")
        btrfsioctl.destroy(parent, "snap")
        btrfsioctl.destroy(parent, "vol")
        assert os.listdir(btrfs_dir) == []
        with pytest.raises(FileNotFoundError):
            btrfsioctl.destroy(parent, "vol")
    finally:
        os.close(parent)


@pytest.mark.root
def test_a_plain_directory_is_not_destroyed_as_a_subvolume(btrfs_dir: str) -> None:
    os.mkdir(os.path.join(btrfs_dir, "plain"))
    parent = _open(btrfs_dir)
    try:
        with pytest.raises(OSError):
            btrfsioctl.destroy(parent, "plain")
    finally:
        os.close(parent)
    assert os.path.isdir(os.path.join(btrfs_dir, "plain"))


@pytest.mark.root
def test_the_read_only_flag_stops_writes_until_cleared(btrfs_dir: str) -> None:
    parent = _open(btrfs_dir)
    try:
        btrfsioctl.create_subvolume(parent, "vol")
    finally:
        os.close(parent)
    vol = os.path.join(btrfs_dir, "vol")
    Path(vol, "file").write_bytes(b"kept\n")
    fd = _open(vol)
    try:
        before = btrfsioctl.flags(fd)
        btrfsioctl.set_readonly(fd)
        assert btrfsioctl.is_readonly(fd)
        assert btrfsioctl.flags(fd) == before | btrfsioctl.SUBVOL_RDONLY
        btrfsioctl.set_readonly(fd)  # twice: still read-only
        assert btrfsioctl.is_readonly(fd)
        with pytest.raises(OSError) as e:
            Path(vol, "new").write_bytes(b"x")
        assert e.value.errno == errno.EROFS
        with pytest.raises(OSError):
            os.unlink(os.path.join(vol, "file"))
        btrfsioctl.set_readonly(fd, False)
        assert btrfsioctl.flags(fd) == before
    finally:
        os.close(fd)
    Path(vol, "new").write_bytes(b"x")
    assert sorted(os.listdir(vol)) == ["file", "new"]
