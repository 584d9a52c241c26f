"""The run's record, `<host>/<name>.json`: what goes into it, and the one
place that writes it.

    prepare      state "running", begin, pid, mode, paths, excludes,
                 link_dest, initiator, key_fingerprint, grabber, versions,
                 pruned_before
    finish       state, end, seconds, rsync_exit, stats, message, errors,
                 failed_paths[_total], suspect; pid goes
    steps        manifest, pruned_after, no_space/tree (each step's Found)
    last         phases: the seconds each phase took (prepare, begin, confine,
                 rsync, hasher, check, publish and each step by name)

The record is written whole each time (HostRepo.write_record: atomically).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import pullsnap
from pullsnap import errors
from pullsnap.grabber.run.context import Run
from pullsnap.grabber.transfer.pull import PullResult


def write(run: Run, fields: Mapping[str, Any], drop: Iterable[str] = ()) -> None:
    """Merge `fields` into the run's record, leave out `drop`, write it."""
    run.record.update(fields)
    for key in drop:
        run.record.pop(key, None)
    run.host.write_record(run.name, run.record)


def phases(run: Run) -> None:
    """The seconds each phase took, written last: where the run's time went
    (a record without room for it keeps what it had)."""
    with contextlib.suppress(errors.NoSpace):
        write(run, {"phases": dict(run.phases)})


def running(run: Run, begin: str, pruned_before: list[str]) -> dict[str, Any]:
    """The record of a run about to pull (pure but for the host's name)."""
    assert run.target is not None
    h = run.handoff
    return {
        "state": "running",
        "begin": begin,
        "pid": os.getpid(),
        "mode": run.mode,
        "paths": list(h.paths),
        "excludes": list(h.excludes),
        "link_dest": [os.path.basename(p) for p in run.target.bases],
        "initiator": {"address": run.connect.address, "port": run.connect.port, "user": h.user},
        "key_fingerprint": run.fingerprint,
        "grabber": socket.gethostname(),
        "versions": {"pullsnap": pullsnap.__version__},
        "pruned_before": pruned_before,
        "queue_wait": round(run.queue_wait, 3),
        **({"queue": run.queue} if run.queue else {}),
    }


def verdict(state: str, message: str, result: PullResult, end: str) -> dict[str, Any]:
    """What the pull came to (pure)."""
    fields: dict[str, Any] = {
        "state": state,
        "end": end,
        "seconds": round(result.seconds, 3),
        "rsync_exit": result.exit_code,
        "stats": result.stats,
        "message": message,
        "errors": result.errors[-20:],
    }
    if result.failed_paths_total:
        # rsync exit 23: which files it could not read (rsyncout.failed_path).
        fields.update(
            failed_paths=result.failed_paths, failed_paths_total=result.failed_paths_total
        )
    return fields
