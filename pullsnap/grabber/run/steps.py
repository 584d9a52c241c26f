"""The steps after the pull, in order, each a function of the run that
returns what it found (context.Found); `each` merges that into the record
(record.write) and the verdict.

    after a snapshot    manifest (and what the snapshot took on disk, the
                        store's meter shown the tree by the same walk),
                        retention, hooks (on_success, or on_failure for a
                        suspect one)
    after none          a full disk's tree goes (diskfull), hooks (on_failure)

A step that fails raises a PullsnapError, which is logged as a warning: the
snapshot itself is already safe.  No room for what a step writes (NoSpace)
is the run's no-space outcome: exit 5, the snapshot kept.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pullsnap import errors
from pullsnap.grabber.integrity import basemanifests, manifest
from pullsnap.grabber.integrity.spool import Spool
from pullsnap.grabber.retention import prune
from pullsnap.grabber.run import diskfull, hooks, record
from pullsnap.grabber.run.context import Found, Run, Step


def write_manifest(run: Run) -> Found:
    """`<name>.manifest`, from the digests the hasher made while rsync ran
    and the bases' manifests read meanwhile; and what the snapshot took on
    disk ("added"), measured by the store's meter on the same walk."""
    assert run.target is not None and run.result is not None
    started = time.monotonic()
    bases = run.base_manifests
    if bases is None:
        paths = basemanifests.base_paths(run.host, list(run.target.bases))
        bases = basemanifests.open_all(paths, run.host.path)
    meter = run.store.meter(run.name)
    # rsync names every file it writes (new_files), in place or not; only a
    # file it failed half-way through goes unnamed, and only in a run that
    # ended with errors (exit 23 or 24): then the store's cutoff (btrfs:
    # ctimes) says which files the run may have touched, at a stat each.
    written_after = run.store.written_after(run.name) if run.state != "complete" else None
    try:
        stats = manifest.make(run.host, run.name, run.result.new_files, bases, run.prehashed,
                              run.mode, run.held, meter, written_after)  # fmt: skip
    except errors.NoSpace as e:
        # The walk was done; only writing the manifest failed.
        text = f"snapshot {run.name} kept, but {e}"
        run.out.log(f"warning: {text}")
        return Found({"added": meter.result().as_record()}, code=errors.NO_SPACE, message=text)
    finally:  # the spools' files go (they have no names: closing frees them)
        for held in (run.result.new_files, run.prehashed, *bases):
            if isinstance(held, Spool | basemanifests.BaseManifest):
                held.close()
    # All of the step (reading the bases, the walk, writing), and the
    # hasher's part after rsync ended.
    stats.seconds = time.monotonic() - started + run.phases.get("hasher", 0.0)
    if stats.problems:
        run.out.log(f"warning: manifest: {len(stats.problems)} file(s) not hashed, e.g. "
                    f"{stats.problems[0]}")  # fmt: skip
    return Found({"manifest": stats.as_record(), "added": meter.result().as_record()})


def apply_retention(run: Run) -> Found:
    """The time rules, on the run's host (its lock held)."""
    removed = prune.after_run(run.cfg, run.store, run.name, run.now(), run.out.log)
    return Found({"pruned_after": removed} if removed else {})


def after_success() -> list[tuple[str, Step]]:
    return [("manifest", write_manifest), ("prune", apply_retention),
            ("hooks", hooks.after_success)]  # fmt: skip


def after_failure() -> list[tuple[str, Step]]:
    return [("diskfull", diskfull.after_failure), ("hooks", hooks.after_failure)]


def take(run: Run, found: Found) -> None:
    """A step's change to the verdict."""
    if found.code is not None:
        run.code = found.code
    if found.message is not None:
        run.message = found.message


def each(named: Sequence[tuple[str, Step]], run: Run) -> None:
    for name, step in named:
        try:
            with run.timed(name):
                found = step(run)
        except errors.PullsnapError as e:
            run.out.log(f"warning: {name}: {e}")
            continue
        take(run, found)
        if found.record:
            try:
                record.write(run, found.record)
            except errors.NoSpace as e:
                run.out.log(f"warning: {name}: {e}")
                take(run, Found(code=errors.NO_SPACE, message=str(e)))
