"""Running the destinations and telling the operator how it went.

Two styles (`--format`, default by what stdout and stderr are):

  text    a terminal: with --now a live progress line on stderr (files,
          bytes, rate, ETA), then one verdict line per destination
  logfmt  cron, systemd, a pipe: no progress, one `key=value` line per
          destination (README "Log lines"); under systemd each line starts
          with a syslog priority the journal understands (sd-daemon(3))

Successes are announced with --now, for probes and under the journal; a
plain scheduled run from cron is silent on success, so cron mails only
failures.  Failures always print one line on stderr.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from pullsnap import errors, logfmt, report
from pullsnap.config import Destination, InitiatorConfig
from pullsnap.initiator import hooks, run, wiring
from pullsnap.units import human_duration, human_size

STYLES = ("auto", "text", "logfmt")
# Exit codes whose run left a snapshot (a suspect one is kept, not counted good).
MADE = (errors.OK, errors.PARTIAL, errors.SUSPECT)
# sd-daemon(3): "<3>" err, "<4>" warning, "<6>" info, read by journald when
# SyslogLevelPrefix= is on (the default).
_JOURNAL_PRIORITY = {"error": "<3>", "warning": "<4>", "info": "<6>"}


def verdict(outcome: run.Outcome) -> str:
    """One line per destination (pure)."""
    name = errors.EXIT_NAMES.get(outcome.code, str(outcome.code))
    result = outcome.result
    if outcome.code in MADE and result.get("snapshot"):
        parts = [
            f"{outcome.destination}: {name}",
            f"snapshot {result.get('host', '?')}/{result['snapshot']}",
            f"{int(result.get('files', 0)):,} files",
            f"{human_size(int(result.get('transferred', 0)))} transferred",
            f"{human_size(int(result.get('added', 0)))} added",
            human_duration(outcome.seconds),
        ]
        line = ", ".join(parts)
        return line + (f" ({outcome.message})" if outcome.message else "")
    if outcome.code == errors.OK:
        return f"{outcome.destination}: {name}: {outcome.message or 'done'}"
    return f"{outcome.destination}: {name}: {outcome.message or 'failed'}"


def verdict_pairs(outcome: run.Outcome) -> list[tuple[str, Any]]:
    """The verdict as logfmt pairs (pure): the same facts as `verdict`, in bytes."""
    result = outcome.result
    made = outcome.code in MADE and bool(result.get("snapshot"))
    pairs: list[tuple[str, Any]] = [
        ("dest", outcome.destination),
        ("result", errors.EXIT_NAMES.get(outcome.code, str(outcome.code))),
        ("exit", outcome.code),
    ]
    if made:
        pairs += [
            ("snapshot", f"{result.get('host', '?')}/{result['snapshot']}"),
            ("files", int(result.get("files", 0))),
            ("transferred", int(result.get("transferred", 0))),
            ("added", int(result.get("added", 0))),
        ]
    pairs.append(("seconds", round(outcome.seconds, 1)))
    if outcome.message:
        pairs.append(("message", outcome.message))
    return pairs


def progress_text(dest: str, p: report.Progress) -> str:
    return (
        f"{dest}: {p.percent:3d}%  {p.files:,} files  {human_size(p.bytes)}  {p.rate}  eta {p.eta}"
    )


def choose_style(requested: str, streams: Sequence[TextIO]) -> str:
    """`auto` is text when any of `streams` is a terminal, else logfmt."""
    if requested != "auto":
        return requested
    return "text" if any(_isatty(s) for s in streams) else "logfmt"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, OSError):
        return False


def journal_attached(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """Whether `stream` is systemd's journal stream (JOURNAL_STREAM=dev:inode,
    systemd.exec(5): compare it with the stream's own device and inode)."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (ValueError, OSError):
        return False
    return value == f"{st.st_dev}:{st.st_ino}"


class Console:
    """Where progress, log lines and verdicts go, in the chosen style."""

    def __init__(
        self,
        style: str,
        live: bool,
        verbose: bool,
        announce: bool,
        out: TextIO | None = None,
        err: TextIO | None = None,
        journal: bool = False,
    ) -> None:
        self.style = style
        self.live = live
        self.verbose = verbose
        self.announce = announce
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.journal = journal
        self._dirty = False

    def progress(self, dest: str, p: report.Progress) -> None:
        if self.live:
            self.err.write("\r" + report.printable(progress_text(dest, p))[:150].ljust(80))
            self.err.flush()
            self._dirty = True

    def log(self, dest: str, text: str) -> None:
        if self.verbose:
            if self.style == "logfmt":
                self._emit(self.err, "info", logfmt.line([("dest", dest), ("log", text)]))
            else:
                self._emit(self.err, "info", f"{dest}: {text}")

    def _clear(self) -> None:
        if self._dirty:
            self.err.write("\r" + " " * 80 + "\r")
            self._dirty = False

    def _emit(self, stream: TextIO, level: str, text: str) -> None:
        self._clear()
        prefix = _JOURNAL_PRIORITY[level] if self.journal else ""
        # Messages carry the backup host's words (grabber lines, ssh's stderr).
        print(prefix + report.printable(text), file=stream, flush=True)

    def done(self, outcome: run.Outcome) -> None:
        ok = outcome.code == errors.OK
        if ok and not self.announce:
            self._clear()
            return
        stream = self.out if ok else self.err
        level = "info" if ok else "warning" if outcome.code == errors.PARTIAL else "error"
        if self.style == "logfmt":
            self._emit(stream, level, logfmt.line(verdict_pairs(outcome)))
        elif self.announce:
            self._emit(stream, level, verdict(outcome))
        else:
            self._emit(stream, level, f"initiator: {verdict(outcome)}")

    def hook_failed(self, dest: str, failure: errors.HookFailed) -> None:
        """The `after` hook failed: always said, on stderr."""
        if self.style == "logfmt":
            pairs = [("dest", dest), ("result", "hook-failed"), ("exit", failure.exit_code),
                     ("message", str(failure))]  # fmt: skip
            self._emit(self.err, "error", logfmt.line(pairs))
        else:
            self._emit(self.err, "error", f"{dest}: hook-failed: {failure}")


