"""Unprivileged user namespaces: what turns them off, and whether one works here."""

from __future__ import annotations

import pwd

import pytest

from pullsnap.grabber.confine import mountns, userns


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({}, None),
        ({"/proc/sys/user/max_user_namespaces": "15000\n"}, None),
        ({"/proc/sys/user/max_user_namespaces": "0\n"}, "user.max_user_namespaces = 0"),
        ({"/proc/sys/kernel/unprivileged_userns_clone": "0\n"},
         "kernel.unprivileged_userns_clone = 0"),
        ({"/proc/sys/kernel/unprivileged_userns_clone": "1\n"}, None),
        ({"/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1\n"},
         "kernel.apparmor_restrict_unprivileged_userns = 1"),
    ],
)  # fmt: skip
def test_each_switch_that_turns_them_off_is_named_with_its_fix(values, named) -> None:
    found = userns.why_unavailable(values)
    if named is None:
        assert found is None
    else:
        what, fix = found
        assert named in what and ("sysctl" in fix or "AppArmor" in fix)


def test_read_switches_skips_files_this_kernel_lacks() -> None:
    def read(path: str) -> str:
        if "unprivileged_userns_clone" in path:
            raise FileNotFoundError(path)
        return "7\n"

    values = userns.read_switches(read)
    assert "/proc/sys/kernel/unprivileged_userns_clone" not in values
    assert values["/proc/sys/user/max_user_namespaces"] == "7\n"


@pytest.mark.root
def test_an_unprivileged_user_builds_its_own_mount_namespace_here() -> None:
    """The suite's --fake-super runs need this; `grabber check` asks the same."""
    nobody = pwd.getpwnam("nobody")
    assert userns.why_unavailable(userns.read_switches()) is None
    assert mountns.probe_as(nobody.pw_uid, nobody.pw_gid) is None
