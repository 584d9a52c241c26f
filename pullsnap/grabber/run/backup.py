"""One backup run under the host's lock, in phases.

    admit      may this host run now?              (refusals change nothing)
    (queue)    wait for a pull slot, in arrival order (session.slots)
    prepare    recover a crashed run, make room (retention.guard), plan the
               target and what it builds on (the store)
    pull       record "running", make the target tree, rsync into it, kept
               to the guard's budget (retention.watch)
    finish     record the verdict; on success publish, then the steps after
               it (manifest, retention, hooks) in that order

Each phase reads and fills in `Run` (context.py); the record is written only
through record.write.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from typing import Any

from pullsnap import caps, childenv, errors
from pullsnap.grabber.confine import receiver
from pullsnap.grabber.integrity import basemanifests, prehash, tree
from pullsnap.grabber.integrity.spool import Spool
from pullsnap.grabber.retention import guard
from pullsnap.grabber.retention.watch import SpaceWatch
from pullsnap.grabber.run import admission, record, sanity, steps
from pullsnap.grabber.run.context import Run
from pullsnap.grabber.session.slots import Slot
from pullsnap.grabber.store import sourcetrim
from pullsnap.grabber.store.base import recorded_added, recover
from pullsnap.grabber.store.repository import iso, parse_name
from pullsnap.grabber.store.space import is_no_space
from pullsnap.grabber.transfer import oldgate, pull


def admit(run: Run) -> bool:
    """Refuse before anything is touched (raise a PullsnapError); True when
    the operator's allowance (`grabber allow-run`) let the run in."""
    note = admission.admit(run.host, run.now(), run.cfg.policy_for(run.host.host).min_interval,
                           run.cfg.path)  # fmt: skip
    if note:
        run.out.log(note)
    return note is not None


def prepare(run: Run) -> None:
    for line in recover(run.store):
        run.out.log(line)
    # The trash is emptied after runs, outside the lock (session.serve), and
    # by the guard when it needs the space: never here, so no deletion
    # delays a run.
    # Other hosts' trees are read to weigh them; --super ones keep their
    # owners' modes (what the manifest walk does for its own tree).
    reading = functools.partial(tree.reading_as_receiver, run.mode, run.held)
    room = guard.make_room(run.cfg, run.store, run.out.log, run.now(), reading)
    run.budget = room.budget
    started = run.now()
    run.target = run.store.plan(run.host.new_name(started))
    run.record = record.running(run, iso(started), room.deleted)


def do_pull(run: Run) -> None:
    assert run.target is not None
    target, cfg, h = run.target, run.cfg, run.handoff
    record.write(run, {})
    with run.timed("begin"):
        begin(run)
    run.out.log(f"pulling {', '.join(h.paths)} into {run.host.host}/{run.name} ({run.mode})")
    private_dir = os.path.dirname(run.connect.known_hosts)
    # btrfs: the receiver sees its own subvolume and nothing of the host's
    # older snapshots, not even read-only (a read-only flag can be cleared
    # through a writable mount only: the namespace leaves none).
    with run.timed("confine"):
        jail = receiver.confine(
            cfg, run.mode, run.held, run.host.path, private_dir, h.port, run.out.log,
            write_dirs=[target.tree, *target.bases] if target.link else [target.tree],
            only_write_dirs=not target.link,
        )  # fmt: skip
    spec = pull.PullSpec(
        rsync=cfg.rsync, ssh=cfg.ssh, connect=run.connect, sources=h.paths,
        target=target.tree, link_dests=target.bases if target.link else (),
        excludes=h.excludes, mode=run.mode, timeout=cfg.rsync_timeout,
        compress=cfg.compress, confined=jail.prepared is not None, in_place=not target.link,
    )  # fmt: skip
    # Forked before rsync: no thread exists yet.  What grows with the number
    # of files (rsync's names, the digests, an old base manifest sorted) is
    # spooled in the host's directory, not held (integrity/spool.py).
    scratch = run.host.path
    hasher = prehash.Prehasher(target.tree, run.mode, run.held, scratch)
    paths = basemanifests.base_paths(run.host, list(target.bases))
    bases = basemanifests.BaseReader(paths, scratch)
    new_files = Spool(scratch)
    kept = SpaceWatch(cfg.repository, run.host.host, run.budget)
    try:
        with run.timed("rsync"):
            run.result = pull.run_rsync(
                pull.rsync_argv(spec), childenv.child_env(), run.out.progress, run.out.log,
                jail.preexec(), cfg.run_timeout, on_new_file=hasher.add, on_started=bases.start,
                watch=kept if kept.needed else None, new_files=new_files,
                idle=cfg.rsync_timeout,
            )  # fmt: skip
        run.state, run.code, run.message = pull.judge(run.result)
        # A backed-up host older than the btrfs store refuses --inplace: say what to do.
        refused = spec.in_place and oldgate.verdict(
            run.result.errors, run.host.host, lambda: run.host.newest_good() is not None, cfg.path
        )
        if refused:
            run.state, run.code, run.message = refused
        first = run.code == errors.OK and run.host.newest_good() is None
        interval = cfg.policy_for(run.host.host).min_interval
        if first and interval > 0:
            began = parse_name(run.name) or run.now()
            run.note = admission.first_run_note(run.host.host, began, interval, cfg.path)
        if run.made_snapshot and (reason := kept()):
            # Between two looks, or after the last: a snapshot that took what
            # is kept for others is not kept.
            run.result.stopped = reason
            run.state, run.code, run.message = pull.judge(run.result)
        if run.made_snapshot:
            with run.timed("hasher"):  # what it still took once rsync had ended
                run.prehashed = hasher.close()
    finally:
        run.base_manifests = bases.join()  # before anything forks again (hooks do)
        hasher.abort()
        jail.close()