class Interruption:
    """SIGTERM (systemctl stop, a unit's timeout) or SIGINT (Ctrl-C) mid-run.

    The first such signal stops the reactor, which first fires the "before
    shutdown" triggers and keeps running until the Deferreds they return
    have fired (IReactorCore.addSystemEventTrigger).  `before_shutdown` ends
    the run in progress as its deadline would (children killed, run
    directory removed); its `after` hook still runs, later destinations are
    not tried, and the exit status is a failure, never 0.  Later signals
    change nothing: what is left is bounded by the `after` hook's timeout.
    These handlers replace Twisted's, which would stop the reactor again.
    """

    def __init__(self) -> None:
        self.reason = ""
        self.signal = ""
        self._current: Any = None  # the running backup's stop Deferred
        self._finished: Any = None  # what the reactor's shutdown waits for
        self._done = False

    def install(self, reactor: Any) -> None:
        """Take over SIGTERM and SIGINT (once the reactor runs: it installs its own)."""
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda number, frame: self._signalled(reactor, number))

    def _signalled(self, reactor: Any, number: int) -> None:
        if not self.signal:
            self.signal = signal.Signals(number).name
            reactor.callFromThread(self._stop, reactor)

    def _stop(self, reactor: Any) -> None:
        from twisted.internet.error import ReactorNotRunning

        with contextlib.suppress(ReactorNotRunning):  # it was stopping anyway
            reactor.stop()

    def arm(self) -> Any:
        """A Deferred that fires with the reason if a stop comes during this run."""
        from twisted.internet import defer

        self._current = defer.Deferred()
        return self._current

    def before_shutdown(self) -> Any:
        from twisted.internet import defer

        if self._done:
            return None  # every destination is done: task.react stops the reactor
        self.reason = f"interrupted by {self.signal or 'a signal'}"
        if self._current is not None and not self._current.called:
            self._current.callback(self.reason)
        self._finished = defer.Deferred()
        return self._finished

    def finish(self) -> None:
        self._done = True
        if self._finished is not None:
            self._finished.callback(None)


def run_all(
    cfg: InitiatorConfig,
    destinations: Sequence[Destination],
    now: bool,
    verbose: bool,
    probe: bool = False,
    style: str = "auto",
) -> int:
    """Run each destination in turn, hooks around it; the exit status is the
    first failure's (an `after` hook's failure counts when the run was ok)."""
    from twisted.internet import defer, task

    style = choose_style(style, (sys.stdout, sys.stderr))
    journal = journal_attached(sys.stderr)
    console = Console(
        style,
        live=now and style == "text" and _isatty(sys.stderr),
        verbose=verbose,
        announce=now or probe or journal,
        journal=journal,
    )
    reports = run.Hooks(progress=console.progress, log=console.log)
    codes: list[int] = []
    stopped = Interruption()

    async def main(reactor: Any) -> None:
        reactor.addSystemEventTrigger("before", "shutdown", stopped.before_shutdown)
        reactor.callWhenRunning(stopped.install, reactor)
        try:
            await each_destination(reactor)
        finally:
            stopped.finish()

    async def each_destination(reactor: Any) -> None:
        confine = wiring.start_confine_root_probe(cfg.rsync)
        for dest in destinations:
            if stopped.reason:
                break

            def backup(dest: Destination = dest) -> defer.Deferred:
                if stopped.reason:  # during the `before` hook
                    skipped = f"{stopped.reason}: no backup was made"
                    return defer.succeed(run.Outcome(dest.name, errors.FAILED, skipped))
                return run.run_destination(
                    reactor, cfg, dest, reports, probe, confine, stop=stopped.arm()
                )

            if probe:
                outcome, after_failed = await backup(), None
            else:
                outcome, after_failed = await hooks.around(reactor, cfg, dest, backup, console.log)
            console.done(outcome)
            code = outcome.code
            if after_failed is not None:
                console.hook_failed(dest.name, after_failed)
                code = after_failed.exit_code if code == errors.OK else code
            codes.append(code)

    try:
        task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
    except SystemExit as e:
        if e.code not in (0, None) and len(codes) < len(destinations):
            return errors.FAILED
    if stopped.reason and all(c == errors.OK for c in codes):
        # Stopped between two destinations: the rest was never tried.
        print(f"initiator: {stopped.reason}", file=sys.stderr)
        return errors.FAILED
    return next((c for c in codes if c != errors.OK), errors.OK)
