"""Hash the files rsync stores while it is still storing others.

The manifest needs a digest of every file a run stored anew.  Read after
the transfer, that is a second pass over everything new (1.55 s of a 6.8 s
first backup of 1.1 GiB on two cores); read as rsync names each file, it
comes from the page cache and uses CPU time that rsync and the two ssh
processes leave idle.

    grabber ──fork──> hasher          (before rsync starts: no thread yet)
      names rsync itemizes ──pipe, NUL-separated──> hash each one
      <──results file, one JSON line per file, written as they are hashed──

The digests go to a file without a name in the repository (spool.scratch_file;
a memfd when no directory is given), not a pipe the grabber would have to
drain while it relays rsync's output: the hasher writes each batch as it
goes, and the grabber reads them once the hasher has exited, a batch of
lines at a time, into a spool sorted by path (a first backup of a million
files: a million digests, which must not sit in memory).

A process, not a thread: a hashing thread shared the interpreter with the
relay of rsync's output and slowed rsync down more than it saved.  The
hasher runs niced, dies with the grabber, holds nothing but the receiver's
CAP_DAC_OVERRIDE (effective: --super trees keep files only their owners may
read) and is confined by Landlock to reading the new snapshot.  rsync may
name a file before its temporary file is renamed into place: such a name
is tried again shortly after.  Whatever the hasher could not hash, or
whose inode is no longer the one it hashed, `manifest.build` hashes after
the run, so a missing or dead hasher costs time, never a wrong manifest.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import threading
import time

import prctl

from pullsnap import caps, landlock
from pullsnap.grabber.integrity import manifest
from pullsnap.grabber.integrity.manifest import Hashed
from pullsnap.grabber.integrity.spool import Spool, scratch_file
from pullsnap.grabber.integrity.tree import DIRECTORY, hash_file_links

__all__ = ["Hashed", "Prehasher", "parse_results"]
RETRY_AFTER = 0.02  # seconds before a name not yet in place is tried again
SEND_EVERY = 0.05  # seconds: names go to the hasher at least this often
SEND_BYTES = 4096  # or once this much is waiting
NICE = 19  # the last to get a CPU: the receiving rsync and ssh come first
TITLE = "pullsnap-hasher"  # its command line in ps(1)


def open_beneath(root_fd: int, path: bytes) -> tuple[int, bytes]:
    """(fd of the directory holding `path`, its last name): every directory
    opened O_NOFOLLOW relative to the last, so nothing in the tree is followed."""
    *parents, name = path.split(b"/")
    if name in (b"", b".", b".."):
        raise OSError(f"odd path {os.fsdecode(path)!r}")
    fd = os.dup(root_fd)
    try:
        for part in parents:
            if part in (b"", b".", b".."):
                raise OSError(f"odd path {os.fsdecode(path)!r}")
            sub = os.open(part, DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd, name


class Directories:
    """Open directories of the tree by path, the last few kept open: rsync
    names the files of one directory one after another, so most files then
    cost one open(2), not one per path component."""

    KEEP = 32

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self._open: dict[bytes, int] = {}  # insertion order: oldest first

    def get(self, parent: bytes) -> int:
        """The directory `parent` (relative to the root; b"" is the root)."""
        if not parent:
            return self.root_fd
        fd = self._open.pop(parent, None)
        if fd is None:
            fd, _ = open_beneath(self.root_fd, parent + b"/x")
            while len(self._open) >= self.KEEP:
                os.close(self._open.pop(next(iter(self._open))))
        self._open[parent] = fd  # the newest now
        return fd

    def close(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()


def hash_beneath(dirs: Directories, path: bytes) -> tuple[str, int, int, int] | None:
    """The file's (digest, size, inode, link count), or None when it is not
    in place (yet).

    Raises OSError for a file that is there but cannot be hashed."""
    parent, _, name = path.rpartition(b"/")
    if name in (b"", b".", b".."):
        raise OSError(f"odd path {os.fsdecode(path)!r}")
    try:
        dir_fd = dirs.get(parent)
        return hash_file_links(dir_fd, name)
    except FileNotFoundError:
        return None


class Prehasher:
    """The parent's side: `add` each new file's path, `close` for the digests."""

    def __init__(
        self,
        tree: str,
        mode: str,
        held: tuple[str, ...],
        scratch: str | None = None,
    ) -> None:
        """`scratch`: the directory for the results file and the spool the
        digests are sorted in (the host's directory); None: memory.

        A run that updates files in place (the btrfs store, rsync
        --inplace) writes under the file's own name and inode, where the
        inode check cannot catch a digest taken mid-write.  None is taken
        mid-write: rsync names a file only once its data is written (the
        %b in rsyncout.OUT_FORMAT), and names a file it writes again (its
        redo phase) again, which the manifest step takes as "hash it
        after the run"."""
        self.pid = 0
        self._scratch = scratch
        self._names = -1
        self._results = -1
        self._pending = bytearray()
        self._last_send = time.monotonic()
        if threading.active_count() != 1:
            return  # fork(2) with other threads alive is not safe: build hashes it all
        keep = ("dac_override",) if mode == "super" and "dac_override" in held else ()
        try:
            prepared = landlock.prepare(
                landlock.Confinement(read_only=(tree,), read_write=(), connect_tcp_ports=())
            )
        except landlock.LandlockError:
            prepared = None  # as unconfined as the manifest step after the run
        try:
            tree_fd = os.open(tree, DIRECTORY)
            names_r, names_w = os.pipe2(os.O_CLOEXEC)
            if scratch is None:
                results = os.memfd_create(TITLE, os.MFD_CLOEXEC)
            else:
                results = scratch_file(scratch)
            pid = os.fork()
        except OSError:
            if prepared is not None:
                prepared.close()
            return
        if pid == 0:  # the hasher: never returns
            _hasher(tree_fd, names_r, results, held, keep, prepared)
        os.close(tree_fd)
        os.close(names_r)
        if prepared is not None:
            prepared.close()
        os.set_blocking(names_w, False)
        self.pid, self._names, self._results = pid, names_w, results

    def add(self, path: bytes) -> None:
        """rsync stored `path` (relative to the tree) anew."""
        if self._names < 0:
            return
        self._pending += path + b"\0"
        now = time.monotonic()
        if len(self._pending) >= SEND_BYTES or now - self._last_send >= SEND_EVERY:
            self._last_send = now
            self._send()

    def _send(self) -> None:
        # Never blocks: the relay of rsync's output must not wait for the hasher.
        try:
            sent = os.write(self._names, self._pending)
        except BlockingIOError:
            return
        except OSError:  # the hasher is gone
            self._pending.clear()
            os.close(self._names)
            self._names = -1
            return
        del self._pending[:sent]

    def close(self) -> Spool:
        """Hand over the last names, wait for the hasher; its digests, sorted
        by path (values: manifest.encode_hashed)."""
        found = Spool(self._scratch)
        if self.pid == 0:
            return found
        try:
            if self._names >= 0:
                os.set_blocking(self._names, True)
                with contextlib.suppress(OSError):
                    while self._pending:
                        del self._pending[: os.write(self._names, self._pending)]
                os.close(self._names)
                self._names = -1
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)  # the names ended: it hashes the last, exits
            self.pid = 0
            offset = 0
            rest = b""
            while block := os.pread(self._results, 1 << 20, offset):
                offset += len(block)
                *lines, rest = (rest + block).split(b"\n")
                _spool_results(lines, found)
            _spool_results([rest], found)  # a torn last line is left out
            return found
        finally:
            self.abort()

    def abort(self) -> None:
        """Stop the hasher now (a failed run needs no digests)."""
        for fd in (self._names, self._results):
            if fd >= 0:
                os.close(fd)
        self._names = self._results = -1
        if self.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0


