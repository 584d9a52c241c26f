"""How each host is doing, from its attempts (pure): what `grabber status`,
the Prometheus textfile and the HTML report show.

A host is *stale* when its newest good snapshot began more than `max_age`
ago (`--max-age`, else the host's `max_age` policy), or when it has none.
Age counts from the start of the run (the snapshot's name): the data is as
old as the moment rsync began reading it.  Suspect snapshots (they shrank
too much, see sanity.py) are not good: they neither refresh the age nor
count as snapshots, and are listed on their own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pullsnap.grabber import hints
from pullsnap.grabber.store.base import recorded_added
from pullsnap.grabber.store.repository import GOOD_STATES, Attempt
from pullsnap.grabber.transfer.rsyncout import failed_summary
from pullsnap.units import human_duration, human_size

VERIFY_FILE = ".verify.json"  # written by `grabber verify`


@dataclass(frozen=True)
class Verify:
    """The last `grabber verify` of a host (its `.verify.json`)."""

    time: str
    snapshot: str
    result: str  # "ok" or "mismatch"
    checked: int
    mismatches: int


@dataclass(frozen=True)
class HostStatus:
    host: str
    max_age: float
    stale: bool
    last_good: str | None = None
    good_mode: str = ""  # the newest good snapshot's: "super" or "fake-super"
    age: float | None = None  # seconds since the newest good snapshot began
    last_attempt: str | None = None
    last_state: str = ""  # complete, partial, suspect, failed, interrupted, running, unknown
    last_message: str = ""
    # The newest finished run: its duration and what it moved.
    last_run: str | None = None
    last_run_state: str = ""
    last_seconds: float | None = None
    last_added: int | None = None  # bytes the newest run's snapshot took on disk (measured)
    last_added_inodes: int | None = None  # and inodes
    last_received: int | None = None  # bytes that came over the wire
    last_files: int | None = None
    good_added: int | None = None  # what the newest good snapshot added
    snapshots: int = 0  # good ones
    suspect: tuple[str, ...] = ()
    failed: int = 0
    interrupted: int = 0
    used: int | None = None  # bytes on disk, every inode once (usage.py)
    verify: Verify | None = None
    # Why the host is not plainly ok though fresh: its newest good snapshot
    # is partial (unreadable files, missing sources), when warn_partial.
    warnings: tuple[str, ...] = ()

    @property
    def warn(self) -> bool:
        return bool(self.warnings) and not self.stale


def parse_verify(value: Any) -> Verify | None:
    """A `.verify.json` body, or None when absent or malformed."""
    if not isinstance(value, dict) or value.get("result") not in ("ok", "mismatch"):
        return None
    mismatches = value.get("mismatches", [])
    checked = value.get("checked", 0)
    return Verify(
        time=str(value.get("time", "")),
        snapshot=str(value.get("snapshot", "")),
        result=str(value["result"]),
        checked=checked if isinstance(checked, int) and not isinstance(checked, bool) else 0,
        mismatches=len(mismatches) if isinstance(mismatches, list) else 0,
    )


def shown_state(attempt: Attempt, locked: bool = False) -> str:
    """An attempt's state as an operator should read it (`list`, `status`, the
    report): only good snapshots read complete or partial.

    A "running" record whose host lock is free belongs to a run that died
    (the next run marks it interrupted); a finished tree a crash left
    unpublished is published by the next run, and is no snapshot until then.
    """
    state = attempt.state
    if attempt.record.get("suspect"):
        return "suspect"
    if state == "running" and not locked:
        return "interrupted"
    if state in GOOD_STATES and not attempt.has_tree:
        return "unpublished" if attempt.has_incomplete else f"{state}?"
    return state


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def summarize(
    host: str,
    attempts: Sequence[Attempt],
    *,
    now: dt.datetime,
    max_age: float,
    locked: bool = False,
    verify: Verify | None = None,
    used: int | None = None,
    partial_is_good: bool = True,
    warn_partial: bool = True,
) -> HostStatus:
    """One host's status from its attempts, oldest first (pure).

    A "partial" snapshot (some files unreadable) counts as good unless the
    host's policy says `partial_is_good = false`."""
    good = [a for a in attempts if a.good and (a.state != "partial" or partial_is_good)]
    states = [shown_state(a, locked) for a in attempts]
    newest = good[-1] if good else None
    age = (now - newest.when).total_seconds() if newest else None
    finished = [a for a in attempts if "seconds" in a.record]
    run = finished[-1] if finished else None
    stats = run.record.get("stats", {}) if run else {}
    if not isinstance(stats, dict):
        stats = {}
    added = recorded_added(run.record) if run and (stats or "added" in run.record) else None
    last = attempts[-1] if attempts else None
    return HostStatus(
        host=host,
        max_age=max_age,
        stale=age is None or age > max_age,
        last_good=newest.name if newest else None,
        good_mode=str(newest.record.get("mode", "")) if newest else "",
        age=age,
        last_attempt=last.name if last else None,
        last_state=states[-1] if states else "",
        last_message=str(last.record.get("message", "")) if last else "",
        last_run=run.name if run else None,
        last_run_state=shown_state(run, locked) if run else "",
        last_seconds=float(run.record["seconds"]) if run else None,
        last_added=None if added is None else added.bytes,
        last_added_inodes=None if added is None else added.inodes,
        last_received=_int(stats.get("bytes_received")),
        last_files=_int(stats.get("files")),
        good_added=recorded_added(newest.record).bytes if newest else None,
        snapshots=len(good),
        suspect=tuple(a.name for a, s in zip(attempts, states, strict=True) if s == "suspect"),
        failed=states.count("failed"),
        interrupted=states.count("interrupted"),
        used=used,
        verify=verify,
        warnings=partial_warnings(newest) if newest is not None and warn_partial else (),
    )


