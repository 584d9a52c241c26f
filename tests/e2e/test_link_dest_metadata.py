"""An old snapshot's metadata never changes because a newer run saw a change.

rsync links a file from --link-dest only when it is "identical in all
preserved attributes" (rsync(1) --link-dest); a file whose owner, mode or
xattrs changed gets a new inode, so the old snapshot keeps what it recorded.
rsnapshot's faster way, `cp -al` of the last snapshot and then rsync into
the copy, shares every inode first: rsync then fixes the attributes in
place, and the old snapshot changes with the new one.  The benchmark's
no-change target may not be bought with the second behaviour.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from pullsnap import errors
from tests.e2e.conftest import Site

OLD_OWNER, NEW_OWNER = (0, 0), (4242, 4343)


def _stored(path: str) -> tuple:
    """What a snapshot holds about a file: owner, mode and every xattr (with
    --fake-super the real owner and mode are the user.rsync.%stat xattr)."""
    st = os.lstat(path)
    names = sorted(os.listxattr(path, follow_symlinks=False))
    xattrs = tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in names)
    return st.st_uid, st.st_gid, st.st_mode & 0o7777, xattrs


def _make_source(src: str) -> None:
    os.makedirs(src)
    for name in ("changed", "unchanged"):
        path = os.path.join(src, name)
        with open(path, "wb") as f:
            f.write(b"same content before and after\n")
        os.chmod(path, 0o644)
        os.setxattr(path, "user.tag", b"old")
        os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))


def _change_metadata_only(path: str) -> None:
    """Owner, mode and an xattr change; content and mtime stay (a quick check
    by size and mtime alone would call the file unchanged)."""
    mtime = os.lstat(path).st_mtime_ns
    os.lchown(path, *NEW_OWNER)
    os.chmod(path, 0o600)
    os.setxattr(path, "user.tag", b"new")
    os.utime(path, ns=(mtime, mtime))


@pytest.fixture(params=["fake-super", "super"])
def mode(request: pytest.FixtureRequest, site: Site):
    if request.param == "fake-super":
        yield request.param
        return
    site.lab.use_launcher(True)
    try:
        with site.lab.nosuid_mount(site.repo):
            yield request.param
    finally:
        site.lab.use_launcher(False)


@pytest.mark.root
@pytest.mark.e2e
def test_newer_run_never_rewrites_an_older_snapshot(site: Site, mode: str) -> None:
    _make_source(site.src)
    assert site.run().returncode == errors.OK
    [first] = site.snapshots()
    old_changed = os.path.join(site.in_snapshot(first), "changed")
    old_unchanged = os.path.join(site.in_snapshot(first), "unchanged")
    recorded = _stored(old_changed)

    _change_metadata_only(os.path.join(site.src, "changed"))
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    _, second = site.snapshots()
    new_changed = os.path.join(site.in_snapshot(second), "changed")

    assert _stored(old_changed) == recorded, "the old snapshot's metadata changed"
    assert _stored(new_changed) != recorded, "the new snapshot missed the change"
    assert os.lstat(new_changed).st_ino != os.lstat(old_changed).st_ino
    # --link-dest was in force: the untouched file is the same inode in both.
    new_unchanged = os.path.join(site.in_snapshot(second), "unchanged")
    assert os.lstat(new_unchanged).st_ino == os.lstat(old_unchanged).st_ino
    if mode == "super":
        assert (os.lstat(new_changed).st_uid, os.lstat(new_changed).st_gid) == NEW_OWNER


@pytest.mark.root
def test_cp_al_then_rsync_rewrites_the_older_snapshot(tmp_path) -> None:
    """rsnapshot's link_dest 0 mode (cp -al, then rsync -a --delete into the copy)."""
    src, one, two = (str(tmp_path / n) for n in ("src", "one", "two"))
    _make_source(src)
    rsync = ["rsync", "-aHAX", "--numeric-ids", "--delete"]
    subprocess.run([*rsync, src + "/", one + "/"], check=True)
    recorded = _stored(os.path.join(one, "changed"))
    subprocess.run(["cp", "-al", one, two], check=True)
    _change_metadata_only(os.path.join(src, "changed"))
    subprocess.run([*rsync, src + "/", two + "/"], check=True)

    old = os.path.join(one, "changed")
    assert os.lstat(old).st_ino == os.lstat(os.path.join(two, "changed")).st_ino
    assert _stored(old) != recorded, "cp -al + rsync left the old snapshot alone"
    assert (os.lstat(old).st_uid, os.lstat(old).st_gid) == NEW_OWNER
    assert os.getxattr(old, "user.tag") == b"new"
