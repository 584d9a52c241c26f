"""The operator's hooks on the backup host: on_success, on_failure, on_stale.

    on_success  after a run that made a good snapshot (complete, or partial)
    on_failure  after a run that made none, or only a suspect one
    on_stale    from `grabber status`, once per host each time it goes stale

A hook is an argv from the grabber config (a string there means
`/bin/sh -c STRING`).  It runs as whoever runs the grabber (its user after a
backup, the operator for `grabber status`) with stdin from /dev/null, its
output captured (the last lines are logged when it fails), its own process
group, killed whole after `hook_timeout`, holding no capabilities, and this
environment and nothing else:

    PULLSNAP_EVENT        success, failure or stale
    PULLSNAP_HOST         the host (from its authorized_keys binding)
    PULLSNAP_SNAPSHOT     the run's snapshot; stale: the newest good one, or empty
    PULLSNAP_STATE        complete, partial, suspect, failed ...; stale: stale
    PULLSNAP_EXIT         the run's exit code (README "Exit codes"); stale: 11
    PULLSNAP_MESSAGE      the run's one-line verdict
    PULLSNAP_LOG_TAIL     the run's last rsync error lines, newline-separated
    PULLSNAP_REPOSITORY   the repository root
    PULLSNAP_SNAPSHOT_DIR <repository>/<host>/<snapshot> when that tree exists
    PULLSNAP_RECORD       the snapshot's status record (JSON) when it exists
    PULLSNAP_AGE          stale: seconds since the newest good snapshot began, or empty
    PULLSNAP_MAX_AGE      stale: the threshold in seconds
    PATH, LC_ALL=C, HOME, USER, LOGNAME

Text a backed-up host influences (file names inside rsync's messages) only
ever travels in the environment, never in argv or in a command string: a
shell hook that writes "$PULLSNAP_LOG_TAIL" quoted keeps it data.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pullsnap import caps, errors
from pullsnap.childenv import child_env
from pullsnap.config import GrabberConfig
from pullsnap.grabber.run.context import Found, Run
from pullsnap.grabber.store import atomicfile
from pullsnap.grabber.views.health import HostStatus

OUTPUT_TAIL = 2000  # characters of a hook's output kept for the log
ALERTED = ".stale-alerted.json"  # in the repository root: host -> newest good when alerted


@dataclass(frozen=True)
class HookResult:
    code: int | None  # None: killed at the deadline
    output: str


def environment(event: str, facts: Mapping[str, str]) -> dict[str, str]:
    """The hook's whole environment (pure apart from the user lookup)."""
    try:
        entry = pwd.getpwuid(os.geteuid())
        user, home = entry.pw_name, entry.pw_dir
    except KeyError:
        user, home = str(os.geteuid()), "/"
    env = child_env(HOME=home, USER=user, LOGNAME=user, PULLSNAP_EVENT=event)
    for key, value in facts.items():
        env[f"PULLSNAP_{key.upper()}"] = value.replace("\0", "")  # execve(2) cannot carry NUL
    return env


def _drop_capabilities() -> None:
    # In the child, before exec: the grabber may hold the receiver's
    # capabilities (permitted, from its launcher); a hook gets none.
    caps.hold_quietly(())


