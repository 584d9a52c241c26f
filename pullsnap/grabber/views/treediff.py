"""`grabber diff HOST A [B]`: what changed between two snapshots.

Both trees are walked side by side, one directory at a time.  A name whose
inode is the same in both is unchanged: rsync hardlinks a file into the new
snapshot (--link-dest) only when its data and attributes all match
(rsync(1) --link-dest), and readdir(3) gives the inode (d_ino) without a
stat.  Only where inodes differ are the attributes compared: type, size,
mtime to the nanosecond, mode, owner, device, symlink target, ACLs and
other xattrs.  In a --fake-super snapshot the real mode, owner and device
are in the `user.rsync.%stat` xattr (rsync's xattrs.c writes
"%o %u,%u %u:%u": mode, major,minor, uid:gid) and are read from there.

Two btrfs snapshots keep equal inode numbers for changed files too (each
is a subvolume with a device of its own): between them every name is
compared by its attributes.  Different inodes with the same attributes
count as unchanged (a run that reused an interrupted tree copies rather
than links); `--content` compares their bytes as well.  Directory mtimes
are not reported: the entries added or removed below them are.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pullsnap import errors
from pullsnap.grabber import hints
from pullsnap.grabber.store.repository import LATEST, HostRepo, parse_name

FAKE_STAT = "user.rsync.%stat"
_ACL_XATTRS = ("system.posix_acl_access", "system.posix_acl_default",
               "user.rsync.%aacl", "user.rsync.%dacl")  # fmt: skip
_KINDS = ((stat.S_ISDIR, "dir"), (stat.S_ISREG, "file"), (stat.S_ISLNK, "link"),
          (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "chr"), (stat.S_ISBLK, "blk"),
          (stat.S_ISSOCK, "sock"))  # fmt: skip


@dataclass(frozen=True)
class Meta:
    """What a snapshot says about one entry of the backed-up host."""

    kind: str
    mode: int  # permission bits with setuid/setgid/sticky
    uid: int
    gid: int
    size: int
    mtime_ns: int
    rdev: int = 0
    link: bytes = b""
    acls: tuple[tuple[str, bytes], ...] = ()
    xattrs: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Change:
    sign: str  # "+" added, "-" removed, "M" changed
    path: bytes  # as on the backed-up host: "/etc/hosts"
    reasons: tuple[str, ...] = ()


def kind_of(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "other")


def parse_fake_stat(value: bytes) -> tuple[int, int, int, int] | None:
    """(mode with type bits, rdev, uid, gid) from a user.rsync.%stat value."""
    try:
        mode_text, dev_text, owner_text = value.decode("ascii").split()
        major, minor = (int(x) for x in dev_text.split(","))
        uid, gid = (int(x) for x in owner_text.split(":"))
        return int(mode_text, 8), os.makedev(major, minor), uid, gid
    except (UnicodeDecodeError, ValueError):
        return None


def meta_of(path: bytes, st: os.stat_result) -> Meta:
    """The entry's attributes, the fake-super ones laid over the stored ones."""
    mode, rdev, uid, gid = st.st_mode, st.st_rdev, st.st_uid, st.st_gid
    acls, xattrs = [], []
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        names = []
    for name in names:
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        if name == FAKE_STAT:
            real = parse_fake_stat(value)
            if real is not None:
                mode, rdev, uid, gid = real
        elif name in _ACL_XATTRS:
            acls.append((name, value))
        elif not name.startswith("security.selinux"):
            xattrs.append((name, value))
    kind = kind_of(mode)
    return Meta(
        kind=kind,
        mode=stat.S_IMODE(mode),
        uid=uid,
        gid=gid,
        size=st.st_size if kind == "file" else 0,  # a link's size is its target's length
        mtime_ns=st.st_mtime_ns if kind not in ("dir", "link") else 0,
        rdev=rdev if kind in ("chr", "blk") else 0,
        link=_link_target(path, st) if kind == "link" else b"",
        acls=tuple(acls),
        xattrs=tuple(xattrs),
    )


def _link_target(path: bytes, st: os.stat_result) -> bytes:
    """A symlink's target; rsync --fake-super stores a symlink as a regular
    file holding its target (and its mode in user.rsync.%stat)."""
    if stat.S_ISLNK(st.st_mode):
        return os.readlink(path)
    if not stat.S_ISREG(st.st_mode):
        return b""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    with open(os.open(path, flags), "rb") as f:
        return f.read(4096)  # PATH_MAX


def differences(a: Meta, b: Meta) -> tuple[str, ...]:
    """Which attributes differ, in a fixed order (pure)."""
    if a.kind != b.kind:
        return ("type",)
    checks = (("size", a.size != b.size), ("mtime", a.mtime_ns != b.mtime_ns),
              ("mode", a.mode != b.mode), ("owner", (a.uid, a.gid) != (b.uid, b.gid)),
              ("device", a.rdev != b.rdev), ("target", a.link != b.link),
              ("acl", a.acls != b.acls), ("xattrs", a.xattrs != b.xattrs))  # fmt: skip
    return tuple(name for name, differs in checks if differs)


