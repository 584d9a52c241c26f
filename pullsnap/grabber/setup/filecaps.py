"""A file's capabilities, read from its `security.capability` xattr (pure parse).

The kernel stores them as `struct vfs_cap_data` (include/uapi/linux/
capability.h): a little-endian u32 `magic_etc` (revision in the top byte,
bit 0 = effective), then per 32-bit half a u32 permitted and a u32
inheritable mask; revision 3 appends a u32 root uid for namespaced file
capabilities.  getcap(8) prints the same thing as text.
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass

from pullsnap.caps import mask_names

XATTR = "security.capability"
_REVISION_MASK = 0xFF000000
_EFFECTIVE = 0x000001
# revision -> (32-bit halves, total size): VFS_CAP_REVISION_1/2/3.
_LAYOUT = {0x01000000: (1, 12), 0x02000000: (2, 20), 0x03000000: (2, 24)}


@dataclass(frozen=True)
class FileCaps:
    permitted: frozenset[str]
    inheritable: frozenset[str]
    effective: bool


def parse(raw: bytes) -> FileCaps:
    """Decode a `security.capability` value; ValueError if it is not one."""
    if len(raw) < 4:
        raise ValueError("too short for vfs_cap_data")
    (magic,) = struct.unpack_from("<I", raw)
    layout = _LAYOUT.get(magic & _REVISION_MASK)
    if layout is None or len(raw) != layout[1]:
        raise ValueError(f"unknown vfs_cap_data revision {magic:#x} ({len(raw)} bytes)")
    halves = layout[0]
    words = struct.unpack_from(f"<{2 * halves}I", raw, 4)
    permitted = sum(words[2 * i] << (32 * i) for i in range(halves))
    inheritable = sum(words[2 * i + 1] << (32 * i) for i in range(halves))
    return FileCaps(mask_names(permitted), mask_names(inheritable), bool(magic & _EFFECTIVE))


def read(path: str) -> FileCaps | None:
    """The file's capabilities, or None when it has none."""
    try:
        raw = os.getxattr(path, XATTR)
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP):
            return None
        raise
    return parse(raw)
