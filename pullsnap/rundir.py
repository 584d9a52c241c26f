"""Private run directories, and the one rule for what a killed run left.

Both roles keep a run's files (keys, sockets, configuration) in a 0700
directory of their own, and each run holds an flock(2) on a file in it for
as long as it lives.  The kernel drops a dead process's lock however it
died, so a directory whose lock nobody holds was left by a run that could
not clean up (SIGKILL, a crash): the next run of the same user removes it.

    make(base, prefix)          0700 directory, its lock taken at once
    sweep(base, prefix, name)   remove ours whose lock is free

A directory is locked before its lock file has its final name, so a sweep
never sees a live run's directory unlocked; one without the lock file yet
(being made) is left alone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
import tempfile

from pullsnap.flock import try_flock


def hold(run_dir: str, name: str) -> int:
    """Create and lock `run_dir`/`name`; the lock lasts as long as the fd (or we) do."""
    path = os.path.join(run_dir, name)
    fresh = path + ".new"
    fd = os.open(fresh, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    # Named only once locked: `sweep` in another run never finds it free.
    os.rename(fresh, path)
    return fd


def make(base: str, prefix: str, name: str) -> tuple[str, int]:
    """A new 0700 directory in `base`, held: (its path, the lock's fd)."""
    path = tempfile.mkdtemp(prefix=prefix, dir=base)
    os.chmod(path, 0o700)
    return path, hold(path, name)


def sweep(base: str, prefix: str, name: str) -> list[str]:
    """Remove the directories in `base` named `prefix`... that are ours (this
    uid, real directories) and whose `name` lock nobody holds; the removed ones."""
    removed: list[str] = []
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return removed
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        run_dir = os.path.join(base, entry)
        try:
            st = os.lstat(run_dir)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                continue
            fd = os.open(os.path.join(run_dir, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # not a run directory, or one still being made
        try:
            if not try_flock(fd):
                continue  # its run (or a child sharing the lock) still holds it
            shutil.rmtree(run_dir, ignore_errors=True)
            removed.append(run_dir)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed
