"""Which store a host gets (pure): what is on disk first, then the setting."""

from __future__ import annotations

import pytest

from pullsnap.grabber.store.storekind import Filesystem, choose, impossible

BTRFS_ADMIN = Filesystem(btrfs=True, admin=True, user_rm=False)
BTRFS_OWNER = Filesystem(btrfs=True, admin=False, user_rm=True)
BTRFS_NEITHER = Filesystem(btrfs=True, admin=False, user_rm=False)
EXT4 = Filesystem(btrfs=False, admin=True, user_rm=False)


@pytest.mark.parametrize("fs", [BTRFS_ADMIN, BTRFS_OWNER])
def test_auto_is_btrfs_where_subvolumes_can_be_deleted(fs: Filesystem) -> None:
    assert choose("auto", fs, None).kind == "btrfs"
    assert choose("hardlink", fs, None).kind == "hardlink"


@pytest.mark.parametrize("fs", [EXT4, BTRFS_NEITHER])
def test_auto_falls_back_to_hardlink_and_btrfs_names_the_fix(fs: Filesystem) -> None:
    auto = choose("auto", fs, None)
    assert auto.kind == "hardlink" and not auto.fix
    asked = choose("btrfs", fs, None)
    assert asked.kind == "btrfs" and asked.fix
    assert impossible(fs) is not None and impossible(fs)[1] == asked.fix


def test_what_is_on_disk_wins() -> None:
    kept = choose("btrfs", BTRFS_ADMIN, "hardlink")
    assert kept.kind == "hardlink" and kept.fix.startswith("grabber migrate HOST")
    assert choose("hardlink", BTRFS_ADMIN, "btrfs").kind == "btrfs"
    assert choose("auto", EXT4, "hardlink").fix == ""
