"""Per-snapshot content manifests: what `grabber verify` checks against.

A hardlinked tree has no checksums of its own, so bit rot or a stray write
on the backup host would go unnoticed until a restore.  Beside each snapshot:

    <host>/<name>.manifest     a header line, then one line per regular file:
    {"format": 1, "algorithm": "blake2b-256", "snapshot": NAME, ...}
    ["etc/hosts", "<64 hex digits>", <size>, <inode>, "<snapshot that hashed it>"]

Only files this run stored anew are read and hashed: those rsync's
itemized output names (rsyncout.ITEM_MARKER lines), and any file whose inode is
not the one the link-dest snapshot's manifest has at that path (rsync
copies instead of linking when a file's link count is at the filesystem's
maximum, EMLINK, and says nothing; a file linked from an interrupted tree
has no entry yet).  Every other file is a hard link of a file already
hashed, and keeps that entry, so a run that changed nothing reads no file
content at all: the walk reads directories only (getdents gives each name
its inode, os.scandir(2)-style, no stat).

Paths are JSON strings of the file-system bytes (os.fsdecode, surrogate
escapes for bytes that are not UTF-8), relative to the snapshot's root.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pullsnap import errors
from pullsnap.grabber.integrity import tree
from pullsnap.grabber.integrity.tree import ALGORITHM
from pullsnap.grabber.store import atomicfile
from pullsnap.grabber.store.atomicfile import open_regular
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.store.space import is_no_space

FORMAT = 1


@dataclass(frozen=True)
class Entry:
    path: bytes  # relative to the snapshot root
    digest: str
    size: int
    inode: int
    origin: str  # the snapshot whose run hashed it
    # The line it was read from: a carried entry is written back as it was
    # (most of a manifest, on a nightly run), not encoded again.
    raw: str = field(default="", compare=False, repr=False)

    def line(self) -> str:
        if self.raw:
            return self.raw
        # json.dumps(row, separators=(",", ":")) builds an encoder per call:
        # three times the time for a first backup's 50,000 new entries.
        quote = json.dumps
        path = quote(os.fsdecode(self.path))
        return f"[{path},{quote(self.digest)},{self.size:d},{self.inode:d},{quote(self.origin)}]"


@dataclass
class BuildStats:
    files: int = 0
    hashed: int = 0
    hashed_bytes: int = 0
    carried: int = 0
    prehashed: int = 0  # of `hashed`: read while rsync still ran (prehash.py)
    unlisted: int = 0  # new inodes rsync's itemized output did not name
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        return {
            "files": self.files, "hashed": self.hashed, "hashed_bytes": self.hashed_bytes,
            "carried": self.carried, "prehashed": self.prehashed, "unlisted_new": self.unlisted,
            "seconds": round(self.seconds, 3), "problems": self.problems[:20],
        }  # fmt: skip


# --- reading and writing ------------------------------------------------------------


def parse_line(line: str) -> Entry | None:
    """One entry line, or None for the header and anything malformed."""
    return _entry(_loads(line), line)


def _loads(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def json_rows(lines: list[str]) -> list[Any]:
    """Each line's JSON value, None for a malformed line.  One JSON parse of
    them all when they are all well-formed (a no-change run reads its base's
    whole manifest: 50,000 lines, a third of the time of a parse per line)."""
    try:
        rows = json.loads("[" + ",".join(lines) + "]")
    except ValueError:
        rows = None
    if isinstance(rows, list) and len(rows) == len(lines):
        return rows
    return [_loads(line) for line in lines]


def _entry(row: Any, line: str) -> Entry | None:
    # Called once per line of a base manifest (50,000 on a nightly run):
    # exact type checks (JSON gives no subclasses; a bool is not a size) and
    # os.fsencode's own work done inline (UTF-8, surrogate escapes: PEP 383).
    if type(row) is not list or len(row) != 5:
        return None
    path, digest, size, inode, origin = row
    if type(path) is not str or type(digest) is not str or type(origin) is not str:
        return None
    if type(size) is not int or type(inode) is not int:
        return None
    return Entry(path.encode("utf-8", "surrogateescape"), digest, size, inode, origin, line)


def parse_lines(lines: list[str]) -> Iterator[Entry]:
    """The entries among `lines`, malformed ones left out."""
    found = (_entry(row, line) for row, line in zip(json_rows(lines), lines, strict=True))
    return (entry for entry in found if entry is not None)


def read(path: str) -> dict[bytes, Entry] | None:
    """path -> entry, or None when there is no readable manifest."""
    try:  # a regular file, never a link or FIFO (atomicfile.open_regular)
        f = open(open_regular(path), encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    except OSError:
        return None
    with f:
        header = parse_header(f.readline())
        if header is None:
            return None
        lines = [line for line in f.read().split("\n") if line.strip()]
    return {entry.path: entry for entry in parse_lines(lines)}


def base_paths(host: HostRepo, link_dests: list[str]) -> list[str]:
    """The manifests of the link-dest snapshots, in their order."""
    return [host.manifest_path(os.path.basename(tree)) for tree in link_dests]


def read_all(paths: list[str]) -> list[dict[bytes, Entry]]:
    """The manifests among `paths` that can be read, in order."""
    return [base for base in map(read, paths) if base is not None]


class BaseReader:
    """Reads the link-dest snapshots' manifests in a thread while rsync runs
    (a nightly run's base manifest: 50,000 lines, 0.13 s otherwise spent
    after rsync).  Start it once rsync is running, so no fork(2) happens
    while the thread is alive, and `join` it before anything forks again."""

    def __init__(self, paths: list[str]) -> None:
        self._paths = paths
        self._found: list[dict[bytes, Entry]] = []
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._read, name="manifest-bases", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self._found = read_all(self._paths)

    def join(self) -> list[dict[bytes, Entry]] | None:
        """The readable bases, in order; None if the thread never ran."""
        if self._thread is None:
            return None
        self._thread.join()
        return self._found


def parse_header(line: str) -> dict[str, Any] | None:
    try:
        header = json.loads(line)
    except ValueError:
        return None
    ok = isinstance(header, dict) and header.get("format") == FORMAT
    return header if ok and header.get("algorithm") == ALGORITHM else None


def write(path: str, header: Mapping[str, Any], entries: list[Entry]) -> None:
    """Atomically (atomicfile): readers see the old manifest or the new one."""
    with atomicfile.replacing(path, 0o600) as raw:
        f = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape")
        f.write(json.dumps({"format": FORMAT, "algorithm": ALGORITHM, **header}) + "\n")
        for entry in entries:
            f.write(entry.line() + "\n")
        f.flush()
        f.detach()


def build(
    path: str,
    name: str,
    new_files: set[bytes],
    bases: list[Mapping[bytes, Entry]],
    prehashed: Mapping[bytes, tuple[str, int, int]] | None = None,
    meter: tree.Shown | None = None,
    written_after: int | None = None,
) -> tuple[list[Entry], BuildStats]:
    """The manifest of the tree at `path`: hash what is new, carry the rest from `bases`.

    `prehashed`: (digest, size, inode) by path, hashed while rsync ran
    (prehash.py); taken where the file still has that inode.  `meter` (the
    store's, measuring what the tree took) sees every directory and every
    entry not carried from a base.

    `written_after` (ns; the btrfs store): the tree is a snapshot of the
    base, so every file keeps its inode, and rsync --inplace keeps it even
    for a file it rewrote.  A file is carried only when, besides, its ctime
    is older than that: any write since the snapshot was made sets it.
    (rsync names what it wrote, but a file it failed half-way through, in
    place, it does not.)"""
    prehashed = prehashed or {}
    started = time.monotonic()
    stats = BuildStats()
    entries: list[Entry] = []
    seen: dict[int, Entry] = {}  # files hard-linked to each other within this tree
    root = tree.open_tree(path)
    try:
        for dir_fd, file_name, path, inode in tree.walk_files(root, shown=meter):
            stats.files += 1
            carried = None
            if path not in new_files:
                carried = next(
                    (b[path] for b in bases if path in b and b[path].inode == inode), None
                )
            if carried is not None and written_after is not None:
                try:
                    st = os.stat(file_name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    st = None
                if st is None or st.st_ctime_ns >= written_after:
                    carried = None
            if carried is not None:
                entries.append(carried)
                stats.carried += 1
                continue
            if meter is not None:
                meter.entry(dir_fd, file_name, inode)
            if inode in seen:
                twin = seen[inode]
                entries.append(Entry(path, twin.digest, twin.size, twin.inode, twin.origin))
                continue
            early = prehashed.get(path)
            try:
                if early is not None and early[2] == inode:
                    digest, size, real_inode = early
                    stats.prehashed += 1
                else:
                    digest, size, real_inode = tree.hash_file(dir_fd, file_name)
            except OSError as e:
                stats.problems.append(f"{os.fsdecode(path)}: {e.strerror or e}")
                continue
            if path not in new_files:
                stats.unlisted += 1
            entry = Entry(path, digest, size, real_inode, name)
            seen[real_inode] = entry
            entries.append(entry)
            stats.hashed += 1
            stats.hashed_bytes += size
    finally:
        os.close(root)
    stats.seconds = time.monotonic() - started
    return entries, stats


def make(
    host: HostRepo,
    name: str,
    new_files: set[bytes],
    bases: list[Mapping[bytes, Entry]],
    prehashed: Mapping[bytes, tuple[str, int, int]],
    mode: str,
    held: tuple[str, ...],
    meter: tree.Shown | None = None,
    written_after: int | None = None,
) -> BuildStats:
    """Write `<name>.manifest` beside a published snapshot; its numbers.
    No room for it is NoSpace (the run's no-space outcome)."""
    try:
        with tree.reading_as_receiver(mode, held):
            entries, stats = build(host.tree(name), name, new_files, bases, prehashed, meter,
                                   written_after)  # fmt: skip
        write(host.manifest_path(name), {"snapshot": name, "host": host.host}, entries)
    except OSError as e:
        error = errors.NoSpace if is_no_space(e) else errors.RunFailed
        raise error(f"no manifest for {name}: {e.strerror or e}") from None
    return stats
