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

Nothing here holds a whole manifest, whatever the number of files: the
walk meets the files in byte order of their paths (tree.walk_files), the
manifest is written in that order as the walk goes (its header says so:
`"order": "path-bytes"`), and the next run reads its base's manifest as a
stream beside its own walk, each side advancing to the other's path (a
merge, not a lookup table).  What comes in another order (rsync's names,
the hasher's digests, a manifest from before the order was kept) goes
through a `spool.Spool`, sorted on disk; the bases are read by
basemanifests.py.  A record out of order is never wrong, only missed: its
file is hashed again.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TextIO, TypeVar

from pullsnap import errors
from pullsnap.grabber.integrity import tree
from pullsnap.grabber.integrity.spool import Spool
from pullsnap.grabber.integrity.tree import ALGORITHM
from pullsnap.grabber.store import atomicfile
from pullsnap.grabber.store.atomicfile import open_regular
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.store.space import is_no_space

FORMAT = 1
ORDER = "path-bytes"  # the header's "order": entries sorted by the bytes of their paths
TWINS = 100_000  # inodes with several links remembered for their digests, at most
Hashed = tuple[str, int, int]  # hex digest, size, inode: what the hasher found (prehash.py)


@dataclass(slots=True)  # not frozen: its __init__ is plain stores, 3x as fast (one a line)
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


def open_entries(path: str) -> TextIO | None:
    """The manifest at `path` opened as text, past its header; None: none readable."""
    try:  # a regular file, never a link or FIFO (atomicfile.open_regular)
        f = open(open_regular(path), encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
    except OSError:
        return None
    if parse_header(f.readline()) is None:
        f.close()
        return None
    return f


def read(path: str) -> dict[bytes, Entry] | None:
    """path -> entry, or None when there is no readable manifest."""
    f = open_entries(path)
    if f is None:
        return None
    with f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    return {entry.path: entry for entry in parse_lines(lines)}


def parse_header(line: str) -> dict[str, Any] | None:
    try:
        header = json.loads(line)
    except ValueError:
        return None
    ok = isinstance(header, dict) and header.get("format") == FORMAT
    return header if ok and header.get("algorithm") == ALGORITHM else None


def write(path: str, header: Mapping[str, Any], entries: Iterable[Entry]) -> None:
    """Atomically (atomicfile): readers see the old manifest or the new one.
    The header says "order" only if the caller's `header` does."""
    with atomicfile.replacing(path, 0o600) as raw:
        f = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape")
        f.write(json.dumps({"format": FORMAT, "algorithm": ALGORITHM, **header}) + "\n")
        for entry in entries:
            f.write(entry.line() + "\n")
        f.flush()
        f.detach()


V = TypeVar("V")


class _Cursor(Generic[V]):
    """A sorted stream of (path, value), read forward as the walk's paths
    grow.  A record out of order is passed over, never matched wrongly."""

    def __init__(self, items: Iterator[tuple[bytes, V]]) -> None:
        self._items = items
        self._head = next(items, None)

    def find(self, path: bytes) -> V | None:
        head = self._head
        while head is not None and head[0] < path:
            head = self._head = next(self._items, None)
        return head[1] if head is not None and head[0] == path else None


class EntrySource(Protocol):
    """A base manifest read as a stream, in path order (basemanifests.BaseManifest)."""

    def entries(self) -> Iterator[Entry]: ...


NewFiles = Iterable[bytes]  # a set (sorted here), or a Spool (sorted already)
Base = Mapping[bytes, Entry] | EntrySource
Prehashed = Mapping[bytes, Hashed] | Spool  # a Spool of encode_hashed values


def _listed(new_files: NewFiles) -> Iterator[tuple[bytes, bool]]:
    paths = new_files if isinstance(new_files, Spool) else sorted(new_files)
    return ((path, True) for path in paths)


def _base_items(base: Base) -> Iterator[tuple[bytes, Entry]]:
    if isinstance(base, Mapping):
        return iter(sorted(base.items()))
    return ((entry.path, entry) for entry in base.entries())


def _early_items(prehashed: Prehashed) -> Iterator[tuple[bytes, tuple[Hashed, int]]]:
    """(path, (digest, size, inode), link count); a link count not known: 2."""
    if isinstance(prehashed, Spool):
        items = ((path, (decode_hashed(value), _links(value))) for path, value in prehashed.items())
    else:
        items = ((path, (hashed, 2)) for path, hashed in sorted(prehashed.items()))
    return _once(items)


def _once(items: Iterator[tuple[bytes, V]]) -> Iterator[tuple[bytes, V]]:
    """The sorted items whose path is there once: a file rsync named twice
    (written again in its redo phase, after a failed check) may have been
    hashed between the two writes, in place under the same inode, so
    neither digest is taken and the manifest step hashes it."""
    held: tuple[bytes, V] | None = None
    twice = False
    for item in items:
        if held is not None and item[0] == held[0]:
            twice = True
            continue
        if held is not None and not twice:
            yield held
        held, twice = item, False
    if held is not None and not twice:
        yield held


def encode_hashed(hashed: Hashed, links: int = 2) -> bytes:
    """A digest as a spool keeps it: b"digest size inode links"."""
    digest, size, inode = hashed
    return b"%s %d %d %d" % (digest.encode("ascii"), size, inode, links)


def decode_hashed(value: bytes) -> Hashed:
    digest, size, inode, _ = value.split(b" ")
    return digest.decode("ascii"), int(size), int(inode)


def _links(value: bytes) -> int:
    return int(value.rsplit(b" ", 1)[1])


def build(
    path: str,
    name: str,
    new_files: NewFiles,
    bases: Sequence[Base],
    prehashed: Prehashed | None = None,
    meter: tree.Shown | None = None,
    written_after: int | None = None,
) -> tuple[list[Entry], BuildStats]:
    """`entries`, gathered in a list (for a small tree: tests, benchmarks)."""
    stats = BuildStats()
    found = list(entries(path, name, new_files, bases, prehashed, meter, stats, written_after))
    return found, stats


def entries(
    path: str,
    name: str,
    new_files: NewFiles,
    bases: Sequence[Base],
    prehashed: Prehashed | None,
    meter: tree.Shown | None,
    stats: BuildStats,
    written_after: int | None = None,
) -> Iterator[Entry]:
    """The manifest of the tree at `path`, entry by entry in path order:
    hash what is new, carry the rest from `bases`.  Counts into `stats`.

    `new_files`: what rsync's itemized output named.  `prehashed`: (digest,
    size, inode) by path, hashed while rsync ran (prehash.py); taken where
    the file still has that inode.  `meter` (the store's, measuring what
    the tree took) sees every directory and every entry not carried from a
    base.

    `written_after` (ns; the btrfs store, a run that ended with errors):
    the tree is a snapshot of the base, so every file keeps its inode, and
    rsync --inplace keeps it even for a file it rewrote.  rsync names what
    it wrote, but not a file it failed half-way through in place: then a
    file is carried only when, besides, its ctime is older than that (any
    write since the snapshot was made sets it)."""
    started = time.monotonic()
    listed = _Cursor(_listed(new_files))
    carry = [_Cursor(_base_items(base)) for base in bases]
    early = _Cursor(_early_items(prehashed if prehashed is not None else {}))
    # Files hard-linked to each other within this tree, by inode: only those
    # with more than one link, and no more than TWINS (a twin forgotten is
    # hashed again, never wrong).
    twins: dict[int, Entry] = {}
    root = tree.open_tree(path)
    try:
        for dir_fd, file_name, path, inode in tree.walk_files(root, shown=meter):
            stats.files += 1
            new = listed.find(path) is not None
            found = [cursor.find(path) for cursor in carry]  # every cursor moves on
            carried = None
            if not new:
                carried = next((b for b in found if b is not None and b.inode == inode), None)
            if carried is not None and written_after is not None:
                try:
                    st = os.stat(file_name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    st = None
                if st is None or st.st_ctime_ns >= written_after:
                    carried = None
            if carried is not None:
                stats.carried += 1
                yield carried
                continue
            if meter is not None:
                meter.entry(dir_fd, file_name, inode)
            twin = twins.get(inode)
            if twin is not None:
                yield Entry(path, twin.digest, twin.size, twin.inode, twin.origin)
                continue
            early_found = early.find(path)
            try:
                if early_found is not None and early_found[0][2] == inode:
                    (digest, size, real_inode), links = early_found
                    stats.prehashed += 1
                else:
                    digest, size, real_inode, links = tree.hash_file_links(dir_fd, file_name)
            except OSError as e:
                stats.problems.append(f"{os.fsdecode(path)}: {e.strerror or e}")
                continue
            if not new:
                stats.unlisted += 1
            entry = Entry(path, digest, size, real_inode, name)
            if links > 1 and len(twins) < TWINS:
                twins[real_inode] = entry
            stats.hashed += 1
            stats.hashed_bytes += size
            yield entry
    finally:
        os.close(root)
        stats.seconds += time.monotonic() - started


def make(
    host: HostRepo,
    name: str,
    new_files: NewFiles,
    bases: Sequence[Base],
    prehashed: Prehashed,
    mode: str,
    held: tuple[str, ...],
    meter: tree.Shown | None = None,
    written_after: int | None = None,
) -> BuildStats:
    """Write `<name>.manifest` beside a published snapshot as the walk goes;
    its numbers.  No room for it is NoSpace (the run's no-space outcome)."""
    stats = BuildStats()
    header = {"snapshot": name, "host": host.host, "order": ORDER}
    try:
        # The walk reads the tree with the receiver's capability; the
        # manifest goes to a file opened before it.
        with atomicfile.replacing(host.manifest_path(name), 0o600) as raw:
            f = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape")
            f.write(json.dumps({"format": FORMAT, "algorithm": ALGORITHM, **header}) + "\n")
            with tree.reading_as_receiver(mode, held):
                for entry in entries(host.tree(name), name, new_files, bases, prehashed, meter,
                                     stats, written_after):  # fmt: skip
                    f.write(entry.line() + "\n")
            f.flush()
            f.detach()
    except OSError as e:
        error = errors.NoSpace if is_no_space(e) else errors.RunFailed
        raise error(f"no manifest for {name}: {e.strerror or e}") from None
    return stats
