"""The initiator's lifeline: the sender ends when the initiator does.

    initiator ── flock(LOCK_EX) <run dir>/lifeline, held for the whole run
      └─ sshd -i (pdeathsig) ─ privsep ─ session ─ gate ──exec──> rsync --sender
                                                     └─ fork: watcher
                                                          flock(LOCK_SH) blocks ...

`sshd -i` forks for privilege separation, and its session child keeps the
connection after the process the initiator started is gone: a pdeathsig on
sshd (children.with_pdeathsig) alone lets a transfer run on when the
initiator is killed with SIGKILL.  The kernel drops a dead process's flock,
so the watcher's shared lock is granted exactly when the initiator has
ended, however it ended; the watcher then kills the sender (its parent),
and the session, sshd and the connection follow.  When the sender ends
first, the watcher dies with it (PR_SET_PDEATHSIG, prctl(2)).

The same lock tells the next run which run directories a killed initiator
left behind (`sweep`): those whose lifeline nobody holds (pullsnap/rundir.py,
the rule both roles use).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal

from pullsnap import caps, rundir
from pullsnap.errors import CapabilityError

NAME = "lifeline"
RUN_DIR_PREFIX = "pullsnap-"  # run.py makes each run directory with it
WATCHER_TITLE = "pullsnap-lifeline-watcher"


def hold(run_dir: str) -> int:
    """Create and lock the lifeline; the lock lasts as long as the fd (or we) do."""
    return rundir.hold(run_dir, NAME)


def sweep(base: str) -> list[str]:
    """Remove the run directories in `base` whose initiator is gone without
    cleaning up (SIGKILL, a crash): ours, with a lifeline nobody holds."""
    return rundir.sweep(base, RUN_DIR_PREFIX, NAME)


def watch(path: str) -> int:
    """Fork the watcher of the process about to exec the sender; its pid.

    Raises OSError when the lifeline is gone (the run is over)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    sender = os.getpid()
    pid = os.fork()
    if pid:
        os.close(fd)
        return pid
    try:
        _watcher(fd, sender)
    finally:
        os._exit(0)


def _watcher(fd: int, sender: int) -> None:
    import prctl

    # First of all: no longer look like the gate in ps (its argv is the gate's).
    prctl.set_proctitle(WATCHER_TITLE)
    prctl.set_pdeathsig(signal.SIGKILL)
    if os.getppid() != sender:
        return  # the sender is already gone
    # Nothing of the ssh channel stays open here: sshd waits for EOF on it.
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    # The watcher needs no capability (the gate's CAP_DAC_READ_SEARCH is ambient).
    with contextlib.suppress(CapabilityError):
        caps.hold_quietly(())
    fcntl.flock(fd, fcntl.LOCK_SH)
    os.kill(sender, signal.SIGKILL)