def parse_results(data: bytes) -> dict[bytes, Hashed]:
    """The hasher's lines -> digests by path; a malformed line (a hasher
    killed mid-write) is left out, its file hashed by `manifest.build`."""
    return {path: hashed for path, hashed, _ in _rows(data.split(b"\n"))}


def _rows(lines: list[bytes]) -> list[tuple[bytes, Hashed, int]]:
    """(path, (digest, size, inode), link count) of each well-formed line:
    [path, digest, size, inode, links]."""
    text = [line.decode("utf-8", "surrogateescape") for line in lines if line]
    found = []
    for row in manifest.json_rows(text):
        if type(row) is not list or len(row) != 5:
            continue
        path, digest, size, inode, links = row
        if type(path) is not str or type(digest) is not str or type(links) is not int:
            continue
        if type(size) is int and type(inode) is int and digest.isalnum() and digest.isascii():
            found.append((path.encode("utf-8", "surrogateescape"), (digest, size, inode), links))
    return found


def _spool_results(lines: list[bytes], into: Spool) -> None:
    for path, hashed, links in _rows(lines):
        if b"\0" not in path:
            into.add(path, manifest.encode_hashed(hashed, links))


def _hasher(
    tree_fd: int,
    names: int,
    results: int,
    held: tuple[str, ...],
    keep: tuple[str, ...],
    prepared: landlock.Prepared | None,
) -> None:
    """The child: confine, hash what arrives, report, exit.  Never returns."""
    code = 1
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)  # not the grabber's unwinding handlers
        prctl.set_pdeathsig(signal.SIGKILL)
        prctl.set_proctitle(TITLE)
        ruleset = () if prepared is None else (prepared.fd,)
        _close_all_but((tree_fd, names, results, *ruleset))  # the lock, the session: the grabber's
        os.nice(NICE)
        caps.drop_entirely([c for c in held if c not in keep])
        if keep:
            caps.set_effective(keep, True)
        if prepared is not None:
            landlock.enforce(prepared)
        report = _Report(results)
        _hash_names(tree_fd, names, report)
        report.flush()
        code = 0
    finally:
        os._exit(code)


