"""Running the destinations and telling the operator how it went.

On a terminal with --now: a live progress line, then one verdict per
destination.  Without --now (cron, timers): silent on success, one line on
stderr per failed destination.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from pullsnap import errors, report
from pullsnap.config import Destination, InitiatorConfig
from pullsnap.initiator import run
from pullsnap.units import human_duration, human_size


def verdict(outcome: run.Outcome) -> str:
    """One line per destination (pure)."""
    name = errors.EXIT_NAMES.get(outcome.code, str(outcome.code))
    result = outcome.result
    if outcome.code in (errors.OK, errors.PARTIAL) and result.get("snapshot"):
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


def progress_text(dest: str, p: report.Progress) -> str:
    return (
        f"{dest}: {p.percent:3d}%  {human_size(p.bytes)}  {p.rate}  eta {p.eta}  {p.files:,} files"
    )


class Console:
    def __init__(self, stream: TextIO, live: bool, verbose: bool) -> None:
        self.stream = stream
        self.live = live
        self.verbose = verbose
        self._dirty = False

    def progress(self, dest: str, p: report.Progress) -> None:
        if self.live:
            self.stream.write("\r" + progress_text(dest, p)[:150].ljust(80))
            self.stream.flush()
            self._dirty = True

    def log(self, dest: str, text: str) -> None:
        if self.verbose:
            self._clear()
            self.stream.write(f"{dest}: {text}\n")
            self.stream.flush()

    def _clear(self) -> None:
        if self._dirty:
            self.stream.write("\r" + " " * 80 + "\r")
            self._dirty = False

    def done(self, outcome: run.Outcome, now: bool) -> None:
        self._clear()
        if now:
            stream = sys.stdout if outcome.code in (errors.OK,) else sys.stderr
            print(verdict(outcome), file=stream, flush=True)
        elif outcome.code != errors.OK:
            print(f"initiator: {verdict(outcome)}", file=sys.stderr, flush=True)


def run_all(
    cfg: InitiatorConfig,
    destinations: Sequence[Destination],
    now: bool,
    verbose: bool,
    probe: bool = False,
) -> int:
    """Run each destination in turn; the exit status is the first failure's."""
    from twisted.internet import defer, task

    console = Console(sys.stderr, live=now and sys.stderr.isatty(), verbose=verbose)
    hooks = run.Hooks(progress=console.progress, log=console.log)
    codes: list[int] = []

    async def main(reactor: Any) -> None:
        confine = run.rsync_supports_confine_root(cfg.rsync)
        for dest in destinations:
            outcome = await run.run_destination(reactor, cfg, dest, hooks, probe, confine)
            console.done(outcome, now or probe)
            codes.append(outcome.code)

    try:
        task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
    except SystemExit as e:
        if e.code not in (0, None) and not codes:
            return errors.FAILED
    return next((c for c in codes if c != errors.OK), errors.OK)
