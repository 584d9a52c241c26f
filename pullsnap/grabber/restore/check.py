"""Is what a restore wrote what the snapshot holds?

Locally, each restored entry is compared with the snapshot's own account of
it, read independently of rsync: type, size, mtime, mode, owner, device
and link target (for a `--fake-super` snapshot, from its
`user.rsync.%stat` xattr, treediff.meta_of), and each regular file's bytes
are hashed and compared with the snapshot's manifest (BLAKE2b-256,
integrity/manifest.py), or with the snapshot's file where the manifest has
no entry.  The snapshot's tree is walked without following its symlinks.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from pullsnap.grabber.integrity import tree
from pullsnap.grabber.integrity.manifest import Entry
from pullsnap.grabber.views.treediff import Meta, meta_of, show

# What a restore must carry over (treediff.differences without ACLs and
# xattrs: a fake-super snapshot keeps those as user.rsync.* names).
COMPARED = ("kind", "size", "mtime_ns", "mode", "uid", "gid", "rdev", "link")
SHOWN = 5


@dataclass
class Checked:
    entries: int = 0  # entries whose attributes matched
    files: int = 0  # regular files whose bytes matched
    by_manifest: int = 0  # of them: against the manifest's digest
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.problems:
            more = len(self.problems) - SHOWN
            tail = f" (and {more} more)" if more > 0 else ""
            return f"{len(self.problems)} problem(s): " + "; ".join(self.problems[:SHOWN]) + tail
        return (f"verified {self.entries:,} entries (owners, modes, times) and {self.files:,} "
                f"files' contents, {self.by_manifest:,} against the manifest")  # fmt: skip


def differing(a: Meta, b: Meta) -> list[str]:
    return [name for name in COMPARED if getattr(a, name) != getattr(b, name)]


def _digest(path: bytes) -> str:
    parent, name = os.path.split(path)
    fd = os.open(parent or b".", tree.DIRECTORY)
    try:
        return tree.hash_file(fd, name)[0]
    finally:
        os.close(fd)


def _pairs(source: bytes, target: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """(relative path, in the snapshot, restored) for the source and everything below it."""
    found = [(b"", source, target)]
    if stat.S_ISDIR(os.lstat(source).st_mode):
        for dirpath, dirnames, filenames in os.walk(source):
            rel_dir = os.path.relpath(dirpath, source)
            rel_dir = b"" if rel_dir == b"." else rel_dir + b"/"
            for name in sorted(dirnames + filenames):
                rel = rel_dir + name
                found.append((rel, os.path.join(source, rel), os.path.join(target, rel)))
    return found


def check_local(
    source: str, target: str, in_snapshot: bytes, manifest: dict[bytes, Entry] | None
) -> Checked:
    """Compare the restored `target` with the snapshot's `source`.

    `in_snapshot`: the source's path relative to the snapshot's root (the
    manifest's keys), e.g. b"home/alice"."""
    done = Checked()
    src, dst = os.fsencode(source.rstrip("/") or "/"), os.fsencode(target.rstrip("/") or "/")
    for rel, theirs, ours in _pairs(src, dst):
        try:
            want = meta_of(theirs, os.lstat(theirs))
            got = meta_of(ours, os.lstat(ours))
        except FileNotFoundError:
            done.problems.append(f"{show(ours)} is missing")
            continue
        wrong = differing(want, got)
        if wrong:
            done.problems.append(f"{show(ours)}: {', '.join(wrong)} differ")
            continue
        done.entries += 1
        if want.kind != "file":
            continue
        key = in_snapshot + (b"/" + rel if rel else b"")
        entry = manifest.get(key) if manifest else None
        expected = entry.digest if entry is not None else _digest(theirs)
        if _digest(ours) != expected:
            done.problems.append(f"{show(ours)}: contents differ from the "
                                 + ("manifest" if entry is not None else "snapshot"))  # fmt: skip
            continue
        done.files += 1
        done.by_manifest += entry is not None
    return done


def check_sources(source: str, in_snapshot: bytes, manifest: dict[bytes, Entry] | None) -> Checked:
    """The snapshot's files against its manifest: before a copy to another
    host, whose files this host cannot read back."""
    done = Checked()
    src = os.fsencode(source.rstrip("/") or "/")
    for rel, theirs, _ in _pairs(src, src):
        done.entries += 1
        if not stat.S_ISREG(os.lstat(theirs).st_mode):
            continue
        key = in_snapshot + (b"/" + rel if rel else b"")
        entry = manifest.get(key) if manifest else None
        if entry is None:
            continue
        if _digest(theirs) != entry.digest:
            done.problems.append(f"{show(theirs)}: contents differ from the manifest")
            continue
        done.files += 1
        done.by_manifest += 1
    return done
