"""Short commands run to completion and read whole, through `sh`: what the
operator's commands start (setup, check, the launcher's compiler and
setcap, the host key look-ups), never a backup run's children.

`sh` resolves the program (a path, or a name on the children's PATH) and
runs it with the environment given, stdin closed and no terminal; the
result is the exit status and both outputs, whatever the status.  A run's
children start elsewhere, each for a reason DESIGN.md "Children" gives:
importing `sh` costs about 0.1 s and each call some 10 ms more than a bare
fork and exec, which a backup's critical path does not pay.

`sh` reads and waits in threads of its own, and capabilities are per
thread (pullsnap/caps.py changes them only while the process has one):
`run` returns once those threads are gone from the kernel's view too
(/proc/self/task: a joined thread lingers there for a moment), so
`initiator check --probe` can still drop to the initiator's user after
its checks.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pullsnap import childenv

_TASK_POLLS = 2000  # of 1 ms: a joined thread's exit takes microseconds


def _tasks() -> int:
    return len(os.listdir("/proc/self/task"))


@dataclass(frozen=True)
class Done:
    code: int  # the exit status; minus the signal number if a signal ended it
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.code == 0


def which(program: str, path: str = childenv.PATH) -> str | None:
    """`program`'s path: itself if it names a path, else the first
    executable of that name on `path`; None if there is none.  An empty
    entry of `path` is skipped, not taken as the working directory."""
    import sh

    try:
        return str(sh.Command(program, search_paths=[d for d in path.split(":") if d]))
    except sh.CommandNotFound:
        return None


def run(
    argv: Sequence[str],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    stdin: str = "",
) -> Done:
    """Run `argv` to its end; never raises for its exit status.

    Raises OSError (ENOENT) when the program cannot be found or started,
    TimeoutError (after killing it) when it runs past `timeout` seconds."""
    import sh

    environment = dict(childenv.child_env() if env is None else env)
    program = which(argv[0], environment.get("PATH", childenv.PATH))
    if program is None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", argv[0])
    ours, tasks = set(threading.enumerate()), _tasks()
    try:
        done = sh.Command(program)(
            *argv[1:], _env=environment, _in=stdin, _timeout=timeout,
            _ok_code=range(-64, 256), _return_cmd=True,
        )  # fmt: skip
    except sh.TimeoutException:
        raise TimeoutError(f"{argv[0]} took longer than {timeout:g} s") from None
    except sh.ForkException:
        raise OSError(errno.ENOEXEC, "cannot be started", argv[0]) from None
    finally:
        for thread in set(threading.enumerate()) - ours:
            thread.join()
        for _ in range(_TASK_POLLS):
            if _tasks() <= tasks:
                break
            time.sleep(0.001)
    text = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    return Done(done.exit_code, *text)


def run_foreground(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    """Run `argv` on this process's own stdin, stdout and stderr, so what it
    writes reaches the operator's terminal as it comes (`grabber restore`'s
    rsync and its progress line); its exit status.  Raises OSError (ENOENT)
    when the program cannot be found or started."""
    import sh

    environment = dict(childenv.child_env() if env is None else env)
    program = which(argv[0], environment.get("PATH", childenv.PATH))
    if program is None:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", argv[0])
    # sh's _fg takes no _ok_code (sh's docs, "Special arguments": _fg): a
    # failure arrives as ErrorReturnCode, a signal as SignalException.
    try:
        sh.Command(program)(*argv[1:], _env=environment, _fg=True)
    except sh.ErrorReturnCode as e:
        return int(e.exit_code)
    except sh.ForkException:
        raise OSError(errno.ENOEXEC, "cannot be started", argv[0]) from None
    return 0