def _same_bytes(a: bytes, b: bytes) -> bool:
    """Compare two regular files' bytes; never blocks on a FIFO put in their place."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    with open(os.open(a, flags), "rb") as fa, open(os.open(b, flags), "rb") as fb:
        if not (stat.S_ISREG(os.fstat(fa.fileno()).st_mode)
                and stat.S_ISREG(os.fstat(fb.fileno()).st_mode)):  # fmt: skip
            return False
        while True:
            ca, cb = fa.read(1 << 20), fb.read(1 << 20)
            if ca != cb:
                return False
            if not ca:
                return True


def _listing(path: bytes) -> dict[bytes, os.DirEntry]:
    with os.scandir(path) as entries:
        return {e.name: e for e in entries}


# Work items of the walk: a change to report, a directory present in both
# trees, or a directory present in only one (everything below it added or
# removed).  An explicit stack, not recursion: a backed-up host decides how
# deep its trees go.
_Item = tuple[str, bytes, Change | None]


def _below(root: bytes, rel: bytes, sign: str) -> list[_Item]:
    items: list[_Item] = []
    for name, entry in sorted(_listing(root + rel).items()):
        path = rel + b"/" + name
        items.append(("change", path, Change(sign, path)))
        if entry.is_dir(follow_symlinks=False):
            items.append((sign, path, None))
    return items


def _compare(ra: bytes, rb: bytes, rel: bytes, content: bool, same_device: bool) -> list[_Item]:
    left, right = _listing(ra + rel), _listing(rb + rel)
    items: list[_Item] = []
    for name in sorted(left.keys() | right.keys()):
        path = rel + b"/" + name
        ea, eb = left.get(name), right.get(name)
        a_dir = ea is not None and ea.is_dir(follow_symlinks=False)
        b_dir = eb is not None and eb.is_dir(follow_symlinks=False)
        if ea is None or eb is None:
            sign = "-" if eb is None else "+"
            items.append(("change", path, Change(sign, path)))
            if a_dir or b_dir:
                items.append((sign, path, None))
            continue
        if same_device and ea.inode() == eb.inode() and not (a_dir and b_dir):
            continue  # one hardlinked file: nothing changed
        ma = meta_of(ea.path, ea.stat(follow_symlinks=False))
        mb = meta_of(eb.path, eb.stat(follow_symlinks=False))
        reasons = differences(ma, mb)
        if a_dir and b_dir:
            reasons = tuple(r for r in reasons if r != "mtime")
        elif not reasons and content and ma.kind == "file" and not _same_bytes(ea.path, eb.path):
            # (ma.kind may come from a fake-super xattr; _same_bytes checks the real type)
            reasons = ("content",)
        if reasons:
            items.append(("change", path, Change("M", path, reasons)))
        if a_dir and b_dir:
            items.append(("both", path, None))
        else:  # a type change: what was below the old directory went, below the new came
            if a_dir:
                items.append(("-", path, None))
            if b_dir:
                items.append(("+", path, None))
    return items


def diff_trees(a: str, b: str, content: bool = False) -> Iterator[Change]:
    """Changes from tree `a` to tree `b`, depth first, names sorted."""
    ra, rb = os.fsencode(a), os.fsencode(b)
    # Two btrfs snapshots are subvolumes with devices of their own, and keep
    # the inode numbers of the one they were made from, changed or not: an
    # equal inode says "unchanged" only within one filesystem tree.
    same_device = os.lstat(a).st_dev == os.lstat(b).st_dev
    stack: list[_Item] = [("both", b"", None)]
    while stack:
        kind, rel, change = stack.pop()
        if change is not None:
            yield change
            continue
        if kind == "both":
            items = _compare(ra, rb, rel, content, same_device)
        else:
            items = _below(ra if kind == "-" else rb, rel, kind)
        stack.extend(reversed(items))


def show(path: bytes) -> str:
    """A path as one printable line: odd bytes and control characters escaped."""
    out = []
    for ch in path.decode("utf-8", "surrogateescape"):
        if "\udc80" <= ch <= "\udcff":
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif not ch.isprintable():
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def snapshot_tree(host: HostRepo, name: str, config: str = "") -> str:
    """The tree of a published snapshot (`latest` allowed), or a UsageError."""
    if name == LATEST:
        newest = host.newest_good()
        if newest is None:
            raise errors.UsageError(f"{host.host} has no good snapshot yet")
        name = newest.name
    known = {a.name for a in host.attempts() if a.has_tree}
    if parse_name(name) is None or name not in known:
        raise errors.NoSuchSnapshot(host.host, name, hints.grabber(config, "list", host.host))
    return host.tree(name)


def change_line(change: Change) -> str:
    """One line of `grabber diff`: sign, path, what changed."""
    what = f"  {', '.join(change.reasons)}" if change.reasons else ""
    return f"{change.sign} {show(change.path)}{what}"


def change_json(change: Change) -> dict[str, Any]:
    """One object of `grabber diff --json`."""
    return {"change": change.sign, "path": show(change.path), "what": change.reasons}


def unreadable(e: OSError, a: str, b: str) -> errors.Unreadable:
    """What a walk that met an unreadable path says.  Not readable as this
    user (--super snapshots keep their owners' modes), or longer than
    PATH_MAX below the repository: rsync stores such paths, working
    relative to its target."""
    where = show(os.fsencode(e.filename)) if e.filename else f"{a} or {b}"
    return errors.Unreadable(where, e.strerror or e)
