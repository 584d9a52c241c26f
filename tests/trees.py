"""Source trees with every kind of metadata, and exact tree comparison.

`make_rich_tree` needs root (other owners, setuid root, device nodes, file
capabilities).  `describe` reads a tree into comparable data: type, mode,
owner, size, mtime, content hash, symlink target, device number, xattrs
(ACLs included: they are the system.posix_acl_* xattrs) and hardlink groups.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass

OTHER_UID = 4242
OTHER_GID = 4343
# Names sshd/rsync must carry exactly: spaces, a newline, bytes that are not UTF-8.
ODD_NAMES = [b"with space", b"new\nline", b"caf\xe9-latin1", b"-leading-dash", b"semi;colon$x"]


def _w(path: bytes | str, data: bytes, mode: int = 0o644) -> None:
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def deep_tree(top: str | os.PathLike, depth: int, data: bytes = b"at the bottom\n") -> str:
    """`depth` nested directories "d" below `top` (made if missing) and a file
    "f" at the bottom, made relative to each other (a path that long could
    not be opened whole); the file's path below `top`."""
    os.makedirs(top, exist_ok=True)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
            f.write(data)
    finally:
        os.close(fd)
    return "d/" * depth + "f"


def make_rich_tree(root: str) -> None:
    """A tree exercising what `-aHAX --numeric-ids` must preserve."""
    os.makedirs(root)
    j = lambda *p: os.path.join(root, *p)  # noqa: E731
    os.makedirs(j("etc", "conf.d"))
    _w(j("etc", "hosts"), b"127.0.0.1 localhost\n")
    _w(j("etc", "conf.d", "a.conf"), b"a = 1\n" * 100)
    _w(j("etc", "shadow"), b"root:$6$secret:19000::::::\n", 0o600)  # root-only
    os.makedirs(j("private"), mode=0o700)
    os.chmod(j("private"), 0o700)
    _w(j("private", "key"), os.urandom(64), 0o400)
    os.makedirs(j("home", "alice"))
    _w(j("home", "alice", "notes.txt"), b"alice's notes\n", 0o640)
    for path in (j("home", "alice"), j("home", "alice", "notes.txt")):
        os.lchown(path, OTHER_UID, OTHER_GID)
    _w(j("big.bin"), os.urandom(3 * 1024 * 1024))
    # setuid/setgid, sticky
    shutil.copy("/bin/true", j("suid-true"))
    os.chmod(j("suid-true"), 0o4755)
    os.makedirs(j("shared"))
    os.chmod(j("shared"), 0o2775)
    os.makedirs(j("tmpdir"))
    os.chmod(j("tmpdir"), 0o1777)
    # ACLs and user xattrs
    _w(j("acl.txt"), b"acl\n", 0o640)
    subprocess.run(["setfacl", "-m", f"u:{OTHER_UID}:rw,g:{OTHER_GID}:r", j("acl.txt")], check=True)
    subprocess.run(["setfacl", "-d", "-m", f"u:{OTHER_UID}:rwx", j("shared")], check=True)
    _w(j("xattr.txt"), b"x\n")
    os.setxattr(j("xattr.txt"), "user.pullsnap.test", b"value \x00\xff")
    # file capability
    shutil.copy("/bin/true", j("cap-true"))
    subprocess.run(["setcap", "cap_net_raw+ep", j("cap-true")], check=True)
    # hardlinks, symlinks, special files
    _w(j("linked-a"), b"same inode\n")
    os.link(j("linked-a"), j("linked-b"))
    os.link(j("linked-a"), j("etc", "linked-c"))
    os.symlink("etc/hosts", j("rel-link"))
    os.symlink("/etc/shadow", j("abs-link-out"))  # must stay a symlink, not be followed
    os.symlink("does/not/exist", j("dangling"))
    os.mkfifo(j("fifo"))
    os.mknod(j("null-dev"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.lchown(j("null-dev"), OTHER_UID, 0)
    os.makedirs(j("odd"))
    for name in ODD_NAMES:
        _w(os.path.join(root.encode(), b"odd", name), name + b"\n")
    _w(j("empty"), b"")
    # distinct mtimes, including a directory's (set last)
    os.utime(j("etc", "hosts"), ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    os.utime(j("etc"), (1_500_000_000, 1_500_000_000))


@dataclass(frozen=True)
class Entry:
    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    digest: str
    link: bytes
    rdev: int
    xattrs: tuple[tuple[str, bytes], ...]


def _xattrs(path: bytes) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    found = []
    for name in sorted(names):
        if name.startswith(("security.selinux", "user.rsync.")):
            continue
        try:
            found.append((name, os.getxattr(path, name, follow_symlinks=False)))
        except OSError:
            continue
    return tuple(found)


def describe(root: str, times: bool = True) -> tuple[dict[bytes, Entry], list[list[bytes]]]:
    """(relative path -> Entry, hardlink groups of regular files)."""
    base = os.fsencode(root)
    entries: dict[bytes, Entry] = {}
    inodes: dict[tuple[int, int], list[bytes]] = {}
    for dirpath, dirs, files in os.walk(base):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, base)
            st = os.lstat(path)
            kind = (
                "dir" if stat.S_ISDIR(st.st_mode) else
                "file" if stat.S_ISREG(st.st_mode) else
                "link" if stat.S_ISLNK(st.st_mode) else
                "fifo" if stat.S_ISFIFO(st.st_mode) else
                "chr" if stat.S_ISCHR(st.st_mode) else
                "blk" if stat.S_ISBLK(st.st_mode) else "other"
            )  # fmt: skip
            digest = ""
            if kind == "file":
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            entries[rel] = Entry(
                kind=kind,
                mode=stat.S_IMODE(st.st_mode) if kind != "link" else 0,
                uid=st.st_uid,
                gid=st.st_gid,
                size=st.st_size if kind != "dir" else 0,
                mtime_ns=st.st_mtime_ns if times and kind != "link" else 0,
                digest=digest,
                link=os.readlink(path) if kind == "link" else b"",
                rdev=st.st_rdev if kind in ("chr", "blk") else 0,
                xattrs=_xattrs(path) if kind != "link" else (),
            )
    groups = sorted(sorted(g) for g in inodes.values() if len(g) > 1)
    return entries, groups


def differences(a: str, b: str, times: bool = True) -> list[str]:
    """Human-readable differences between two trees; empty when equal."""
    ea, ga = describe(a, times)
    eb, gb = describe(b, times)
    problems = []
    for rel in sorted(set(ea) | set(eb)):
        if rel not in eb:
            problems.append(f"missing: {rel!r}")
        elif rel not in ea:
            problems.append(f"extra: {rel!r}")
        elif ea[rel] != eb[rel]:
            fields = [
                f for f in Entry.__dataclass_fields__ if getattr(ea[rel], f) != getattr(eb[rel], f)
            ]
            detail = ", ".join(
                f"{f}: {getattr(ea[rel], f)!r} != {getattr(eb[rel], f)!r}" for f in fields
            )
            problems.append(f"differs: {rel!r}: {detail}")
    if ga != gb:
        problems.append(f"hardlink groups differ: {ga!r} != {gb!r}")
    return problems
