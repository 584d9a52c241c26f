"""The receiver's own /etc: the few files rsync and ssh read, written per run.

The receiving rsync and its ssh run in a mount namespace (mountns.py) in
which this directory is bound over /etc, so nothing of the backup host's
own /etc is in their view, and no file they need can be swapped under them:

    <private dir>/etc/  passwd         root's line and the grabber user's
                        group          root's group and the grabber's group
                        nsswitch.conf  files only (no NSS module to load)
                        ld.so.cache    a copy, for libraries outside ld.so's
                                       default directories

ssh needs its own passwd entry ("No user exists for uid N" otherwise,
ssh.c main) and nothing else of /etc once `-F /dev/null` and
`GlobalKnownHostsFile=/dev/null` are given; rsync with --numeric-ids reads
none of it (traced with strace -f -e openat).

A Landlock rule on a single file follows its inode, and useradd, usermod
and ldconfig replace /etc/passwd and /etc/ld.so.cache by renaming a new file
into place: a rule on the real files taken before such a rename denies the
new file, and ssh stops with "No user exists".  These copies are the run's
own, so they never change under it.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
from collections.abc import Iterable

ETC = "etc"  # its name in the private directory
LD_SO_CACHE = "/etc/ld.so.cache"
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files\n"


def passwd_text(entries: Iterable[tuple[str, int, int, str]]) -> str:
    """passwd(5) lines for (name, uid, gid, home): no password, no login shell (pure)."""
    rows = dict.fromkeys(f"{name}:x:{uid}:{gid}::{home}:/usr/sbin/nologin\n"
                         for name, uid, gid, home in entries)  # fmt: skip
    return "".join(rows)


def group_text(entries: Iterable[tuple[str, int]]) -> str:
    """group(5) lines for (name, gid), without members (pure)."""
    return "".join(dict.fromkeys(f"{name}:x:{gid}:\n" for name, gid in entries))


def _user(uid: int) -> tuple[str, int, int, str]:
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return (f"uid{uid}", uid, os.getgid(), "/")
    return (entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def _group(gid: int) -> tuple[str, int]:
    try:
        return (grp.getgrgid(gid).gr_name, gid)
    except KeyError:
        return (f"gid{gid}", gid)


def write_etc(private_dir: str) -> str:
    """Make `<private_dir>/etc` for the calling user; returns its path."""
    etc = os.path.join(private_dir, ETC)
    os.makedirs(etc, 0o755, exist_ok=True)
    me = _user(os.getuid())
    files = {
        "passwd": passwd_text([_user(0), me]),
        "group": group_text([_group(0), _group(me[2]), _group(os.getgid())]),
        "nsswitch.conf": NSSWITCH,
    }
    for name, text in files.items():
        with open(os.path.join(etc, name), "w", encoding="utf-8") as f:
            f.write(text)
    if os.path.exists(LD_SO_CACHE):
        shutil.copyfile(LD_SO_CACHE, os.path.join(etc, "ld.so.cache"))
    return etc
