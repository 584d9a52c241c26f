"""A cap on concurrent pulls across hosts: `max_concurrent_pulls` slots,
handed out in arrival order.

    <repository>/.pull-slots/0 .. N-1           flock(2) one of them for the pull
    <repository>/.pull-slots/queue              flock(2)ed while a ticket is made or removed;
                                                it holds the next ticket's number
    <repository>/.pull-slots/ticket.<seq>       a waiting run's place, flock(2)ed by it

Every run takes a ticket, numbered from a counter that only grows, made
and locked while the queue lock is held.  It takes a
slot only when a slot is free for it: fewer live tickets lie ahead of it
than slots are free (rsnapshot and BackupPC leave this to chance; one host
could lose every race all night).  Until then it tells the initiator it is
queued (report.QUEUED, which also keeps the initiator's door open) and
gives up with Timeout after `queue_timeout`.  Once it holds a slot its
ticket goes.

Kernel locks throughout: a killed run's slot is free at once, and its
ticket, whose lock is free too, counts for nobody; the next waiter that
meets it removes it.  A waiter looks at the tickets ahead only when a slot
is free, and stops counting once they fill the free slots, so a long queue
costs each waiter a few system calls per look.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pullsnap import errors
from pullsnap.flock import try_flock
from pullsnap.units import human_duration

SLOTS = ".pull-slots"
QUEUE_LOCK = "queue"
TICKET = "ticket."
POLL = 0.25  # seconds between looks for a waiter with others ahead
POLL_NEXT = 0.05  # for the waiter a free slot is kept for: a freed slot idles this long at most
# Seconds between "queued" lines, each of which restarts the initiator's
# connect-back deadline: well below any sensible connect_back_timeout.
TELL_EVERY = 2.0
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Slot:
    """A held slot, and how the run came to it (for the run's record)."""

    index: int  # -1: no cap
    ticket: int = -1  # its place in the queue (numbers only grow)
    arrived: float = 0.0  # time.time() when it took its ticket
    wait: float = 0.0  # seconds until it held the slot

    def record(self) -> dict[str, float | int]:
        return {"ticket": self.ticket, "arrived": round(self.arrived, 3),
                "wait": round(self.wait, 3)}  # fmt: skip


def _directory(root: str) -> str:
    directory = os.path.join(root, SLOTS)
    with contextlib.suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    return directory


def _open_slots(directory: str, limit: int) -> list[int]:
    return [os.open(os.path.join(directory, str(i)), _FLAGS, 0o600) for i in range(limit)]


def ticket_number(name: str) -> int | None:
    """The number in a ticket's file name, None for any other name (pure)."""
    if not name.startswith(TICKET):
        return None
    digits = name[len(TICKET) :]
    return int(digits) if digits.isdigit() and digits.isascii() else None


def next_number(names: list[str]) -> int:
    """One more than every ticket among `names`, 0 for none (pure)."""
    numbers = [n for n in map(ticket_number, names) if n is not None]
    return max(numbers, default=-1) + 1


@contextlib.contextmanager
def _queue_lock(directory: str) -> Iterator[int]:
    fd = os.open(os.path.join(directory, QUEUE_LOCK), _FLAGS, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # held for a directory listing and a create
        yield fd
    finally:
        os.close(fd)


def _take_ticket(directory: str, who: str) -> tuple[int, int]:
    """A new ticket (its number, its locked fd), behind every ticket there is;
    it names `who` waits (`cat <repository>/.pull-slots/ticket.*`)."""
    with _queue_lock(directory) as lock:
        # The counter lives in the lock file: numbers never repeat, even
        # when the queue empties between two runs.
        text = os.pread(lock, 32, 0).decode("ascii", "replace").strip()
        number = max(int(text) if text.isdigit() else 0, next_number(os.listdir(directory)))
        os.pwrite(lock, f"{number + 1:<20d}\n".encode(), 0)
        path = os.path.join(directory, f"{TICKET}{number:012d}")
        fd = os.open(path, _FLAGS | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{who} pid {os.getpid()}\n".encode())
    return number, fd


def _drop_ticket(directory: str, number: int, fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(directory, f"{TICKET}{number:012d}"))
    os.close(fd)


def _is_held(path: str) -> bool:
    """Whether a process holds the lock on `path` (a missing file: no)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if try_flock(fd, shared=True):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        return True
    finally:
        os.close(fd)


def _remove_dead(directory: str, name: str) -> None:
    """A ticket whose run died: gone, under the queue lock (it is made under it)."""
    with _queue_lock(directory):
        path = os.path.join(directory, name)
        if not _is_held(path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def live_ahead(directory: str, number: int, enough: int) -> int:
    """Live tickets numbered below `number`, counted up to `enough`; dead ones are removed."""
    ahead = sorted(
        (n, name) for name in os.listdir(directory) if (n := ticket_number(name)) is not None
        and n < number
    )  # fmt: skip
    count = 0
    for _, name in ahead:
        if count >= enough:
            break
        if _is_held(os.path.join(directory, name)):
            count += 1
        else:
            _remove_dead(directory, name)
    return count


def _free(fds: list[int]) -> list[int]:
    """Indexes of the slots nobody holds now."""
    free = []
    for i, fd in enumerate(fds):
        if try_flock(fd, shared=True):
            fcntl.flock(fd, fcntl.LOCK_UN)
            free.append(i)
    return free


@contextlib.contextmanager
def pull_slot(
    root: str,
    limit: int,
    timeout: float,
    tell: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = lambda text: None,
    who: str = "",
) -> Iterator[Slot]:
    """Hold one of `limit` slots for the block (0: no cap, index -1).

    `tell` gets the "queued" reports while waiting, `log` the end of a wait;
    `who` (the host) is written into the ticket.
    """
    if limit <= 0:
        yield Slot(-1, arrived=time.time())
        return
    directory = _directory(root)
    fds = _open_slots(directory, limit)
    ticket: tuple[int, int] | None = None
    try:
        started, arrived = clock(), time.time()
        told = None
        number, fd = ticket = _take_ticket(directory, who)
        while True:
            free = _free(fds)
            ahead = live_ahead(directory, number, len(free)) if free else 0
            held = None
            if free and ahead < len(free):
                held = next((i for i in free if try_flock(fds[i])), None)
            if held is not None:
                _drop_ticket(directory, number, fd)
                ticket = None
                for i, other in enumerate(fds):
                    if i != held:
                        os.close(other)
                fds = [fds[held]]
                waited = clock() - started
                if told is not None:
                    log(f"got a pull slot after {human_duration(waited)}")
                yield Slot(held, number, arrived, waited)
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
                place = live_ahead(directory, number, limit * 1000)
                state = (f"{len(free)} of {limit} pull slots are free for runs that came first"
                         if free else f"all {limit} pull slots are busy")  # fmt: skip
                tell(
                    f"queued: {state}, waiting up to {human_duration(timeout - waited)}; "
                    f"{place} ahead of this run"
                )
            sleep(POLL_NEXT if free else POLL)
    finally:
        if ticket is not None:
            _drop_ticket(directory, *ticket)
        for slot_fd in fds:
            os.close(slot_fd)


def busy(root: str, limit: int) -> int:
    """How many slots are held right now (for tests and status)."""
    directory = os.path.join(root, SLOTS)
    return sum(_is_held(os.path.join(directory, str(i))) for i in range(limit))


def waiting(root: str) -> int:
    """How many runs wait for a slot right now (for tests and status)."""
    directory = os.path.join(root, SLOTS)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return 0
    return sum(
        _is_held(os.path.join(directory, name)) for name in names if ticket_number(name) is not None
    )
