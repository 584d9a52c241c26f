"""Replace a file so that readers see the old content or the new, never half.

rename(2) within one directory is atomic: a temporary file beside the target
is written, fsynced and renamed over it.  node_exporter's textfile collector
asks for exactly this (its README: "write the file to a temporary name and
mv it into place"), and a web server serving the HTML report needs it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from typing import IO, Any


@contextlib.contextmanager
def replacing(
    path: str, mode: int = 0o644, owner: tuple[int, int] | None = None
) -> Iterator[IO[bytes]]:
    """A file to write the new content of `path` into; it replaces `path`
    when the block ends without an exception, and is removed otherwise.

    `owner`: (uid, gid) to give the file when running as root (the
    repository's files stay the grabber user's when root runs a command)."""
    directory = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), mode)  # the umask narrowed the mode open() was given
            if owner is not None and os.geteuid() == 0:
                os.fchown(f.fileno(), *owner)
            os.fsync(f.fileno())
        os.rename(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def ownership(path: str) -> tuple[int, int]:
    """(uid, gid) of `path`, for `replacing`'s `owner`."""
    st = os.stat(path)
    return st.st_uid, st.st_gid


def replace(
    path: str, data: bytes, mode: int = 0o644, owner: tuple[int, int] | None = None
) -> None:
    """Write `data` to `path` atomically with `mode` (see `replacing`)."""
    with replacing(path, mode, owner) as f:
        f.write(data)


def replace_json(path: str, value: Any, owner_of: str | None = None) -> None:
    """A private JSON file (0600) inside the repository, owned like `owner_of`
    when root writes it."""
    text = json.dumps(value, indent=1, sort_keys=True) + "\n"
    owner = ownership(owner_of) if owner_of is not None and os.geteuid() == 0 else None
    replace(path, text.encode("utf-8"), 0o600, owner)


MAX_JSON = 16 << 20


def open_regular(path: str) -> int:
    """A descriptor for reading `path` if it is a regular file: not through
    a symlink, and without blocking on a FIFO.  Raises OSError otherwise.

    The files in host directories are the grabber user's: a receiving rsync
    subverted while unconfined could plant a FIFO or a link there for a
    command run as root (`grabber status`, `list`, `verify`) to trip over."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_json(path: str) -> Any:
    """The JSON in `path`, or None when it is missing, unreadable or not JSON.

    Only a regular file is read, without following a symlink and without
    blocking: these files sit in host directories, where a subverted
    receiving rsync could plant a FIFO or a link for root to trip over.
    """
    try:
        fd = open_regular(path)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size > MAX_JSON:
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return json.loads(f.read(MAX_JSON).decode("utf-8"))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
