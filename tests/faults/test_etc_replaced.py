"""Pulls while the backup host's /etc/passwd (and group, nsswitch.conf,
ld.so.cache) are replaced by rename, over and over, as useradd, usermod,
userdel and ldconfig do.

A Landlock rule on a single file follows the inode it was taken on, so a
receiver whose rules named /etc/passwd lost it at the first rename between
preparing the rules and its ssh's start ("No user exists for uid N", rsync
exit 12 or 255).  The receiver now reads its own /etc (etcview.py), bound
over /etc in its mount namespace: every pull must succeed.

The machine's real /etc is never written: the test runs the backup host's
sshd (and so the grabber and its rsync) in a mount namespace of its own,
in which /etc is an overlay whose upper layer takes the renames.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable

import pytest

from lab import Sshd, write
from pullsnap import errors
from tests.forked import in_child
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.faults, pytest.mark.security]

REPLACED = ("passwd", "group", "nsswitch.conf", "ld.so.cache")
RUNS = 6
CLONE_NEWNS = 0x00020000


def _replace_by_rename(stop: threading.Event, counter: list[int]) -> None:
    """What useradd and ldconfig do: a new file renamed over the old one."""
    while not stop.is_set():
        for name in REPLACED:
            path = os.path.join("/etc", name)
            with open(path, "rb") as f:
                content = f.read()
            fresh = os.path.join("/etc", f".{name}.pullsnap-test")
            with open(fresh, "wb") as f:
                f.write(content)
            os.chmod(fresh, 0o644)
            os.rename(fresh, path)
            counter[0] += 1


def _in_namespace_with_overlay_etc(scratch: str, body: Callable[[], dict]) -> dict:
    """Run `body` in a forked child whose mount namespace has /etc as an
    overlay on the real one (writes land in `scratch`)."""

    def in_namespace() -> dict:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        subprocess.run(["mount", "--make-rprivate", "/"], check=True)
        upper, work = os.path.join(scratch, "upper"), os.path.join(scratch, "work")
        os.makedirs(upper)
        os.makedirs(work)
        options = f"lowerdir=/etc,upperdir={upper},workdir={work}"
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, "/etc"], check=True)
        return body()

    return in_child(in_namespace)


def _pulls_while_etc_changes(site: Site) -> dict:
    """A backup-host sshd of this namespace, RUNS pulls through it, renames meanwhile."""
    sshd = Sshd(os.path.join(site.root, "sshd"), [site.lab.grabber_user])
    sshd.start()
    i = site.lab.initiator_pw()
    known = write(os.path.join(site.root, "known_hosts"), sshd.known_hosts_line(), 0o644,
                  (i.pw_uid, i.pw_gid))  # fmt: skip
    site.configure(destination={"port": sshd.port, "known_hosts": known})
    stop, renames = threading.Event(), [0]
    writer = threading.Thread(target=_replace_by_rename, args=(stop, renames))
    writer.start()
    try:
        runs = []
        for n in range(RUNS):
            with open(os.path.join(site.src, "changing"), "w") as f:
                f.write(f"run {n}\n")
            done = site.run()
            runs.append([done.returncode, done.stderr[-2000:]])
    finally:
        stop.set()
        writer.join()
        sshd.stop()
    return {"runs": runs, "renames": renames[0]}


@pytest.mark.parametrize("mode", ["fake-super", "super"])
def test_pulls_succeed_while_etc_files_are_replaced(site: Site, mode: str) -> None:
    os.makedirs(os.path.join(site.src, "dir"))
    write(os.path.join(site.src, "dir", "file"), "content\n")
    scratch = tempfile.mkdtemp(prefix="pullsnap-etc-")
    try:
        if mode == "super":
            with site.super_mode():
                got = _in_namespace_with_overlay_etc(
                    scratch, lambda: _pulls_while_etc_changes(site)
                )
        else:
            got = _in_namespace_with_overlay_etc(scratch, lambda: _pulls_while_etc_changes(site))
        # The renames went to the overlay's upper layer, not to the machine's /etc.
        replaced = sorted(os.listdir(os.path.join(scratch, "upper")))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert "error" not in got, got["error"]
    assert replaced == sorted(REPLACED)
    assert not [n for n in os.listdir("/etc") if n.endswith(".pullsnap-test")]
    # The files were replaced many times while the pulls ran ...
    assert got["renames"] > RUNS * len(REPLACED), got["renames"]
    # ... and every pull made its snapshot.
    for code, stderr in got["runs"]:
        assert code == errors.OK, stderr
    assert len(site.snapshots()) == RUNS