def run_hook(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> HookResult:
    """Run one hook to its end or its deadline; never raises for its exit."""
    preexec = _drop_capabilities if caps.read_state().permitted else None
    try:
        child = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=dict(env), start_new_session=True,
            preexec_fn=preexec, close_fds=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as e:
        return HookResult(127, f"cannot start {argv[0]}: {e}")
    try:
        out, _ = child.communicate(timeout=timeout)
        code: int | None = child.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        try:
            out, _ = child.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # something left the group holding the pipe
            child.kill()
            out = b""
        child.wait()
        code = None
    return HookResult(code, out.decode("utf-8", "replace")[-OUTPUT_TAIL:])


def fire(cfg: GrabberConfig, event: str, facts: Mapping[str, str]) -> None:
    """Run the configured hook for `event`, if any; raise RunFailed if it failed."""
    argv = {"success": cfg.on_success, "failure": cfg.on_failure, "stale": cfg.on_stale}[event]
    if not argv:
        return
    done = run_hook(argv, environment(event, facts), cfg.hook_timeout)
    if done.code == 0:
        return
    if done.code is None:
        why = f"was stopped after hook_timeout ({cfg.hook_timeout:g} s)"
    elif done.code < 0:
        why = f"was killed by signal {-done.code}"
    else:
        why = f"exited with {done.code}"
    last = done.output.strip().splitlines()[-1:] or [""]
    raise errors.RunFailed(f"on_{event} hook {argv[0]} {why}" + (f": {last[0]}" if last[0] else ""))


# --- after a backup (steps of backup.py) ------------------------------------------


def run_facts(run: Run) -> dict[str, str]:
    """What a hook learns about a finished run."""
    host, name = run.host, run.name
    errors_tail = run.result.errors[-20:] if run.result is not None else []
    return {
        "host": host.host,
        "snapshot": name,
        "state": "suspect" if run.record.get("suspect") else run.state,
        "exit": str(run.code),
        "message": run.message,
        "log_tail": "\n".join(errors_tail),
        "repository": run.cfg.repository,
        "snapshot_dir": host.tree(name) if os.path.isdir(host.tree(name)) else "",
        "record": host.record_path(name) if os.path.exists(host.record_path(name)) else "",
    }


def after_success(run: Run) -> Found:
    """Last after-success step: on_success, or on_failure for a suspect snapshot."""
    event = "failure" if run.record.get("suspect") else "success"
    fire(run.cfg, event, run_facts(run))
    return Found()


def after_failure(run: Run) -> Found:
    """Last after-failure step: on_failure."""
    fire(run.cfg, "failure", run_facts(run))
    return Found()


# --- stale hosts (grabber status) ------------------------------------------------


def stale_facts(cfg: GrabberConfig, s: HostStatus) -> dict[str, str]:
    tree = os.path.join(cfg.repository, s.host, s.last_good) if s.last_good else ""
    return {
        "host": s.host,
        "snapshot": s.last_good or "",
        "state": "stale",
        "exit": str(errors.STALE),
        "message": f"no good snapshot for {s.host} within max_age {s.max_age:g} s",
        "log_tail": s.last_message,
        "repository": cfg.repository,
        "snapshot_dir": tree,
        "record": tree + ".json" if tree else "",
        "age": "" if s.age is None else f"{s.age:.0f}",
        "max_age": f"{s.max_age:g}",
    }


def due_alerts(
    statuses: Sequence[HostStatus], alerted: Mapping[str, str]
) -> tuple[list[HostStatus], dict[str, str]]:
    """(hosts to alert now, what to remember) (pure).

    A host is alerted once per stale spell: `alerted` maps host -> its newest
    good snapshot ("" for none) when on_stale last ran.  A host that is fresh
    again is forgotten, so its next spell alerts again.
    """
    remember = dict(alerted)
    due = []
    for s in statuses:
        if not s.stale:
            remember.pop(s.host, None)
            continue
        if alerted.get(s.host) != (s.last_good or ""):
            due.append(s)
    return due, remember


def alert_stale(
    cfg: GrabberConfig, statuses: Sequence[HostStatus], warn: Callable[[str], None]
) -> list[str]:
    """Run on_stale for each host newly stale; return the hosts alerted."""
    if not cfg.on_stale:
        return []
    path = os.path.join(cfg.repository, ALERTED)
    remembered = atomicfile.read_json(path)
    alerted = remembered if isinstance(remembered, dict) else {}
    due, remember = due_alerts(statuses, alerted)
    fired = []
    for s in due:
        try:
            fire(cfg, "stale", stale_facts(cfg, s))
        except errors.PullsnapError as e:
            warn(f"warning: {e}")
            continue  # not remembered: tried again next time
        remember[s.host] = s.last_good or ""
        fired.append(s.host)
    if remember != alerted:
        try:
            atomicfile.replace_json(path, remember, owner_of=cfg.repository)
        except OSError as e:
            warn(f"warning: cannot remember alerts in {path} ({e.strerror}): on_stale runs again")
    return fired
