"""flock(2) without waiting: the one primitive behind every lock here.

Kernel locks go with the process that holds them, so a killed run leaves
no stale lock: the host lock, the pull slots, the run directories' locks.
"""

from __future__ import annotations

import errno
import fcntl


def try_flock(fd: int, shared: bool = False) -> bool:
    """Take the lock on `fd` if it is free (True); False if another holds it.

    Any other failure (EBADF, ENOLCK) raises OSError."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True