def partial_warnings(newest: Attempt) -> tuple[str, ...]:
    """What a partial newest good snapshot lacks (pure): `snapshot NAME is partial:
    2 unreadable: /etc/shadow, /root; 1 missing: /srv/data`."""
    record = newest.record
    if newest.state != "partial":
        return ()
    failed = record.get("failed_paths")
    total = record.get("failed_paths_total")
    failed = [f for f in failed if isinstance(f, dict)] if isinstance(failed, list) else []
    total = total if isinstance(total, int) and not isinstance(total, bool) else len(failed)
    what = failed_summary(failed, total) or "some files could not be read"
    return (f"last good snapshot {newest.name} is partial: {what}",)


def as_json(s: HostStatus) -> dict[str, Any]:
    """The `grabber status --json` body of one host (stable keys)."""
    return {
        "host": s.host,
        "stale": s.stale,
        "max_age": s.max_age,
        "last_good": s.last_good,
        "good_mode": s.good_mode or None,
        "age": None if s.age is None else round(s.age, 3),
        "last_attempt": s.last_attempt,
        "last_state": s.last_state,
        "last_message": s.last_message,
        "last_run": s.last_run,
        "last_run_state": s.last_run_state,
        "last_seconds": s.last_seconds,
        "last_added": s.last_added,
        "last_added_inodes": s.last_added_inodes,
        "last_received": s.last_received,
        "last_files": s.last_files,
        "good_added": s.good_added,
        "snapshots": s.snapshots,
        "suspect": list(s.suspect),
        "failed": s.failed,
        "interrupted": s.interrupted,
        "used": s.used,
        "warnings": list(s.warnings),
        "verify": None
        if s.verify is None
        else {
            "time": s.verify.time,
            "snapshot": s.verify.snapshot,
            "result": s.verify.result,
            "checked": s.verify.checked,
            "mismatches": s.verify.mismatches,
        },
    }


# Nagios plugin return codes (Nagios plugin guidelines, "Plugin Return Codes").
NAGIOS_OK, NAGIOS_WARNING, NAGIOS_CRITICAL, NAGIOS_UNKNOWN = 0, 1, 2, 3


