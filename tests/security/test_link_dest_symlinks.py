"""No byte of the backup host outside a host's directory lands in its
snapshots through the symlinks of its old snapshots (issue 15, item 4).

The attack: one night `src/etc -> /etc` (and the like) is backed up as a
symlink; the next night `src/etc/` is a real directory holding a look-alike
of `/etc/nsswitch.conf` (same size, mode, owner, nanosecond mtime).  The
grabber's rsync looks each file up in the old snapshot (--link-dest):
`<old>/src/etc/nsswitch.conf`, which through the planted link is the backup
host's own file.  rsync finds it matching and hardlinks it into the new
snapshot, or copies it where it cannot link (generator.c try_dests_reg),
and a later restore hands it to the backed-up host.

With --fake-super rsync stores a symlink as a file that names its target
(rsync(1) --fake-super), so the lookup meets a file, not a link; with
--super the snapshot holds real symlinks.  The receiver's host directory
is mounted nosymfollow in a root of its own (rootview.py): the lookup
fails (ELOOP), rsync takes the file from the sender, and the snapshot
holds the sender's bytes, in --super and --fake-super mode alike, and in
the btrfs store (which writes in place into a snapshot of the last tree,
old links and all).  The variants point at the backup host's /etc, its
libraries (which the receiver must be able to read), a directory outside
the repository, and another host's snapshot.  The control runs rsync with
the same options unconfined on the same trees and gets the backup host's
files: the attack is real.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from lab import chown_tree
from pullsnap import errors
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.security]


@pytest.fixture(params=["super", "fake-super", "btrfs-super"])
def mode_site(request: pytest.FixtureRequest) -> Iterator[Site]:
    """The hardlink store in both modes; the btrfs store, whose new tree is a
    snapshot of the last one (its symlinks included), written in place."""
    site = request.getfixturevalue("btrfs_site" if "btrfs" in request.param else "site")
    site.regrab(policy={"suspect_drop": 0})  # the tree is tiny: any change is a big one
    if request.param in ("super", "btrfs-super"):
        with site.super_mode() as s:
            yield s
    else:
        yield site


def _write(path: str, data: bytes, mode: int = 0o644, owner: tuple[int, int] = (0, 0)) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    os.chown(path, *owner)


def _targets(site: Site) -> dict[str, str]:
    """Link name in the source -> a backup-host file the planted link reaches."""
    outside = os.path.join(site.root, "backup-host-secrets")
    os.makedirs(outside, mode=0o700)
    _write(os.path.join(outside, "secret"), b"the backup host's own secret\n", 0o600)
    # Another host's snapshot, as its receiver stored it.
    g = site.lab.grabber_pw()
    web2 = os.path.join(site.repo, "web2", "2026-01-01T000000Z")
    os.makedirs(web2)
    _write(os.path.join(web2, "secret"), b"web2's data\n", 0o600, (g.pw_uid, g.pw_gid))
    chown_tree(os.path.join(site.repo, "web2"), g.pw_uid, g.pw_gid)
    stdlib = os.path.dirname(os.path.realpath(os.__file__))  # under /usr/lib: it must read it
    return {
        "etc": "/etc/nsswitch.conf",
        "lib": os.path.join(stdlib, "os.py"),
        "outside": os.path.join(outside, "secret"),
        "web2": os.path.join(web2, "secret"),
    }


def _plant(site: Site, targets: dict[str, str]) -> None:
    os.makedirs(site.src)
    for name, target in targets.items():
        os.symlink(os.path.dirname(target), os.path.join(site.src, name))


def _look_alikes(site: Site, targets: dict[str, str]) -> None:
    """The next night each link is a directory with a look-alike of its target."""
    for name, target in targets.items():
        st = os.stat(target)
        os.unlink(os.path.join(site.src, name))
        os.makedirs(os.path.join(site.src, name))
        fake = os.path.join(site.src, name, os.path.basename(target))
        _write(fake, b"X" * st.st_size, st.st_mode & 0o7777, (st.st_uid, st.st_gid))
        os.utime(fake, ns=(st.st_atime_ns, st.st_mtime_ns))


def _stored_as_symlink(path: str) -> bool:
    """A symlink, or with --fake-super a file whose user.rsync.%stat xattr
    says it stands for one (rsync(1) --fake-super: mode 0120000)."""
    if os.path.islink(path):
        return True
    return os.getxattr(path, "user.rsync.%stat").startswith(b"120")


def _contents(targets: dict[str, str]) -> dict[str, bytes]:
    out = {}
    for path in targets.values():
        with open(path, "rb") as f:
            out[path] = f.read()
    return out


def test_a_planted_symlink_cannot_pull_a_backup_host_file_into_a_snapshot(
    mode_site: Site,
) -> None:
    site = mode_site
    targets = _targets(site)
    before = _contents(targets)
    _plant(site, targets)
    assert site.run().returncode == errors.OK
    [first] = site.snapshots()
    for name in targets:
        assert _stored_as_symlink(os.path.join(site.in_snapshot(first), name))

    _look_alikes(site, targets)
    done = site.run("-v")
    [_, second] = site.snapshots()
    for name, target in targets.items():
        stored = os.path.join(site.in_snapshot(second), name, os.path.basename(target))
        st = os.stat(target)
        assert os.stat(stored).st_ino != st.st_ino, name
        with open(stored, "rb") as f:
            assert f.read() == b"X" * st.st_size, f"{name}: the backup host's file was stored"
    assert _contents(targets) == before
    # Nothing was followed, so nothing was even refused: a clean run.
    assert done.returncode == errors.OK, done.stderr
    assert "Permission denied" not in done.stderr


def test_control_rsync_unconfined_copies_the_backup_host_files(site: Site) -> None:
    """The same trees and rsync's options as the grabber's, without its
    confinement: the look-alikes are taken from the backup host."""
    targets = _targets(site)
    _plant(site, targets)
    old = os.path.join(site.root, "old")
    new = os.path.join(site.root, "new")
    options = ["rsync", "-aHAX", "--numeric-ids", "--super", "--modify-window=-1"]
    subprocess.run([*options, site.src + "/", old + "/"], check=True)
    _look_alikes(site, targets)
    subprocess.run(
        [*options, "--insecure-links", f"--link-dest={old}", site.src + "/", new + "/"],
        check=True,
    )
    for path, content in _contents(targets).items():
        name = next(n for n, t in targets.items() if t == path)
        with open(os.path.join(new, name, os.path.basename(path)), "rb") as f:
            assert f.read() == content, name
