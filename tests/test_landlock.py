"""pullsnap.landlock, the mechanism: the rights each ABI handles, the kernel's
ABI, the shared start-up table.  The two policies built on it are tested
beside them (tests/grabber/confine/test_receiverpolicy.py,
tests/initiator/test_senderpolicy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import pullsnap
from pullsnap import landlock

# DESIGN.md security properties: `./test.sh -m security` runs these.
pytestmark = pytest.mark.security

REPO = str(Path(pullsnap.__file__).resolve().parents[1])


def test_rights_grow_with_the_abi() -> None:
    assert landlock.fs_rights(1) == (1 << 13) - 1
    assert landlock.fs_rights(2) & landlock.FS_REFER
    assert not landlock.fs_rights(4) & landlock.FS_IOCTL_DEV
    assert landlock.fs_rights(7) == (1 << 16) - 1
    assert landlock.net_rights(3) == 0
    assert landlock.net_rights(4) == landlock.NET_BIND_TCP | landlock.NET_CONNECT_TCP
    assert landlock.scope_rights(5) == 0 < landlock.scope_rights(6)


def test_policies_refuse_relative_paths() -> None:
    landlock.absolute("/usr/bin/rsync", "/srv")
    with pytest.raises(landlock.LandlockError, match="'srv' is not an absolute path"):
        landlock.absolute("/usr/bin/rsync", "srv")


def test_the_start_up_table_reads_libraries_not_secrets() -> None:
    assert "/usr/lib" in landlock.RUNTIME_READ_ONLY
    assert not {"/", "/etc", "/etc/shadow", "/root", "/home"} & set(landlock.RUNTIME_READ_ONLY)
    assert all(path.startswith("/lib") for path in landlock.ELF_INTERPRETERS)


def test_kernel_offers_landlock() -> None:
    assert landlock.abi_version() >= 1
