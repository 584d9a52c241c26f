"""Space, bytes and inodes side by side (store/space.py)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pullsnap.grabber.store import space
from pullsnap.grabber.store.space import Filesystem, Space


def test_both_sides_are_weighed() -> None:
    assert Space(10, 1) + Space(5, 2) == Space(15, 3)
    assert (Space(10, 1) - Space(15, 0)).positive() == Space(0, 1)
    assert Space(10, 5).covers(Space(10, 5)) and not Space(10, 5).covers(Space(9, 6))
    assert Space(3, 8).at_most(Space(5, 2)) == Space(3, 2)
    assert Space(100, 10).times(1.5) == Space(150, 15)
    assert space.total([Space(1, 2), Space(3, 4)]) == Space(4, 6)


def test_a_record_holds_both_or_is_not_one() -> None:
    assert space.from_record({"bytes": 4096, "inodes": 3}) == Space(4096, 3)
    for bad in (None, 7, {"bytes": 1}, {"bytes": -1, "inodes": 0}, {"bytes": True, "inodes": 1},
                {"bytes": 1.5, "inodes": 1}):  # fmt: skip
        assert space.from_record(bad) is None


def test_the_filesystem_is_what_statvfs_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One real reading, given to both calls: a shared filesystem's free
    # figures move between two statvfs calls.
    st = os.statvfs(tmp_path)
    monkeypatch.setattr(space.os, "statvfs", lambda path: st)
    fs = space.filesystem(str(tmp_path))
    assert fs.size == Space(st.f_blocks * st.f_frsize, st.f_files)
    assert fs.free.bytes <= st.f_bfree * st.f_frsize and fs.free.inodes <= st.f_ffree
    assert space.free_space(str(tmp_path)) == fs.free


def test_a_filesystem_without_an_inode_count_never_runs_out_of_them() -> None:
    btrfs = Filesystem(Space(1 << 30, space.UNLIMITED), Space(1 << 40, 0))
    assert not btrfs.inode_limit
    assert btrfs.free.covers(Space(0, 10**12))
    assert space.show(btrfs.free) == "1.0 GiB (no inode limit)"
    assert space.show(Space(1536, 1234)) == "1.5 KiB and 1,234 inodes"


def test_no_space_is_a_full_filesystem_or_quota() -> None:
    assert space.is_no_space(OSError(errno.ENOSPC, "full"))
    assert space.is_no_space(OSError(errno.EDQUOT, "quota"))
    assert not space.is_no_space(OSError(errno.EACCES, "denied"))
