"""btrfs subvolumes through their ioctls (include/uapi/linux/btrfs.h).

Creating a subvolume or a snapshot needs only write access to the directory
it goes in; setting or clearing a subvolume's read-only flag needs its owner
(or CAP_FOWNER) and a writable mount; deleting one needs CAP_SYS_ADMIN, or
the owner on a filesystem mounted `user_subvol_rm_allowed` (btrfs(5)), and
both need a writable mount.  Every call takes a directory descriptor and a
single name in it, never a path walked from a string.
"""

from __future__ import annotations

import array
import fcntl
import os
import struct

# _IOW(0x94, nr, struct btrfs_ioctl_vol_args), the struct 4096 bytes:
# __s64 fd; char name[BTRFS_PATH_NAME_MAX + 1] (4088).
_VOL_ARGS = struct.Struct("q4088s")
SNAP_CREATE = 0x50009401
SUBVOL_CREATE = 0x5000940E
SNAP_DESTROY = 0x5000940F
SUBVOL_GETFLAGS = 0x80089419  # _IOR(0x94, 25, __u64)
SUBVOL_SETFLAGS = 0x4008941A  # _IOW(0x94, 26, __u64)
SUBVOL_RDONLY = 1 << 1
# The objectid of every subvolume's top directory (BTRFS_FIRST_FREE_OBJECTID).
SUBVOLUME_INO = 256
BTRFS_SUPER_MAGIC = 0x9123683E

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _vol_args(name: str, fd: int = 0) -> bytearray:
    raw = os.fsencode(name)
    if not raw or b"/" in raw or len(raw) > 255:
        raise ValueError(f"not a single file name: {name!r}")
    return bytearray(_VOL_ARGS.pack(fd, raw))


def create_subvolume(parent_fd: int, name: str) -> None:
    """An empty subvolume `name` in the directory `parent_fd`."""
    fcntl.ioctl(parent_fd, SUBVOL_CREATE, _vol_args(name))


def snapshot(source_fd: int, parent_fd: int, name: str) -> None:
    """A writable snapshot of the subvolume open at `source_fd`, as `name`."""
    fcntl.ioctl(parent_fd, SNAP_CREATE, _vol_args(name, source_fd))


def destroy(parent_fd: int, name: str) -> None:
    """Delete the subvolume `name` (CAP_SYS_ADMIN, or user_subvol_rm_allowed)."""
    fcntl.ioctl(parent_fd, SNAP_DESTROY, _vol_args(name))


def flags(fd: int) -> int:
    buf = array.array("Q", [0])
    fcntl.ioctl(fd, SUBVOL_GETFLAGS, buf, True)
    return buf[0]


def is_readonly(fd: int) -> bool:
    return bool(flags(fd) & SUBVOL_RDONLY)


def set_readonly(fd: int, readonly: bool = True) -> None:
    value = flags(fd)
    value = value | SUBVOL_RDONLY if readonly else value & ~SUBVOL_RDONLY
    fcntl.ioctl(fd, SUBVOL_SETFLAGS, array.array("Q", [value]), False)


def is_subvolume(fd: int) -> bool:
    """The top directory of a subvolume (on btrfs: inode 256 and a subvolume's flags)."""
    if os.fstat(fd).st_ino != SUBVOLUME_INO:
        return False
    try:
        flags(fd)
    except OSError:
        return False
    return True


def open_dir(path: str, dir_fd: int | None = None) -> int:
    return os.open(path, _DIRECTORY, dir_fd=dir_fd)
