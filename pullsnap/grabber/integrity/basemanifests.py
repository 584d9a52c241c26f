"""The link-dest snapshots' manifests, read as streams in path order.

A run reads its base's manifest beside the walk of its new tree
(manifest.entries), never whole: a manifest whose header says it is in
path order (`"order": "path-bytes"`, what manifest.make writes) is read
from its file a block at a time; an older one is sorted into a spool
(spool.py) while rsync runs.  `BaseReader` opens them in a thread while
rsync runs and parses the first PREFETCH entries ahead.
"""

from __future__ import annotations

import collections
import contextlib
import os
import threading
from collections.abc import Iterator

from pullsnap.grabber.integrity.manifest import ORDER, Entry, parse_header, parse_line, parse_lines
from pullsnap.grabber.integrity.spool import Spool
from pullsnap.grabber.store.atomicfile import open_regular
from pullsnap.grabber.store.repository import HostRepo

READ_SIZE = 1 << 20  # bytes of a base manifest parsed at once (one JSON parse: json_rows)
PREFETCH = 16_384  # entries of a base parsed while rsync runs: about 8 MiB at most


def base_paths(host: HostRepo, link_dests: list[str]) -> list[str]:
    """The manifests of the link-dest snapshots, in their order."""
    return [host.manifest_path(os.path.basename(tree)) for tree in link_dests]


class BaseManifest:
    """One link-dest snapshot's manifest, to be read once as a stream of
    entries in path order: straight from its file when its header says it
    is in that order, else from a spool sorted while rsync ran.

    `prefetch` parses the first entries ahead, while rsync runs (a nightly
    run's base of 50,000 lines costs 0.13 s of parsing, otherwise spent after
    rsync); no more than PREFETCH, so a large host's manifest still streams."""

    def __init__(self, fd: int, sorted_spool: Spool | None = None) -> None:
        self._fd = fd
        self._spool = sorted_spool
        self._lines = _Lines(fd) if sorted_spool is None else None
        self._ahead: collections.deque[list[Entry]] = collections.deque()

    def prefetch(self, limit: int) -> None:
        if self._lines is None:
            return
        count = sum(map(len, self._ahead))
        while count < limit and (batch := self._lines.batch()):
            self._ahead.append(batch)
            count += len(batch)

    def entries(self) -> Iterator[Entry]:
        if self._spool is not None:
            return _from_spool(self._spool)
        return self._streamed()

    def _streamed(self) -> Iterator[Entry]:
        assert self._lines is not None
        while self._ahead:
            yield from self._ahead.popleft()
        while batch := self._lines.batch():
            yield from batch

    def __iter__(self) -> Iterator[bytes]:
        """The paths, in order."""
        return (entry.path for entry in self.entries())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._spool is not None:
            self._spool.close()
        self._ahead.clear()


class _Lines:
    """A manifest file's entries a block at a time, in the file's order
    (the header and malformed lines left out)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._offset = 0
        self._rest = b""
        self._header = True
        self._done = False

    def batch(self) -> list[Entry]:
        """The next entries; [] at the end."""
        while not self._done:
            block = os.pread(self._fd, READ_SIZE, self._offset)
            self._offset += len(block)
            lines = (self._rest + block).split(b"\n")
            # Cut at a newline, never inside a character: decoded line by line.
            self._rest = lines.pop() if block else b""
            self._done = not block
            if self._header and lines:
                lines.pop(0)
                self._header = False
            text = [line.decode("utf-8", "surrogateescape") for line in lines if line.strip()]
            if text:
                return list(parse_lines(text))
        return []


def open_base(path: str, scratch: str | None = None) -> BaseManifest | None:
    """The manifest at `path` as a BaseManifest, or None when there is no
    readable one.  One not in path order is sorted now, into a spool in
    `scratch` (a manifest written before the order was kept)."""
    try:  # a regular file, never a link or FIFO (atomicfile.open_regular)
        fd = open_regular(path)
    except OSError:
        return None
    try:
        header = parse_header(_first_line(fd))
        if header is None:
            os.close(fd)
            return None
        if header.get("order") == ORDER:
            return BaseManifest(fd)
        spool = Spool(scratch)
        lines = _Lines(fd)
        while batch := lines.batch():
            for entry in batch:
                if "\0" not in entry.raw:  # a NUL would end its record in the spool
                    spool.add(entry.path, entry.raw.encode("utf-8", "surrogateescape"))
        os.close(fd)
        if spool.error is not None:
            spool.close()
            return None  # no room to sort it: every file is hashed again
        return BaseManifest(-1, spool)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise


def _first_line(fd: int) -> str:
    head = b""
    while b"\n" not in head and len(head) < (1 << 16):
        block = os.pread(fd, 4096, len(head))
        if not block:
            break
        head += block
    return head.split(b"\n", 1)[0].decode("utf-8", "surrogateescape")


def _from_spool(spool: Spool) -> Iterator[Entry]:
    for path, raw in spool.items():
        entry = parse_line(raw.decode("utf-8", "surrogateescape"))
        if entry is not None and entry.path == path:
            yield entry


def open_all(paths: list[str], scratch: str | None = None, prefetch: int = 0) -> list[BaseManifest]:
    """The manifests among `paths` that can be read, in order; the first
    `prefetch` entries of each parsed ahead."""
    found = [base for base in (open_base(p, scratch) for p in paths) if base is not None]
    for base in found:
        base.prefetch(prefetch)
    return found


class BaseReader:
    """Opens the link-dest snapshots' manifests in a thread while rsync runs:
    one in path order is opened and its first PREFETCH entries parsed; an
    older one is sorted into a spool meanwhile.  Start it once rsync is
    running, so no fork(2) happens while the thread is alive, and `join` it
    before anything forks again."""

    def __init__(self, paths: list[str], scratch: str | None = None) -> None:
        self._paths = paths
        self._scratch = scratch
        self._found: list[BaseManifest] = []
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._read, name="manifest-bases", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self._found = open_all(self._paths, self._scratch, PREFETCH)

    def join(self) -> list[BaseManifest] | None:
        """The readable bases, in order; None if the thread never ran."""
        if self._thread is None:
            return None
        self._thread.join()
        return self._found
