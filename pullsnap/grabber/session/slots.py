"""A cap on concurrent pulls across hosts: `max_concurrent_pulls` slots.

    <repository>/.pull-slots/0 .. N-1      flock(2) one of them for the pull

A run takes the first free slot; when all are held it waits, telling the
initiator it is queued (report.QUEUED, which also keeps the initiator's door
open), and gives up with Timeout after `queue_timeout`.  Kernel locks: a
killed run frees its slot.  Waiting runs poll; there is no fairness between
them beyond chance.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator

from pullsnap import errors
from pullsnap.flock import try_flock
from pullsnap.units import human_duration

SLOTS = ".pull-slots"
POLL = 0.25  # seconds between tries
# Seconds between "queued" lines, each of which restarts the initiator's
# connect-back deadline: well below any sensible connect_back_timeout.
TELL_EVERY = 2.0


def _open_slots(root: str, limit: int) -> list[int]:
    directory = os.path.join(root, SLOTS)
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    return [os.open(os.path.join(directory, str(i)), flags, 0o600) for i in range(limit)]


@contextlib.contextmanager
def pull_slot(
    root: str,
    limit: int,
    timeout: float,
    tell: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = lambda text: None,
) -> Iterator[int]:
    """Hold one of `limit` slots for the block (0: no cap, yields -1).

    `tell` gets the "queued" reports while waiting, `log` the end of a wait.
    """
    if limit <= 0:
        yield -1
        return
    fds = _open_slots(root, limit)
    try:
        started = clock()
        told = None
        while True:
            held = next((i for i, fd in enumerate(fds) if try_flock(fd)), None)
            if held is not None:
                for i, fd in enumerate(fds):
                    if i != held:
                        os.close(fd)
                fds = [fds[held]]
                if told is not None:
                    log(f"got a pull slot after {human_duration(clock() - started)}")
                yield held
                return
            waited = clock() - started
            if waited >= timeout:
                raise errors.Timeout(
                    f"no pull slot came free within {human_duration(timeout)} (all "
                    f"{limit} busy, max_concurrent_pulls): raise max_concurrent_pulls or "
                    "queue_timeout, or spread the hosts' schedules"
                )
            if told is None or clock() - told >= TELL_EVERY:
                told = clock()
                tell(
                    f"queued: all {limit} pull slots are busy, waiting up to "
                    f"{human_duration(timeout - waited)}"
                )
            sleep(POLL)
    finally:
        for fd in fds:
            os.close(fd)


def busy(root: str, limit: int) -> int:
    """How many slots are held right now (for tests and status)."""
    directory = os.path.join(root, SLOTS)
    count = 0
    for i in range(limit):
        try:
            fd = os.open(os.path.join(directory, str(i)), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            if try_flock(fd):
                fcntl.flock(fd, fcntl.LOCK_UN)
            else:
                count += 1
        finally:
            os.close(fd)
    return count
