"""A compromised backed-up host may plant setuid-root files, file-capability
binaries and device nodes; --super reproduces them faithfully.  They must be
out of every other local user's reach, on a nosuid,nodev filesystem.  On a
repository without those mount options a --super run is refused (nothing
written) unless the operator accepts the risk, and with super = "fake-super"
the files are stored inert."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess

import pytest

from pullsnap import errors
from pullsnap.grabber.confine import mounts
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.security]


def _plant(src: str) -> None:
    os.makedirs(src)
    shutil.copy("/bin/sh", os.path.join(src, "rootshell"))
    os.chmod(os.path.join(src, "rootshell"), 0o4755)  # setuid root
    os.mknod(os.path.join(src, "disk"), 0o666 | stat.S_IFBLK, os.makedev(8, 0))
    shutil.copy("/bin/true", os.path.join(src, "capped"))
    subprocess.run(["setcap", "cap_dac_override+ep", os.path.join(src, "capped")], check=True)


def _as_user(site: Site, *argv: str) -> subprocess.CompletedProcess:
    pw = site.lab.initiator_pw()  # any other local user: the backed-up side's account
    return subprocess.run(
        ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", *argv],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_planted_privileges_are_out_of_reach(site: Site) -> None:
    _plant(site.src)
    with site.super_mode():
        done = site.run()
        assert done.returncode == errors.OK, done.stderr
        [name] = site.snapshots()
        copy = site.in_snapshot(name)
        st = os.lstat(os.path.join(copy, "rootshell"))
        assert st.st_uid == 0 and st.st_mode & 0o4000  # --super: exactly as planted
        assert stat.S_ISBLK(os.lstat(os.path.join(copy, "disk")).st_mode)
        # The repository root is the grabber's, 0700: nobody else gets in.
        repo = os.stat(site.repo)
        assert stat.S_IMODE(repo.st_mode) == 0o700 and repo.st_uid == site.lab.grabber_pw().pw_uid
        for target in ("rootshell", "disk", "capped"):
            reach = _as_user(site, "stat", os.path.join(copy, target))
            assert reach.returncode != 0 and "Permission denied" in reach.stderr
        # And were they reached, the filesystem would not honour them.
        assert mounts.missing_safety_options(copy) == []


def test_without_nosuid_nodev_the_snapshot_is_inert(site: Site) -> None:
    _plant(site.src)
    with site.super_mode(nosuid=False):
        _without_nosuid(site)


def _without_nosuid(site: Site) -> None:
    assert mounts.missing_safety_options(site.repo) != []  # the lab's disk: a plain mount
    before = site.repo_state()
    refused = site.run("-v")
    assert refused.returncode == errors.FAILED, refused.stderr
    assert "refusing rsync --super" in refused.stderr
    assert f"fix: mount --bind -o nosuid,nodev {site.repo} {site.repo}" in refused.stderr
    assert site.repo_state() == before and site.snapshots() == []
    site.regrab(super="fake-super")
    done = site.run("-v")
    assert done.returncode == errors.OK, done.stderr
    [name] = site.snapshots()
    copy = site.in_snapshot(name)
    st = os.lstat(os.path.join(copy, "rootshell"))
    assert st.st_uid == site.lab.grabber_pw().pw_uid and not st.st_mode & 0o4000
    assert stat.S_ISREG(os.lstat(os.path.join(copy, "disk")).st_mode)
    # The file capability is kept as inert data (user.rsync.*), not applied.
    names = os.listxattr(os.path.join(copy, "capped"))
    assert "security.capability" not in names and "user.rsync.security.capability" in names
