"""Property 7: the grabber's receiving rsync is confined to its host's directory.

A malicious sender can attack the receiving rsync, which holds DAC_OVERRIDE,
FOWNER, CHOWN, FSETID, MKNOD and SETFCAP.  We stand in for a *subverted*
receiver: the exact confinement the grabber applies (receiver.confine, the
same preexec) around a program that tries to do harm with those
capabilities.  Inside the host directory it may write; outside it may not
create, write, chmod, chown or set file capabilities, nor read secrets.  A
control run without the confinement shows each attempt would succeed.

Its root is its own (rootview.py): the mount namespace alone, without
Landlock, shows it nothing but the host's directory and what its Landlock
rules name, and follows no symlink in the host's directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from lab import make_user, remove_user
from pullsnap import caps, connectfd, landlock
from pullsnap.config import GrabberConfig
from pullsnap.grabber.confine import receiver
from tests.forked import in_child

pytestmark = [pytest.mark.root, pytest.mark.security]

PAYLOAD = r"""
import json, os, sys
host, sibling, outside, victim = sys.argv[1:5]
target, base, older = (os.path.join(host, n) for n in ("new.incomplete", "base", "older"))
results = {}
def attempt(name, action):
    try:
        action()
        results[name] = "ok"
    except OSError as e:
        results[name] = e.strerror
attempt("write inside", lambda: open(os.path.join(target, "new"), "w").write("x"))
attempt("link from the base", lambda: os.link(os.path.join(base, "f"), os.path.join(target, "f")))
attempt("rewrite own record", lambda: open(os.path.join(host, "base.json"), "a").write("x"))
attempt("plant in an older snapshot", lambda: open(os.path.join(older, "planted"), "w"))
attempt("create in sibling host", lambda: open(os.path.join(sibling, "planted"), "w"))
attempt("write outside", lambda: open(os.path.join(outside, "victim"), "a").write("x"))
# The victim is in its view (its ssh, here), read-only:
attempt("write its ssh", lambda: open(victim, "a").write("x"))
attempt("chmod u+s its ssh", lambda: os.chmod(victim, 0o4755))
attempt("chown its ssh", lambda: os.chown(victim, 0, 0))
attempt("file caps on its ssh", lambda: os.setxattr(
    victim, "security.capability", bytes.fromhex("0000000202000000000000000000000000000000")))
attempt("follow a symlink in its host dir", lambda: open(os.path.join(base, "lib", "os.py")).read())
attempt("read /etc/shadow", lambda: open("/etc/shadow").read())
attempt("read a secret outside", lambda: open(os.path.join(outside, "secret")).read())
attempt("read its /etc/passwd", lambda: open("/etc/passwd").read())
results["its /etc"] = sorted(os.listdir("/etc"))
# /proc is out of reach under Landlock: ask the kernel directly (capget(2), prctl(2)).
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
data = (ctypes.c_uint32 * 6)()
assert libc.capget(header, data) == 0
mask = lambda i: data[i] | (data[i + 3] << 32)  # effective, permitted, inheritable
ambient = sum(1 << c for c in range(41) if libc.prctl(47, 1, c, 0, 0) == 1)
results["status"] = {"CapEff": f"{mask(0):016x}", "CapPrm": f"{mask(1):016x}",
                     "CapAmb": f"{ambient:016x}", "NoNewPrivs": str(libc.prctl(39, 0, 0, 0, 0))}
print(json.dumps(results))
"""

# Run in the mount namespace alone (no Landlock): everything it can see.
WALK = r"""
import json, os, sys
host, python = sys.argv[1], sys.argv[2]
mounts, links, dirs = [], {}, []
stack = ["/"]
while stack:
    path = stack.pop()
    for entry in os.scandir(path):
        if entry.is_symlink():
            links[entry.path] = os.readlink(entry.path)
        elif os.path.ismount(entry.path) or not entry.is_dir():
            mounts.append(entry.path)
        else:
            dirs.append(entry.path)
            stack.append(entry.path)
def attempt(path):
    try:
        open(path, "rb").read(1)
        return "ok"
    except OSError as e:
        return e.strerror
print(json.dumps({"mounts": sorted(mounts), "links": links, "dirs": sorted(dirs),
                  "symlink in host dir": attempt(os.path.join(host, "base", "lib", "os.py")),
                  "its stdlib": attempt(os.path.join(os.path.dirname(os.__file__), "os.py"))}))
