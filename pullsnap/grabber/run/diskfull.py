"""A run that filled the repository's filesystem (rsync: ENOSPC), or that
the free-space watch stopped (retention/watch.py: it would have taken what
is kept for other hosts' next runs).

Rule: its `<name>.incomplete` tree is removed at once (its record stays,
state "failed", with `no_space`).  Kept, it would hold the filesystem full,
so that neither the next run nor the free-space guard's pruning could make
progress; what it had stored is cheap to fetch again compared with a
repository that stays full.  The exit code is NO_SPACE (5), like the
guard's refusal before a run, and the message names the space the run
needed against the space there was.
"""

from __future__ import annotations

import os

from pullsnap import errors
from pullsnap.grabber.run.context import Found, Run
from pullsnap.grabber.store.space import free_space
from pullsnap.units import human_size


def message(host: str, name: str, root: str, free: int, received: int) -> str:
    """One line an operator can act on (pure)."""
    got = f"it had received {human_size(received)} when the disk was full; " if received else ""
    return (
        f"{host}: the repository filled up: snapshot {name} needs more than the "
        f"{human_size(free)} free in {root} ({got}its partial tree is removed): add space, "
        "or let the free-space guard prune first (raise min_free_abs, lower min_keep)"
    )


def after_failure(run: Run) -> Found:
    """After-failure step: on a full disk, remove the tree and say what was missing."""
    if run.code != errors.NO_SPACE:
        return Found()
    host = run.host
    root = run.cfg.repository
    before = free_space(root)
    if os.path.isdir(host.incomplete(run.name)):
        run.store.discard(run.name)
    after = free_space(root)
    # rsync removes the file it was writing; its progress counted the bytes.
    received = max(after.bytes - before.bytes, run.result.received if run.result else 0)
    stopped = run.result.stopped if run.result else ""
    text = stopped or message(host.host, run.name, root, after.bytes, received)
    run.out.log(text)
    facts = {"free": after.bytes, "free_inodes": after.inodes, "received": received}
    if stopped:
        facts["kept_for"] = {"hosts": list(run.budget.hosts), **run.budget.keep.as_record()}
    return Found({"message": text, "no_space": facts, "tree": "removed"}, message=text)
