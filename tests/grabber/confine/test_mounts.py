"""Which mount a path is on, and its options (mounts.py, pure over mountinfo text)."""

from __future__ import annotations

from pullsnap.grabber.confine import mounts

# proc(5) mountinfo: id parent major:minor root point options [optional...] - type source super
MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /srv rw,nosuid,nodev,relatime shared:2 - xfs /dev/sdb1 rw,attr2
31 30 0:26 / /srv/pullsnap\\040repo rw,relatime - tmpfs tmpfs rw,nodev
40 22 0:27 / /srvx rw - tmpfs tmpfs rw,nosuid
"""


def test_the_longest_mount_point_wins_and_escapes_are_undone() -> None:
    assert mounts.mount_of("/srv/pullsnap repo/web1", MOUNTINFO).mount_point == "/srv/pullsnap repo"
    srv = mounts.mount_of("/srv/other", MOUNTINFO)
    assert srv.mount_point == "/srv" and srv.fs_type == "xfs" and "attr2" in srv.options
    assert mounts.mount_of("/srvx/a", MOUNTINFO).mount_point == "/srvx"  # not /srv
    assert mounts.mount_of("/home", MOUNTINFO).mount_point == "/"


def test_missing_safety_options_count_mount_and_superblock_options() -> None:
    assert mounts.missing_safety_options("/srv/a", MOUNTINFO) == []
    assert mounts.missing_safety_options("/srv/pullsnap repo", MOUNTINFO) == ["nosuid"]
    assert mounts.missing_safety_options("/var", MOUNTINFO) == ["nosuid", "nodev"]
    assert mounts.missing_safety_options("/var", "") == ["nosuid", "nodev"]