"""


@pytest.fixture
def scene():
    base = tempfile.mkdtemp(prefix="pullsnap-confine-")
    os.chmod(base, 0o755)
    user = f"psc-{os.getpid() % 100000}"
    make_user(user, base, "/usr/sbin/nologin")
    try:
        pw = __import__("pwd").getpwnam(user)
        repo = os.path.join(base, "repo")
        dirs = {name: os.path.join(repo, name) for name in ("web1", "web2")}
        dirs["outside"] = os.path.join(base, "outside")
        dirs["private"] = os.path.join(base, "private")
        for name in ("new.incomplete", "base", "older"):
            dirs[name] = os.path.join(dirs["web1"], name)
        for path in (repo, *dirs.values()):
            os.makedirs(path, exist_ok=True)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        for path in (os.path.join(dirs["base"], "f"), os.path.join(dirs["web1"], "base.json")):
            with open(path, "w") as f:
                f.write("{}")
            os.chown(path, pw.pw_uid, pw.pw_gid)
        secret = os.path.join(dirs["outside"], "secret")
        with open(secret, "w") as f:
            f.write("root's only\n")
        os.chmod(secret, 0o600)
        for victim in (os.path.join(dirs["outside"], "victim"), os.path.join(base, "ssh")):
            shutil.copy("/bin/true", victim)
            os.chmod(victim, 0o755)  # root-owned: only capabilities let anyone touch it
        # An old snapshot's symlink out of the repository, as a host plants one.
        stdlib = os.path.dirname(os.path.realpath(os.__file__))
        os.symlink(stdlib, os.path.join(dirs["base"], "lib"))
        # The stand-in "rsync": a private copy of the interpreter (allowed to
        # execute because confinement allows executing cfg.rsync).
        python = os.path.join(base, "python3")
        shutil.copy(os.path.realpath(sys.executable), python)
        os.chmod(python, 0o755)
        yield pw, dirs, python
    finally:
        remove_user(user)
        shutil.rmtree(base, ignore_errors=True)


def _run_as_grabber(pw, dirs, python, confined: bool, namespace_only: bool = False) -> dict:
    """Fork; become the grabber user holding the launcher's caps; spawn the
    payload (or, `namespace_only`, WALK in the namespace without Landlock)."""
    victim = os.path.join(os.path.dirname(python), "ssh")

    def body() -> dict:
        caps.drop_to_user(pw.pw_name, caps.GRABBER_LAUNCHER_CAPS)
        held = caps.granted(caps.GRABBER_LAUNCHER_CAPS)
        cfg = GrabberConfig(repository=os.path.dirname(dirs["web1"]), rsync=python, ssh=victim)
        if confined:
            jail = receiver.confine(
                cfg, "super", held, dirs["web1"], dirs["private"], 1, print,
                write_dirs=[dirs["new.incomplete"], dirs["base"]],
            )  # fmt: skip
            if namespace_only:
                jail = dataclasses.replace(jail, prepared=None)
            preexec = jail.preexec()
        else:
            ambient = tuple(c for c in held if c != receiver.NAMESPACE_CAP)

            def preexec() -> None:
                caps.raise_ambient(ambient)

        argv = [python, "-I", "-c", PAYLOAD, dirs["web1"], dirs["web2"], dirs["outside"], victim]
        if namespace_only:
            argv = [python, "-I", "-c", WALK, dirs["web1"], python]
        done = subprocess.run(argv, preexec_fn=preexec, capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin"}, check=False)  # fmt: skip
        return json.loads(done.stdout) if done.stdout else {"error": done.stderr}

    return in_child(body)


def test_subverted_receiver_cannot_touch_anything_outside_its_host(scene) -> None:
    pw, dirs, python = scene
    got = _run_as_grabber(pw, dirs, python, confined=True)
    assert "error" not in got, got
    assert got["write inside"] == "ok" and got["link from the base"] == "ok"
    # Within its own host directory only the new snapshot and its bases.
    assert got["rewrite own record"] == "Permission denied"
    assert got["plant in an older snapshot"] == "Permission denied"
    # Other hosts and the rest of the backup host are not in its root at all.
    assert got["create in sibling host"] == "No such file or directory"
    assert got["write outside"] == "No such file or directory"
    assert got["read a secret outside"] == "No such file or directory"
    # What it sees is read-only, capabilities or not (Landlock answers first on a write).
    assert got["write its ssh"] in {"Permission denied", "Read-only file system"}
    assert got["chmod u+s its ssh"] == "Read-only file system"  # the mount namespace
    assert got["chown its ssh"] == "Read-only file system"
    assert got["file caps on its ssh"] == "Read-only file system"
    assert got["follow a symlink in its host dir"] == "Too many levels of symbolic links"
    # /etc is the run's own: the backup host's shadow is not even there.
    assert got["read /etc/shadow"] == "No such file or directory"
    assert got["read its /etc/passwd"] == "ok"
    assert (
        {"group", "nsswitch.conf", "passwd"}
        <= set(got["its /etc"])
        <= {"group", "ld.so.cache", "nsswitch.conf", "passwd"}
    )
    status = {"CapInh": "0", "CapBnd": "0", **got["status"]}
    held = caps.parse_proc_status("".join(f"{k}:\t{v}\n" for k, v in status.items()))
    assert held.effective == frozenset(caps.RECEIVER_SUPER_CAPS)
    assert held.ambient == frozenset(caps.RECEIVER_SUPER_CAPS)
    assert "sys_admin" not in held.permitted and held.no_new_privs
    assert os.stat(os.path.join(dirs["outside"], "victim")).st_mode & 0o7777 == 0o755
    assert not os.path.exists(os.path.join(dirs["web2"], "planted"))


def _ancestors(path: str) -> list[str]:
    found = []
    while path != "/":
        path = os.path.dirname(path)
        found.append(path)
    return found


def test_the_receiver_sees_only_its_host_dir_and_what_it_needs(scene) -> None:
    """Its mount namespace alone, without Landlock: every path it can see,
    walked from its root, is its host's directory, its private directory
    (the run's /etc, known_hosts, the agent's socket), a program it runs,
    a library directory, connectfd.py or /dev/null; and the host's
    directory follows no symlink."""
    pw, dirs, python = scene
    got = _run_as_grabber(pw, dirs, python, confined=True, namespace_only=True)
    assert "error" not in got, got
    needed = {dirs["web1"], dirs["private"], "/etc", "/dev/null", python,
              os.path.join(os.path.dirname(python), "ssh"), connectfd.__file__,
              *(os.path.realpath(p) for p in (*landlock.LIBRARIES, "/bin/sh", sys.executable,
                                             "/usr/bin/setpriv"))}  # fmt: skip
    assert set(got["mounts"]) <= needed, set(got["mounts"]) - needed
    assert dirs["web1"] in got["mounts"] and "/usr/lib" in got["mounts"]
    # The directories and symlinks on the way to them, nothing with content.
    on_the_way = {parent for p in needed for parent in _ancestors(p)}
    assert set(got["dirs"]) <= on_the_way, set(got["dirs"]) - on_the_way
    for path, target in got["links"].items():
        assert os.path.islink(path) and os.readlink(path) == target, path
    # Not even their names, unless on the way to something it needs (a
    # checkout under /var or /home holds connectfd.py): then the directory
    # alone, empty but for that way (the assertion on "dirs" above).
    hidden = {"/home", "/root", "/var", "/usr/share", dirs["web2"], dirs["outside"]} - on_the_way
    assert dirs["web2"] in hidden and dirs["outside"] in hidden
    assert not hidden & set(got["mounts"] + got["dirs"])
    assert got["its stdlib"] == "ok"
    assert got["symlink in host dir"] == "Too many levels of symbolic links"


def test_control_without_confinement_the_same_attempts_succeed(scene) -> None:
    """Shows the test above would fail if the confinement were missing."""
    pw, dirs, python = scene
    got = _run_as_grabber(pw, dirs, python, confined=False)
    assert "error" not in got, got
    assert got["create in sibling host"] == "ok" and got["rewrite own record"] == "ok"
    assert got["chmod u+s its ssh"] == "ok"
    assert got["read /etc/shadow"] == "ok" and got["read a secret outside"] == "ok"
    assert got["chown its ssh"] == "ok" and got["file caps on its ssh"] == "ok"
    assert got["follow a symlink in its host dir"] == "ok"