def finish(run: Run) -> None:
    assert run.result is not None and run.target is not None
    fields = record.verdict(run.state, run.message, run.result, iso(run.now()))
    with run.timed("check"):
        if run.made_snapshot:
            # Before the record says so, and before publishing: a suspect
            # snapshot must not become `latest`, not even by recover() after a
            # crash between the two.
            found = sanity.check(run)
            fields.update(found.record)
            steps.take(run, found)
        try:
            record.write(run, fields, drop=("pid",))
        except errors.NoSpace:
            # The tree goes, which gives back what writing the record needs.  A
            # run that made no snapshot is recorded then; a snapshot is not kept
            # without its record (should that fail too, the record stays
            # "running" and the next run marks it interrupted).
            with contextlib.suppress(OSError):
                run.store.discard(run.name)
            if run.made_snapshot:
                raise
            record.write(run, fields, drop=("pid",))
    if not run.made_snapshot:
        steps.each(steps.after_failure(), run)
        record.phases(run)
        return
    with run.timed("publish"):
        run.store.publish(run.name)
        for reused in run.target.reused:
            run.store.discard(os.path.basename(reused).removesuffix(".incomplete"))
    steps.each(steps.after_success(), run)
    record.phases(run)


def begin(run: Run) -> None:
    """Make the tree rsync writes into; no room for it is the no-space outcome."""
    assert run.target is not None
    try:
        run.store.begin(run.target)
        if not run.target.link:
            # A copy of the last snapshot: what the host no longer sends goes
            # (rsync --delete sees only below the paths it transfers).
            with caps.effective_while(("dac_override",)):
                gone = sourcetrim.trim(run.target.tree, run.handoff.paths)
            if gone:
                run.out.log(
                    f"no longer among the sources: {', '.join(gone[:5])}"
                    + (f" and {len(gone) - 5} more" if len(gone) > 5 else "")
                )
    except OSError as e:
        if not is_no_space(e):
            raise
        text = (f"{run.host.host}: cannot make {run.target.tree}: {e.strerror}: the "
                "repository's filesystem is out of space or inodes")  # fmt: skip
        with contextlib.suppress(errors.NoSpace):
            record.write(run, {"state": "failed", "message": text, "end": iso(run.now())},
                         drop=("pid",))  # fmt: skip
        raise errors.NoSpace(text) from None


def verdict(run: Run) -> dict[str, Any]:
    """The result line the initiator gets."""
    stats = run.result.stats if run.result else {}
    added = recorded_added(run.record)
    return {
        "status": run.state,
        "exit": run.code,
        "message": run.message or (run.note if run.code == errors.OK else ""),
        "snapshot": run.name,
        "host": run.host.host,
        "files": stats.get("files", 0),
        "transferred": stats.get("bytes_received", 0),  # over the wire
        "added": added.bytes,  # what the snapshot took on disk (the store measured it)
        "added_inodes": added.inodes,
        "total": stats.get("total_size", 0),
        "seconds": round(run.result.seconds, 3) if run.result else 0,
        "mode": run.mode,
        "link_dest": run.record.get("link_dest", []),
    }


def run_backup(
    run: Run, queue: contextlib.AbstractContextManager[Slot] | None = None
) -> dict[str, Any]:
    """All phases, the host lock already held; `queue` holds a pull slot
    (session.slots) from after admission to the end of the run.

    Admission comes first, so a run that is refused never takes a place in
    the queue, and one that gave up waiting keeps the operator's allowance."""
    lifted = admit(run)
    with contextlib.ExitStack() as held:
        asked = time.monotonic()
        try:
            slot = held.enter_context(queue or contextlib.nullcontext(Slot(-1)))
        except errors.Timeout:
            if lifted:
                admission.allow_one_run(run.host)
            raise
        run.queue = slot.record() if slot.index >= 0 else {}
        run.queue_wait = time.monotonic() - asked
        with run.timed("prepare"):
            prepare(run)
        do_pull(run)
        finish(run)
    return verdict(run)
