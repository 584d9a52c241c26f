"""A destination's `before` and `after` hooks, around its backup.

    before ──ok──────> backup ──> after   (PULLSNAP_EXIT = the run's code)
      └──fails or times out ────> after   (PULLSNAP_EXIT = 10, hook-failed)
                                  no backup is tried

A hook runs as the initiator's user (after the privilege drop) and holds no
capability: the initiator keeps CAP_DAC_READ_SEARCH permitted and
inheritable but raises it ambient only around the sshd spawn, and an execve
of a file without file capabilities by a non-root user then yields empty
permitted and effective sets (capabilities(7), "Transformation of
capabilities during execve()").  Its environment is built here from nothing
(`ENVIRONMENT` documents it; README "Before and after hooks" repeats it), so
nothing of the initiator's own environment, or cron's or systemd's, leaks
into it.

The hook starts as the leader of its own session (setsid(1) execs it in
place, being no group leader after fork), so a timeout can end the hook and
everything it started with one killpg(2): SIGTERM, then SIGKILL after
`GRACE` seconds.  setpriv --pdeathsig kills it if the initiator dies.
Hooks do not run for probes (`--dry-run`, `check --probe`): they transfer
nothing, so there is nothing to make consistent.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet import defer

from pullsnap import errors
from pullsnap.config import Destination, InitiatorConfig
from pullsnap.initiator import children, run

SETSID = "/usr/bin/setsid"
GRACE = 5.0

# What a hook finds in its environment, and nothing else.
ENVIRONMENT: Mapping[str, str] = {
    "PULLSNAP_PHASE": "`before` or `after`",
    "PULLSNAP_DESTINATION": "the destination's name (`name` in its [[destination]] table)",
    "PULLSNAP_BACKUP_HOST": "the backup host (`host`)",
    "PULLSNAP_SOURCES": "the destination's sources, one per line",
    "PULLSNAP_CONFIG": "the initiator's configuration file",
    "PULLSNAP_EXIT": 'after only: the run\'s exit code (README "Exit codes")',
    "PULLSNAP_RESULT": "after only: its name: ok, partial, refused, hook-failed, ...",
    "PULLSNAP_SNAPSHOT": "after only: the snapshot made, e.g. 2026-11-25T021700Z, or empty",
    "PULLSNAP_HOST": "after only: the name the backup host files this host under, or empty",
    "PULLSNAP_MESSAGE": "after only: the run's one-line message, or empty",
    "PATH": children.CHILD_PATH,
    "LC_ALL": "C",
    "HOME, USER, LOGNAME": "the initiator user's",
}


def hook_env(
    cfg: InitiatorConfig,
    dest: Destination,
    phase: str,
    user: pwd.struct_passwd,
    outcome: run.Outcome | None = None,
) -> dict[str, str]:
    """The whole environment of one hook (pure)."""
    env = children.child_env(
        HOME=user.pw_dir,
        USER=user.pw_name,
        LOGNAME=user.pw_name,
        PULLSNAP_PHASE=phase,
        PULLSNAP_DESTINATION=dest.name,
        PULLSNAP_BACKUP_HOST=dest.host,
        PULLSNAP_SOURCES="\n".join(dest.sources),
        PULLSNAP_CONFIG=cfg.path,
    )
    if outcome is not None:
        made = (errors.OK, errors.PARTIAL, errors.SUSPECT)
        result = outcome.result if outcome.code in made else {}
        env.update(
            PULLSNAP_EXIT=str(outcome.code),
            PULLSNAP_RESULT=errors.EXIT_NAMES.get(outcome.code, str(outcome.code)),
            PULLSNAP_SNAPSHOT=str(result.get("snapshot", "")),
            PULLSNAP_HOST=str(result.get("host", "")),
            PULLSNAP_MESSAGE=" ".join(str(outcome.message).split()),
        )
    return env


def _signal_group(pid: int | None, sig: int) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)


def failure_text(finished: children.Finished) -> str:
    """Why a hook failed, in a few words (pure)."""
    how = (
        f"was killed by signal {finished.signal}"
        if finished.code is None
        else f"failed with exit {finished.code}"
    )
    tail = finished.stderr_tail() or _last_line(finished.stdout)
    return how + (f": {tail}" if tail else "")


def _last_line(data: bytes) -> str:
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return lines[-1][-300:] if lines else ""


@defer.inlineCallbacks
def run_hook(
    reactor: Any,
    phase: str,
    argv: tuple[str, ...],
    timeout: float,
    env: Mapping[str, str],
    log: Callable[[str], None],
):
    """Run one hook to its end; raise HookFailed if it fails or overstays."""
    proto = children.CollectingProtocol(
        argv,
        on_stdout_line=lambda line: log(f"{phase}: {line}"),
        on_stderr_line=lambda line: log(f"{phase}: {line}"),
    )
    children.spawn(reactor, proto, children.with_pdeathsig([SETSID, *argv]), env, path="/")
    pid = children.pid_of(proto)
    pending: list[Any] = []

    def stop() -> None:
        _signal_group(pid, signal.SIGTERM)
        pending.append(reactor.callLater(GRACE, _signal_group, pid, signal.SIGKILL))

    try:
        finished = yield children.deadline(reactor, proto.ended, timeout, phase, on_expiry=stop)
    except errors.Timeout:
        # SIGKILL ends the group within GRACE; a daemon that left the group
        # but holds the hook's output open must not hold the run as well.
        ended = children.deadline(reactor, proto.ended, GRACE + 5, f"the {phase} hook's end")
        yield ended.addErrback(lambda failure: None)
        raise errors.HookFailed(phase, f"took longer than {timeout:g} s and was stopped") from None
    finally:
        for call in pending:
            if call.active():
                call.cancel()
    if not finished.ok():
        raise errors.HookFailed(phase, failure_text(finished))


@defer.inlineCallbacks
def around(
    reactor: Any,
    cfg: InitiatorConfig,
    dest: Destination,
    backup: Callable[[], defer.Deferred],
    log: Callable[[str, str], None],
):
    """`before`, the backup, `after`; returns (Outcome, after's HookFailed or None).

    `backup()` fires with a run.Outcome and never fails.
    """
    user = pwd.getpwuid(os.getuid())
    say: Callable[[str], None] = lambda text: log(dest.name, text)  # noqa: E731
    outcome = None
    if dest.before:
        try:
            yield run_hook(reactor, "before", dest.before, dest.before_timeout,
                           hook_env(cfg, dest, "before", user), say)  # fmt: skip
        except errors.HookFailed as e:
            outcome = run.Outcome(dest.name, e.exit_code, f"{e}: no backup was made")
    if outcome is None:
        outcome = yield backup()
    after_failed = None
    if dest.after:
        try:
            yield run_hook(reactor, "after", dest.after, dest.after_timeout,
                           hook_env(cfg, dest, "after", user, outcome), say)  # fmt: skip
        except errors.HookFailed as e:
            after_failed = e
    return outcome, after_failed