def _close_all_but(keep: tuple[int, ...]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


class _Report:
    """The hasher's digests, written to the results memfd a batch at a time."""

    FLUSH_BYTES = 1 << 16

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lines: list[str] = []
        self.size = 0

    def add(self, path: bytes, hashed: tuple[str, int, int, int]) -> None:
        digest, size, inode, links = hashed  # the encoding of manifest.Entry.line, for speed
        line = (f"[{json.dumps(os.fsdecode(path))},{json.dumps(digest)},{size:d},{inode:d},"
                f"{links:d}]\n")  # fmt: skip
        self.lines.append(line)
        self.size += len(line)
        if self.size >= self.FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        out = "".join(self.lines).encode("utf-8", "surrogateescape")
        self.lines.clear()
        self.size = 0
        while out:
            out = out[os.write(self.fd, out) :]


def _hash_names(tree_fd: int, names: int, done: _Report) -> None:
    dirs = Directories(tree_fd)
    try:
        _hash_arriving(dirs, names, done)
    finally:
        dirs.close()


def _hash_arriving(dirs: Directories, names: int, done: _Report) -> None:
    waiting: dict[bytes, float] = {}  # named, not in place yet: when tried
    buffer = b""
    ended = False
    while not ended:
        ready, _, _ = select.select([names], [], [], RETRY_AFTER if waiting else None)
        if ready:
            chunk = os.read(names, 1 << 16)
            ended = not chunk
            *complete, buffer = (buffer + chunk).split(b"\0")
            for path in complete:
                _try(dirs, path, done, waiting)
        now = time.monotonic()
        for path, tried in list(waiting.items()):
            if ended or now - tried >= RETRY_AFTER:
                del waiting[path]
                if not ended:
                    _try(dirs, path, done, waiting)
                else:
                    _try(dirs, path, done, {})  # the last chance: rsync has ended


def _try(dirs: Directories, path: bytes, done: _Report, waiting: dict[bytes, float]) -> None:
    try:
        hashed = hash_beneath(dirs, path)
    except OSError:
        return  # odd or unreadable: build says so after the run
    if hashed is None:
        waiting[path] = time.monotonic()
    else:
        done.add(path, hashed)
