"""`grabber delete HOST SNAPSHOT`: an operator removes one snapshot (a suspect
one, or one that must not be kept), through the store, under the host lock.

The newest good snapshot (`latest`, what the next run builds on and what
status counts) goes only with --force: its record first stops saying it is
good (state "deleting"), so the store's own rule, never the newest good
one, still holds, and `latest` moves to the one before it (or goes, when
none is left).  Every deletion is recorded in `<host>/.deletions.jsonl`,
one JSON object a line: when, who (the user, and who ran sudo), what, its
state and mode, whether forced, and the reason given.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import pwd
from collections.abc import Mapping
from typing import Any

from pullsnap import errors
from pullsnap.grabber.store.base import Store
from pullsnap.grabber.store.repository import LATEST, HostRepo, iso, parse_name
from pullsnap.grabber.store.space import is_no_space

DELETIONS = ".deletions.jsonl"


def who(uid: int, environ: Mapping[str, str]) -> str:
    """The user deleting, and who became root through sudo (pure but for the name)."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    sudo = environ.get("SUDO_USER")
    return f"{name} (sudo from {sudo})" if sudo and uid == 0 else name


def entry(host: HostRepo, name: str, record: Mapping[str, Any], *, by: str, forced: bool,
          reason: str, now: dt.datetime) -> dict[str, Any]:  # fmt: skip
    """The line a deletion leaves (pure)."""
    return {"at": iso(now), "by": by, "host": host.host, "snapshot": name,
            "state": "suspect" if record.get("suspect") else record.get("state", "unknown"),
            "mode": record.get("mode", ""), "forced": forced, "reason": reason}  # fmt: skip


def remember(host: HostRepo, line: Mapping[str, Any]) -> None:
    path = os.path.join(host.path, DELETIONS)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)  # fmt: skip
    try:
        os.write(fd, (json.dumps(line, sort_keys=True) + "\n").encode())
    finally:
        os.close(fd)
    host.owned_by_grabber(path)


def deletions(host: HostRepo) -> list[dict[str, Any]]:
    """What `remember` wrote, oldest first (malformed lines left out)."""
    try:
        with open(os.path.join(host.path, DELETIONS), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        with contextlib.suppress(ValueError):
            value = json.loads(line)
            if isinstance(value, dict):
                found.append(value)
    return found


def delete(store: Store, name: str, *, force: bool, by: str, reason: str = "",
           now: dt.datetime, hint: str = "") -> dict[str, Any]:  # fmt: skip
    """Delete one snapshot; the deletion's record line.  `hint`: the command
    with --force, for the refusal to name."""
    host = store.host
    holder = {"pid": os.getpid(), "since": iso(now), "by": "grabber delete"}
    with host.try_lock(holder) as locked:
        if not locked:
            raise errors.Locked(f"{host.lock_holder()}: try again when it is done")
        record = host.read_record(name) if parse_name(name) is not None else None
        if record is None or record.get("host") != host.host:
            raise errors.NotOurSnapshot(host.path, name)
        newest = host.newest_good()
        if newest is not None and newest.name == name:
            others = len(host.good()) - 1
            if not force:
                only = "its only good snapshot" if others == 0 else "the newest good one (latest)"
                raise errors.DeletionRefused(
                    f"{name} is {host.host}'s {only}: to delete it anyway: {hint}"
                )
            host.write_record(name, {**record, "state": "deleting", "deleted_by": by})
        line = entry(host, name, record, by=by, forced=force, reason=reason, now=now)
        try:
            remember(host, line)
            logged = True
        except OSError as e:
            if not is_no_space(e):
                raise
            logged = False  # once the trash is empty there is room
        store.delete(name, now=False)
        newest = host.newest_good()
        if newest is not None:
            host.latest_follows()
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(host.path, LATEST))
    store.empty_trash()
    if not logged:
        remember(host, line)
    return line
