"""Records kept sorted on disk, so that a run's memory does not grow with
its host's number of files.

A run meets per-file data in one order and needs it in another: rsync
names the files it stored as it goes, the hasher reports them as it hashes
them, and an older base manifest lists its files in the order of an older
walk; the manifest step reads them all beside the walk of the new tree,
which goes in byte order of the path (tree.walk_files).  A `Spool` takes
(key, value) records in any order and gives them back once, sorted by key:

    add(key, value)      kept in memory up to `limit` bytes, then that
                         chunk is sorted and written out as one run; FAN
                         runs of a size are merged into one (a few dozen
                         files at most for tens of millions of records)
    items()              the runs and the last chunk merged (heapq.merge)

Records that arrive in order (the usual case for rsync's names) skip the
sorting and go to one run, appended to.

A run is a file without a name (O_TMPFILE) in a directory the caller names
(the host's directory in the repository: on disk, not in memory, and gone
with the process however it ends), records as `key NUL value NUL`: neither
a path nor the values stored here hold a NUL byte.  A run that cannot be
written (a full disk) keeps its error in `error` and later records are
dropped; `items()` raises it, so the step that needed them fails as a
full disk does.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import os
import tempfile
from collections.abc import Iterable, Iterator

LIMIT = 2 << 20  # bytes of records (with Python's overhead, estimated) held before a run
OVERHEAD = 120  # bytes a record costs in memory beside its key and value: tuple, objects
FAN = 16  # runs of one level merged into one of the next (so few files stay open)
READ_SIZE = 1 << 16
WRITE_SIZE = 1 << 20


def scratch_file(directory: str | None) -> int:
    """A read-write descriptor of a file no one else can open: O_TMPFILE in
    `directory` (the system's temporary directory when None), or a file
    made there and unlinked at once where O_TMPFILE is not supported."""
    directory = directory or tempfile.gettempdir()
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
    fd, path = tempfile.mkstemp(prefix=".pullsnap-spool-", dir=directory)
    os.unlink(path)
    return fd


class Spool:
    """(key, value) records in, sorted by key out; see the module docstring."""

    def __init__(self, directory: str | None = None, limit: int = LIMIT) -> None:
        self.directory = directory
        self.limit = limit
        self.count = 0
        self.error: OSError | None = None
        self._chunk: list[tuple[bytes, bytes]] = []
        self._size = 0
        self._runs: list[tuple[int, int, int]] = []  # (fd, length, level)
        self._in_order = True  # every record so far came after the one before
        self._last = b""

    def add(self, key: bytes, value: bytes = b"") -> None:
        if self.error is not None:
            return
        if key < self._last:
            self._in_order = False
        self._last = key
        self._chunk.append((key, value))
        self.count += 1
        self._size += len(key) + len(value) + OVERHEAD
        if self._size >= self.limit:
            self._spill()

    def _spill(self) -> None:
        if not self._in_order:
            self._chunk.sort()
        try:
            if self._in_order and self._runs:  # all in order so far: one run, appended to
                fd, length, level = self._runs[-1]
                self._runs[-1] = (fd, length + _write_records(fd, self._chunk), level)
            else:
                self._runs.append(self._new_run(iter(self._chunk), 0))
                self._compact()
        except OSError as e:
            self.error = e
            self.close()
        self._chunk = []
        self._size = 0

    def _new_run(self, records: Iterator[tuple[bytes, bytes]], level: int) -> tuple[int, int, int]:
        fd = scratch_file(self.directory)
        try:
            return fd, _write_records(fd, records), level
        except BaseException:
            os.close(fd)
            raise

    def _compact(self) -> None:
        """FAN runs of one level become one run of the next."""
        while True:
            level = self._runs[-1][2]
            same = [run for run in self._runs if run[2] == level]
            if len(same) < FAN:
                return
            merged = heapq.merge(*(_read_run(fd, length) for fd, length, _ in same))
            run = self._new_run(merged, level + 1)
            for fd, _, _ in same:
                os.close(fd)
            self._runs = [r for r in self._runs if r[2] != level] + [run]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every record, sorted by key (equal keys: by value).  Read again,
        it gives them again; nothing may be added while it is read."""
        if self.error is not None:
            raise self.error
        if not self._in_order:
            self._chunk.sort()
        chunk = self._chunk
        if not self._runs:
            return iter(chunk)
        runs = [_read_run(fd, length) for fd, length, _ in self._runs]
        if self._in_order:  # the runs follow each other: no merge needed
            return _chained([*runs, iter(chunk)])
        return heapq.merge(*runs, iter(chunk))

    def __iter__(self) -> Iterator[bytes]:
        """The keys, sorted."""
        return (key for key, _ in self.items())

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        for fd, _, _ in self._runs:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._runs.clear()
        self._chunk = []


def _chained(parts: list[Iterator[tuple[bytes, bytes]]]) -> Iterator[tuple[bytes, bytes]]:
    for part in parts:
        yield from part


def _write_records(fd: int, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Append `records` to the file at `fd`; the bytes written."""
    data = bytearray()
    length = 0
    for key, value in records:
        data += key
        data += b"\0"
        data += value
        data += b"\0"
        if len(data) >= WRITE_SIZE:
            length += _write_all(fd, data)
            data.clear()
    return length + _write_all(fd, data)


def _write_all(fd: int, data: bytes | bytearray) -> int:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


def _read_run(fd: int, length: int) -> Iterator[tuple[bytes, bytes]]:
    """One run's records, read with pread(2) (several runs share no offset)."""
    offset = 0
    rest = b""
    while offset < length:
        block = os.pread(fd, min(READ_SIZE, length - offset), offset)
        if not block:
            break
        offset += len(block)
        fields = (rest + block).split(b"\0")
        rest = fields.pop()
        if len(fields) % 2:
            rest = fields.pop() + b"\0" + rest
        for i in range(0, len(fields), 2):
            yield fields[i], fields[i + 1]
