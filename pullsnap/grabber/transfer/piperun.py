"""Run one child with its stdout and stderr relayed to callbacks as they
arrive, under a deadline: how the grabber runs its rsync.

    subprocess.Popen(rsync ..., stdout=pipe, stderr=pipe, preexec_fn=confine)
        stdout pipe ──> on_stdout(text chunk)      one select loop here,
        stderr pipe ──> on_stderr_line(line)        64 KiB reads
    deadline passed: SIGTERM (rsync removes its temporary file), then SIGKILL
    a watch says stop (asked every `watch_every` s): the same, its reason kept

The grabber starts every child with subprocess (DESIGN.md "Children" says
why not with `sh`, whose relay calls back per byte or per line and polls in
0.1 s steps: bench/ANALYSIS.md).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import select
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pullsnap import errors

READ_SIZE = 65536
# rsync writes one line per file; reading each as it comes costs a wakeup of
# both processes per line (100,000 for a first backup of 50,000 files).
# Once several short reads have followed each other closely, the relay
# waits this long before the next one so the pipe (64 KiB) collects more
# first.  A tiny run's few lines are read at once.
COALESCE_BELOW = 16384
COALESCE_WAIT = 0.01
COALESCE_STREAK = 8
KILL_GRACE = 10.0  # seconds between SIGTERM and SIGKILL at the deadline
DRAIN_AFTER_EXIT = 2.0  # an ssh grandchild may hold stderr open a moment longer


@dataclass(frozen=True)
class Ended:
    code: int | None  # exit status; None when a signal ended the child
    signal: int | None
    timed_out: bool
    stopped: str = ""  # why the watch stopped the child
    idle: bool = False  # timed out because it said nothing for `idle` seconds


class _Lines:
    """Incremental UTF-8 (invalid bytes replaced) cut into lines."""

    def __init__(self, on_line: Callable[[str], None]) -> None:
        self.on_line = on_line
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.partial = ""

    def feed(self, data: bytes, final: bool = False) -> None:
        *lines, self.partial = (self.partial + self.decoder.decode(data, final)).split("\n")
        for line in lines:
            self.on_line(line)
        if final and self.partial:
            self.on_line(self.partial)
            self.partial = ""


def run_piped(
    argv: Sequence[str],
    env: dict[str, str],
    on_stdout: Callable[[str], None],
    on_stderr_line: Callable[[str], None],
    preexec: Callable[[], None] | None,
    deadline: float,
    on_started: Callable[[], None] = lambda: None,
    watch: Callable[[], str] | None = None,
    watch_every: float = 0.05,
    idle: float = 0.0,
) -> Ended:
    """`on_started` runs once the child is running (nothing forks after it here);
    `watch`, asked about every `watch_every` s while the child runs, returns
    a reason to stop it ("" while it may go on); a child that writes nothing
    for `idle` seconds (0: no limit) is stopped as timed out."""
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        # close_fds=False: Python's own fds are close-on-exec (PEP 446), and
        # nothing is left to list /proc/self/fd after the preexec's Landlock.
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out_write, stderr=err_write, env=env,
            preexec_fn=preexec, close_fds=False,
        )  # fmt: skip
    except subprocess.SubprocessError as e:  # the preexec failed in the child
        said = _what_the_child_said(err_read)
        for fd in (out_read, err_read):
            os.close(fd)
        raise errors.RunFailed(f"cannot start {argv[0]}: {said or e}") from None
    except OSError:
        for fd in (out_read, err_read):
            os.close(fd)
        raise
    finally:
        os.close(out_write)
        os.close(err_write)
    on_started()
    return _relay(proc, out_read, err_read, on_stdout, on_stderr_line, deadline,
                  watch, watch_every, idle)  # fmt: skip


def _what_the_child_said(err_read: int) -> str:
    """The last line a child wrote to stderr before it failed, if any (it
    has ended: subprocess waited for it)."""
    ready, _, _ = select.select([err_read], [], [], 0)
    text = os.read(err_read, 4096).decode(errors="replace") if ready else ""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _relay(
    proc: subprocess.Popen,
    out_read: int,
    err_read: int,
    on_stdout: Callable[[str], None],
    on_stderr_line: Callable[[str], None],
    deadline: float,
    watch: Callable[[], str] | None = None,
    watch_every: float = 0.05,
    idle: float = 0.0,
) -> Ended:
    out_decoder = codecs.getincrementaldecoder("utf-8")("replace")
    err = _Lines(on_stderr_line)
    sinks: dict[int, Callable[[bytes, bool], None]] = {
        out_read: lambda data, final: on_stdout(out_decoder.decode(data, final)),
        err_read: err.feed,
    }
    selector = selectors.DefaultSelector()
    for fd in (out_read, err_read):
        selector.register(fd, selectors.EVENT_READ)
    end = time.monotonic() + deadline
    timed_out = False
    stopped = ""
    next_watch = time.monotonic() + watch_every
    exited_at: float | None = None
    last_short = 0.0
    streak = 0  # short reads, each within COALESCE_WAIT of the one before
    last_data = time.monotonic()
    went_idle = False
    try:
        while selector.get_map():
            now = time.monotonic()
            if exited_at is not None and now - exited_at > DRAIN_AFTER_EXIT:
                break
            if (
                idle
                and not (timed_out or stopped)
                and exited_at is None
                and now - last_data >= idle
            ):
                # Silent for `idle` s: SIGTERM now, SIGKILL after the grace.
                with contextlib.suppress(OSError):
                    proc.send_signal(signal.SIGTERM)
                timed_out = went_idle = True
                end = min(end, now + KILL_GRACE)
            if now >= end:
                # After a SIGTERM (the deadline's or the watch's), SIGKILL.
                with contextlib.suppress(OSError):
                    proc.send_signal(signal.SIGKILL if timed_out or stopped else signal.SIGTERM)
                timed_out = timed_out or not stopped
                end = now + KILL_GRACE
            if watch is not None and not stopped and exited_at is None and now >= next_watch:
                stopped = watch()
                next_watch = now + watch_every
                if stopped:
                    with contextlib.suppress(OSError):
                        proc.send_signal(signal.SIGTERM)
                    end = min(end, now + KILL_GRACE)
            wait = min(end - now, 0.5 if exited_at is None else DRAIN_AFTER_EXIT)
            if idle and not timed_out:
                wait = min(wait, max(last_data + idle - now, 0.0))
            if watch is not None and not stopped:
                wait = min(wait, watch_every)
            ready = selector.select(max(wait, 0.0))
            if not ready and exited_at is None and proc.poll() is not None:
                exited_at = time.monotonic()
            short = False
            for key, _ in ready:
                data = os.read(key.fd, READ_SIZE)
                if data:
                    last_data = time.monotonic()
                    sinks[key.fd](data, False)
                    short = short or len(data) < COALESCE_BELOW
                else:
                    sinks[key.fd](b"", True)
                    selector.unregister(key.fileobj)
            if short:
                close = time.monotonic() - last_short < COALESCE_WAIT
                streak = streak + 1 if close else 0
                if streak >= COALESCE_STREAK:
                    time.sleep(COALESCE_WAIT)
                last_short = time.monotonic()
    finally:
        selector.close()
        os.close(out_read)
        os.close(err_read)
    code = proc.wait()
    if code < 0:
        return Ended(None, -code, timed_out, stopped, went_idle)
    return Ended(code, None, timed_out, stopped, went_idle)