def nagios(
    statuses: Sequence[HostStatus], room: Sequence[str] = (), room_level: str = "ok"
) -> tuple[int, str]:
    """(plugin exit code, the one line Nagios/Icinga show) for these hosts (pure).

    CRITICAL: a host is stale, or the repository is below free_crit or
    free_inodes_crit (`room`: what is below, `room_level` "critical").
    WARNING: a suspect snapshot, a failed verify, a partial newest good
    snapshot (warn_partial: unreadable files, missing sources), or the repository below
    free_warn or free_inodes_warn.  Performance data: each host's age and
    its threshold, in seconds.
    """
    stale = [s for s in statuses if s.stale]
    worried = [s for s in statuses
               if s.suspect or (s.verify and s.verify.result != "ok") or s.warn]  # fmt: skip
    perf = " ".join(
        f"{s.host}_age={-1 if s.age is None else int(s.age)}s;;{int(s.max_age)}" for s in statuses
    )
    full = [f"repository ({'; '.join(room)})"] if room else []
    if not statuses:
        return NAGIOS_UNKNOWN, "PULLSNAP UNKNOWN - no hosts in the repository or the config"
    if stale or (full and room_level == "critical"):
        named = ", ".join(f"{s.host} ({_age_text(s)})" for s in stale)
        detail = ", ".join([*([f"stale: {named}"] if stale else []), *full])
        return NAGIOS_CRITICAL, f"PULLSNAP CRITICAL - {detail} | {perf}"
    if worried or full:
        detail = ", ".join([
            *(f"{s.host} ({_worry(s)})" for s in worried), *full])  # fmt: skip
        return NAGIOS_WARNING, f"PULLSNAP WARNING - {detail} | {perf}"
    return NAGIOS_OK, f"PULLSNAP OK - {len(statuses)} hosts fresh | {perf}"


def _worry(s: HostStatus) -> str:
    if s.suspect:
        return "suspect snapshot"
    if s.verify and s.verify.result != "ok":
        return "verify mismatch"
    return s.warnings[0].removeprefix("last good snapshot ")


def _age_text(s: HostStatus) -> str:
    if s.age is None:
        return "no good snapshot"
    return f"last good {human_duration(s.age)} ago, max {human_duration(s.max_age)}"


def render(statuses: Sequence[HostStatus], config: str = "") -> str:
    """The human `grabber status` text: one block per host (pure); the
    commands it suggests name `config`."""
    if not statuses:
        return "no hosts in the repository or the config\n"
    width = max(len(s.host) for s in statuses)
    pad = " " * (width + 9)
    out = []
    for s in statuses:
        flag = "STALE" if s.stale else "WARN" if s.warn else "ok"
        if s.last_good is None:
            out.append(f"{s.host:<{width}}  {flag:<5}  no good snapshot yet")
        else:
            assert s.age is not None
            mode = f" ({s.good_mode})" if s.good_mode else ""
            out.append(
                f"{s.host:<{width}}  {flag:<5}  last good {s.last_good}{mode}, "
                f"{human_duration(s.age)} ago (max {human_duration(s.max_age)})"
            )
        if s.last_run is not None:
            moved = []
            if s.last_added is not None:
                moved.append(f"+{human_size(s.last_added)} added")
            if s.last_received is not None:
                moved.append(f"{human_size(s.last_received)} received")
            took = human_duration(s.last_seconds or 0.0)
            out.append(f"{pad}last run  {s.last_run} {s.last_run_state}, {took}"
                       + "".join(f", {m}" for m in moved))  # fmt: skip
        if s.last_attempt is not None and s.last_attempt != s.last_run:
            out.append(f"{pad}now       {s.last_attempt} {s.last_state}")
        if s.last_state not in ("complete", "") and s.last_message:
            out.append(f"{pad}          {s.last_message}")
        used = f", {human_size(s.used)} used" if s.used is not None else ""
        plural = "" if s.snapshots == 1 else "s"
        out.append(
            f"{pad}{s.snapshots} snapshot{plural}{used}; suspect {len(s.suspect)}, "
            f"failed {s.failed}, interrupted {s.interrupted}"
        )
        for warning in s.warnings:
            out.append(f"{pad}WARN      {warning}")
        for name in s.suspect:
            accept = hints.grabber(config, "accept", s.host, name)
            out.append(f"{pad}SUSPECT   {name}: check it, then: {accept}")
        out.append(f"{pad}verify    {verify_text(s.verify)}")
    return "\n".join(out) + "\n"


def verify_text(v: Verify | None) -> str:
    if v is None:
        return "never"
    found = f", {v.mismatches} mismatches" if v.result != "ok" else ""
    return f"{v.result} at {v.time} ({v.snapshot}, {v.checked:,} checked{found})"
