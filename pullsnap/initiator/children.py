"""Child processes for the initiator, the Twisted way.

Each child gets a small `ProcessProtocol` that owns one Deferred and fires
it from `processEnded` (twisted.internet.utils does the same).  The reactor
is a parameter so unit tests can pass a fake one that records spawns.

Every child is started through `setpriv --pdeathsig KILL` so it dies with
the initiator even on SIGKILL (prctl(2) PR_SET_PDEATHSIG survives execve of
an ordinary binary).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer, error, protocol
from twisted.python.failure import Failure

from pullsnap import childenv
from pullsnap.errors import Timeout

SETPRIV = "/usr/bin/setpriv"
CHILD_PATH = childenv.PATH


def with_pdeathsig(
    argv: Sequence[str], setpriv: str = SETPRIV, keep_capabilities: bool = False
) -> list[str]:
    """Prefix argv so the child gets SIGKILL when the initiator dies.

    Unless `keep_capabilities` (only the one-shot sshd, which carries
    CAP_DAC_READ_SEARCH ambient to the sender), the child's inheritable set
    is emptied too: it already gets nothing permitted or effective, and
    this way not even a program with file-inheritable capabilities could
    pick up the initiator's (capabilities(7), execve transformation).
    """
    drop = [] if keep_capabilities else ["--inh-caps=-all"]
    return [setpriv, "--pdeathsig", "KILL", *drop, "--", *argv]


child_env = childenv.child_env


@dataclass(frozen=True)
class Finished:
    """How a child ended and what it wrote."""

    argv: tuple[str, ...]
    code: int | None  # exit status, None if killed by a signal
    signal: int | None
    stdout: bytes
    stderr: bytes

    def ok(self) -> bool:
        return self.code == 0

    def stderr_tail(self, limit: int = 300, skip: Sequence[str] = ()) -> str:
        """The last line on stderr, not counting lines that start with one in `skip`."""
        lines = self.stderr.decode("utf-8", "replace").strip().splitlines()
        last = next((line for line in reversed(lines) if not line.startswith(tuple(skip))), "")
        return last[-limit:]


def _status(reason: Failure) -> tuple[int | None, int | None]:
    value = reason.value
    if isinstance(value, error.ProcessDone):
        return 0, None
    if isinstance(value, error.ProcessTerminated):
        return value.exitCode, value.signal
    return None, None


class CollectingProtocol(protocol.ProcessProtocol):
    """Write `stdin`, collect stdout/stderr, fire `ended` with a `Finished`."""

    def __init__(
        self,
        argv: Sequence[str],
        stdin: bytes = b"",
        on_stdout_line: Callable[[str], None] | None = None,
        on_stderr_line: Callable[[str], None] | None = None,
        hold_stdin: bool = False,
    ) -> None:
        self.argv = tuple(argv)
        self.stdin = stdin
        # True: the child starts now, its input comes later (send_stdin).
        self.hold_stdin = hold_stdin
        self.on_stdout_line = on_stdout_line
        self.on_stderr_line = on_stderr_line
        self.ended: defer.Deferred[Finished] = defer.Deferred()
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._partial = {1: b"", 2: b""}

    def connectionMade(self) -> None:
        if self.transport is None or self.hold_stdin:
            return
        if self.stdin:
            self.transport.write(self.stdin)
        self.transport.closeStdin()

    def send_stdin(self, data: bytes) -> None:
        """For `hold_stdin`: write the child's whole input now and close it."""
        if self.transport is None or self.ended.called:
            return
        self.transport.write(data)
        self.transport.closeStdin()

    def _lines(self, fd: int, data: bytes, callback: Callable[[str], None] | None) -> None:
        if callback is None:
            return
        buffered = self._partial[fd] + data
        *lines, self._partial[fd] = buffered.split(b"\n")
        for line in lines:
            callback(line.rstrip(b"\r").decode("utf-8", "replace"))

    def outReceived(self, data: bytes) -> None:
        self._out.append(data)
        self._lines(1, data, self.on_stdout_line)

    def errReceived(self, data: bytes) -> None:
        self._err.append(data)
        self._lines(2, data, self.on_stderr_line)

    def processEnded(self, reason: Failure) -> None:
        for fd, callback in ((1, self.on_stdout_line), (2, self.on_stderr_line)):
            if callback is not None and self._partial[fd]:
                callback(self._partial[fd].decode("utf-8", "replace"))
        code, sig = _status(reason)
        self.ended.callback(
            Finished(self.argv, code, sig, b"".join(self._out), b"".join(self._err))
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.transport is not None and getattr(self.transport, "pid", None):
            with contextlib.suppress(error.ProcessExitedAlready, OSError):
                self.transport.signalProcess(sig)


def spawn(
    reactor: Any,
    proto: CollectingProtocol,
    argv: Sequence[str],
    env: Mapping[str, str],
    path: str | None = None,
    child_fds: Mapping[int, Any] | None = None,
) -> None:
    """Start `argv` (already prefixed as wanted) under `proto`."""
    kwargs: dict[str, Any] = {"env": dict(env), "path": path}
    if child_fds is not None:
        kwargs["childFDs"] = dict(child_fds)
    reactor.spawnProcess(proto, argv[0], list(argv), **kwargs)


def run(
    reactor: Any,
    argv: Sequence[str],
    timeout: float,
    what: str,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    path: str | None = None,
) -> defer.Deferred[Finished]:
    """Run a short child to completion; kill it and fail with Timeout after `timeout`."""
    proto = CollectingProtocol(argv, stdin)
    spawn(reactor, proto, with_pdeathsig(argv), env or child_env(), path=path)
    return deadline(reactor, proto.ended, timeout, what, on_expiry=proto.kill)


def deadline(
    reactor: Any,
    d: defer.Deferred,
    seconds: float,
    what: str,
    on_expiry: Callable[[], None] | None = None,
) -> defer.Deferred:
    """Fail `d` with Timeout("<what> took longer than N s") unless it fires in time.

    Unlike `Deferred.addTimeout`, the result is a domain error and
    `on_expiry` runs first (typically: kill the child).
    """
    result: defer.Deferred = defer.Deferred()
    timer = reactor.callLater(seconds, lambda: _expire())

    def _expire() -> None:
        if on_expiry is not None:
            on_expiry()
        if not result.called:
            result.errback(Failure(Timeout(f"{what} took longer than {seconds:g} s")))

    def _done(value: Any) -> None:
        if timer.active():
            timer.cancel()
        if not result.called:
            if isinstance(value, Failure):
                result.errback(value)
            else:
                result.callback(value)

    d.addBoth(_done)
    return result


def pid_of(proto: protocol.ProcessProtocol) -> int | None:
    transport = proto.transport
    return getattr(transport, "pid", None) if transport is not None else None
