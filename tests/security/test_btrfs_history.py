"""Property 6 on the btrfs store: a subverted receiver cannot touch history.

We stand in for a receiving rsync a hostile backed-up host has taken over:
arbitrary code with exactly the receiver's uid, capabilities, Landlock rules
and mount namespace (receiver.confine, the same preexec the run uses, with
the run's write_dirs) against a btrfs repository mounted
user_subvol_rm_allowed (the weakest setup: there the subvolumes' owner, the
receiver's own uid, may clear a read-only flag and delete a subvolume).  It
tries to change a byte, mode, owner, xattr and name in the older snapshot,
to delete it and to clear its read-only flag, directly, through the
subvolume ioctls Landlock does not mediate, and through /proc/PID/root of
the grabber that started it.  Every attempt fails; the control run without
the confinement shows they would succeed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from lab import make_user, remove_user
from pullsnap import caps
from pullsnap.config import GrabberConfig
from pullsnap.grabber.confine import receiver
from pullsnap.grabber.store import btrfsioctl
from tests.forked import in_child
from tests.labfixtures import remove_btrfs_tree

pytestmark = [pytest.mark.root, pytest.mark.security]

OLDER = "2026-01-01T000000Z"
NEW = "2026-01-02T000000Z.incomplete"

PAYLOAD = r"""
import array, fcntl, json, os, struct, sys
host, older_name, new_name = sys.argv[1:4]
older, new = os.path.join(host, older_name), os.path.join(host, new_name)
results = {}
def attempt(name, action):
    try:
        action()
        results[name] = "ok"
    except OSError as e:
        results[name] = e.strerror
def setflags(path, value):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, 0x4008941A, array.array("Q", [value]), False)
    finally:
        os.close(fd)
def destroy(parent, name):
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.ioctl(fd, 0x5000940F, bytearray(struct.pack("q4088s", 0, name.encode())))
    finally:
        os.close(fd)
def rewrite(path):
    with open(path, "r+b") as f:
        f.write(b"X")
attempt("write inside", lambda: open(os.path.join(new, "new"), "w").write("x"))
attempt("rewrite the shared file in its own tree", lambda: rewrite(os.path.join(new, "f")))
for label, root in (("", older), (" via /proc", f"/proc/{os.getppid()}/root{older}")):
    f = os.path.join(root, "f")
    attempt("clear read-only" + label, lambda: setflags(root, 0))
    attempt("write a byte" + label, lambda: rewrite(f))
    attempt("chmod" + label, lambda: os.chmod(f, 0o666))
    attempt("chown" + label, lambda: os.chown(f, 0, 0))
    attempt("set an xattr" + label, lambda: os.setxattr(f, "user.planted", b"x"))
    attempt("rename inside" + label, lambda: os.rename(f, os.path.join(root, "g")))
    attempt("unlink" + label, lambda: os.unlink(f))
attempt("delete the subvolume", lambda: destroy(host, older_name))
attempt("delete via /proc", lambda: destroy(f"/proc/{os.getppid()}/root{host}", older_name))
attempt("rename the snapshot", lambda: os.rename(older, older + "-gone"))
print(json.dumps(results))
"""


@pytest.fixture
def scene(btrfs: str):
    base = tempfile.mkdtemp(prefix="pullsnap-btrfs-history-")
    os.chmod(base, 0o755)
    user = f"psb-{os.getpid() % 100000}"
    make_user(user, base, "/usr/sbin/nologin")
    repo = os.path.join(btrfs, f"history-{os.getpid()}")
    try:
        pw = __import__("pwd").getpwnam(user)
        host = os.path.join(repo, "web1")
        private = os.path.join(base, "private")
        for path in (repo, host, private):
            os.makedirs(path, mode=0o700)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        parent = btrfsioctl.open_dir(host)
        btrfsioctl.create_subvolume(parent, OLDER)
        older = os.path.join(host, OLDER)
        with open(os.path.join(older, "f"), "wb") as f:
            f.write(b"history\n" * 1000)
        os.setxattr(os.path.join(older, "f"), "user.kept", b"1")
        for path in (older, os.path.join(older, "f")):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        old_fd = btrfsioctl.open_dir(older)
        btrfsioctl.set_readonly(old_fd)
        btrfsioctl.snapshot(old_fd, parent, NEW)  # the run's writable snapshot
        os.close(old_fd)
        os.close(parent)
        python = os.path.join(base, "python3")
        shutil.copy(os.path.realpath(sys.executable), python)
        os.chmod(python, 0o755)
        yield pw, host, private, python
    finally:
        remove_user(user)
        remove_btrfs_tree(repo)
        shutil.rmtree(base, ignore_errors=True)


def _state(path: str) -> tuple:
    st = os.lstat(path)
    return (open(path, "rb").read(), st.st_mode, st.st_uid, st.st_gid,
            sorted(os.listxattr(path)), sorted(os.listdir(os.path.dirname(path))))  # fmt: skip


def _attack(pw, host: str, private: str, python: str, mode: str, confined: bool) -> dict:
    def body() -> dict:
        wanted = caps.GRABBER_LAUNCHER_CAPS if mode == "super" else ()
        caps.drop_to_user(pw.pw_name, wanted)
        held = caps.granted(wanted)
        cfg = GrabberConfig(repository=os.path.dirname(host), rsync=python)
        if confined:
            jail = receiver.confine(
                cfg, mode, held, host, private, 1, print,
                write_dirs=[os.path.join(host, NEW)], only_write_dirs=True,
            )  # fmt: skip
            preexec = jail.preexec()
        else:
            ambient = tuple(c for c in held if c != receiver.NAMESPACE_CAP)

            def preexec() -> None:
                caps.raise_ambient(ambient)

        argv = [python, "-I", "-c", PAYLOAD, host, OLDER, NEW]
        done = subprocess.run(argv, preexec_fn=preexec, capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin"}, check=False)  # fmt: skip
        return json.loads(done.stdout) if done.stdout else {"error": done.stderr}

    return in_child(body)


@pytest.mark.parametrize("mode", ["super", "fake-super"])
def test_subverted_receiver_cannot_change_or_delete_an_older_snapshot(scene, mode) -> None:
    pw, host, private, python = scene
    f = os.path.join(host, OLDER, "f")
    before = _state(f)
    got = _attack(pw, host, private, python, mode, confined=True)
    assert "error" not in got, got
    assert got["write inside"] == "ok"
    # No inode is shared with history: its own copy of the file changes, not the older one.
    assert got["rewrite the shared file in its own tree"] == "ok"
    own = ("write inside", "rewrite the shared file in its own tree")
    attempts = [k for k in got if k not in own]
    assert len(attempts) == 17
    assert {k: v for k, v in got.items() if k in attempts and v == "ok"} == {}
    assert _state(f) == before
    fd = btrfsioctl.open_dir(os.path.join(host, OLDER))
    try:
        assert btrfsioctl.is_subvolume(fd) and btrfsioctl.is_readonly(fd)
    finally:
        os.close(fd)


def test_control_without_confinement_the_owner_clears_the_flag_and_deletes(scene) -> None:
    """Shows the test above would fail if the confinement were missing."""
    pw, host, private, python = scene
    got = _attack(pw, host, private, python, "fake-super", confined=False)
    assert "error" not in got, got
    assert got["clear read-only"] == "ok" and got["write a byte"] == "ok"
    assert got["set an xattr"] == "ok" and got["rename inside"] == "ok"
    assert got["delete the subvolume"] == "ok"
    assert not os.path.exists(os.path.join(host, OLDER))
