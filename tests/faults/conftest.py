"""Helpers for the fault scenarios: process trees from /proc, small
filesystems as repositories, extra backed-up hosts, made-up histories.

Processes of a run are found by walking /proc from a PID the test started
(the initiator it spawned, or the lab's backup-host sshd), never by name
alone.  Every mount is undone and every process ends before the test does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

from lab import Lab, chown_tree
from pullsnap.grabber.store.repository import HostRepo, snapshot_name
from tests.labfixtures import Site

MIB = 1024 * 1024


# --- processes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    uid: int
    cmdline: str


def processes() -> dict[int, Proc]:
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            uid = os.stat(f"/proc/{entry}").st_uid
        except OSError:
            continue
        # The command name in stat is in parentheses and may hold spaces.
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        found[int(entry)] = Proc(int(entry), ppid, uid, cmdline)
    return found


def descendants(pid: int) -> dict[int, Proc]:
    """Every process below `pid` (not `pid` itself), from one /proc walk."""
    table = processes()
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found: dict[int, Proc] = {}
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        if child in table and child not in found:
            found[child] = table[child]
            todo.extend(children.get(child, []))
    return found


def alive(pids: dict[int, Proc]) -> list[Proc]:
    """Those of `pids` still running as the same program (a PID can be reused)."""
    now = processes()
    return [p for pid, p in pids.items() if pid in now and now[pid].cmdline == p.cmdline]


def wait_until(condition, timeout: float, step: float = 0.05) -> float | None:
    """Seconds until `condition()` held, or None if it did not within `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(step)
    return None


def grabber_side(lab: Lab) -> dict[int, Proc]:
    """The backup host's processes of runs: below the lab's sshd."""
    assert lab.sshd is not None and lab.sshd.process is not None
    return descendants(lab.sshd.process.pid)


# --- files and trees --------------------------------------------------------------------------


def write_random(path: str, size: int) -> None:
    with open(path, "wb") as f:
        for _ in range(size // MIB):
            f.write(os.urandom(MIB))
        f.write(os.urandom(size % MIB))


def record(site: Site, name: str, host: str = "web1") -> dict:
    with open(os.path.join(site.repo, host, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def attempts(site: Site, host: str = "web1"):
    return HostRepo(site.repo, host).attempts()


def fabricate(site: Site, when: dt.datetime, host: str = "web1", **extra) -> str:
    """A snapshot as an earlier run would have left it (tree and record)."""
    repo = HostRepo(site.repo, host)
    repo.ensure()
    name = snapshot_name(when)
    tree = repo.tree(name)
    os.makedirs(os.path.join(tree, "old"))
    with open(os.path.join(tree, "old", "file"), "w") as f:
        f.write(name)
    repo.write_record(name, {"state": "complete", "begin": name, **extra})
    g = site.lab.grabber_pw()
    chown_tree(repo.path, g.pw_uid, g.pw_gid)
    return name


# --- mounts ---------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs_repository(site: Site, size: str, inodes: int = 0) -> Iterator[str]:
    """A small tmpfs as the site's repository (nosuid,nodev), unmounted after;
    `inodes`: at most that many files, directories and links (nr_inodes)."""
    g = site.lab.grabber_pw()
    options = f"size={size},mode=0700,uid={g.pw_uid},gid={g.pw_gid},nosuid,nodev"
    options += f",nr_inodes={inodes}" if inodes else ""
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "pullsnap-test", site.repo],
                   check=True)  # fmt: skip
    try:
        yield site.repo
    finally:
        subprocess.run(["umount", "-l", site.repo], check=False)


@contextlib.contextmanager
def ext4_repository(site: Site, size_mib: int) -> Iterator[str]:
    """A small ext4 loop filesystem as the site's repository, removed after."""
    image = os.path.join(site.root, "repo.img")
    with open(image, "wb") as f:
        f.truncate(size_mib * MIB)
    subprocess.run(["mkfs.ext4", "-q", "-F", image], check=True)
    subprocess.run(["mount", "-o", "loop,nosuid,nodev", image, site.repo], check=True)
    try:
        g = site.lab.grabber_pw()
        os.rmdir(os.path.join(site.repo, "lost+found"))
        os.chown(site.repo, g.pw_uid, g.pw_gid)
        os.chmod(site.repo, 0o700)
        yield site.repo
    finally:
        subprocess.run(["umount", site.repo], check=False)
        os.unlink(image)


# --- more backed-up hosts ---------------------------------------------------------------


def new_login_key(lab: Lab, directory: str) -> str:
    """A login key the initiator user can read (one per backed-up host)."""
    os.makedirs(directory, mode=0o700)
    pw = lab.initiator_pw()
    os.chown(directory, pw.pw_uid, pw.pw_gid)
    key = os.path.join(directory, "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "t", "-f", key],
                   check=True)  # fmt: skip
    for path in (key, key + ".pub"):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return key


def public_key(key: str) -> str:
    with open(key + ".pub", encoding="ascii") as f:
        return " ".join(f.read().split()[:2])
