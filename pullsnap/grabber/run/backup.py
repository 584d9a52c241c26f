"""One backup run under the host's lock, in phases.

    admit      may this host run now?              (refusals change nothing)
    prepare    recover a crashed run, free space (retention's order), pick link-dests
    pull       record "running", rsync into <name>.incomplete
    finish     record the verdict; on success publish, then the after-success
               steps (sanity checks, manifest, retention) in that order

Each phase is a function of `Run`, the run's context, so new checks slot in
without growing argument lists.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pullsnap
from pullsnap import errors, report
from pullsnap.config import GrabberConfig
from pullsnap.grabber.confine import receiver
from pullsnap.grabber.integrity import manifest, prehash
from pullsnap.grabber.retention import guard, prune
from pullsnap.grabber.run import admission, diskfull, hooks, sanity
from pullsnap.grabber.store.repository import HostRepo, iso
from pullsnap.grabber.transfer import pull
from pullsnap.handoff import Handoff
from pullsnap.units import human_size


class Output(Protocol):
    def log(self, text: str) -> None: ...
    def progress(self, p: report.Progress) -> None: ...


@dataclass
class Run:
    """Everything one run knows; phases read and extend it."""

    cfg: GrabberConfig
    host: HostRepo
    connect: pull.ConnectBack
    handoff: Handoff
    fingerprint: str
    mode: str
    held: tuple[str, ...]
    out: Output
    now: Callable[[], dt.datetime]
    name: str = ""
    link_dests: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)  # interrupted trees among link_dests
    record: dict[str, Any] = field(default_factory=dict)
    result: pull.PullResult | None = None
    # Digests the hasher made while rsync ran (prehash.py), by path.
    prehashed: dict[bytes, prehash.Hashed] = field(default_factory=dict)
    prehash_wait: float = 0.0  # seconds the hasher still took once rsync had ended
    # The link-dest snapshots' manifests, read while rsync ran; None: not read yet.
    bases: list[dict[bytes, manifest.Entry]] | None = None
    state: str = ""
    code: int = errors.FAILED
    message: str = ""


# --- admit ---------------------------------------------------------------------------


def admit(run: Run) -> None:
    """Refuse before anything is touched (raise a PullsnapError)."""
    note = admission.admit(run.host, run.now(), run.cfg.policy_for(run.host.host).min_interval)
    if note:
        run.out.log(note)


# --- prepare -------------------------------------------------------------------------


def guard_space(
    cfg: GrabberConfig, host: HostRepo, out: Output, now: dt.datetime | None = None
) -> list[str]:
    """Prune until the required space is free, or raise NoSpace.

    Victims in the order the time policy values them least (prune.py,
    retention.GUARD_TIERS); another host's snapshots only while its lock is free.
    """
    now = now or dt.datetime.now(dt.UTC)
    growth = [int(a.record.get("stats", {}).get("transferred_size", 0)) for a in host.good()]
    required = guard.required_free(cfg.min_free_abs, cfg.min_free_avg, growth)
    deleted: list[str] = []
    busy: set[str] = set()
    trash_emptied = False
    while True:
        st = os.statvfs(cfg.repository)
        free = st.f_bavail * st.f_frsize
        if free >= required:
            return deleted
        if not trash_emptied:
            # An interrupted deletion of this host's is the cheapest space there is.
            host.empty_trash()
            trash_emptied = True
            continue
        victim = prune.guard_victim(cfg, now, busy)
        if victim is None:
            raise errors.NoSpace(
                f"need {human_size(required)} free in {cfg.repository}, have {human_size(free)}"
                f" after pruning {len(deleted)} snapshot(s); nothing more may go (min_keep = "
                f"{cfg.min_keep}, keep_within, newest good): add space or lower "
                "min_free_abs/min_keep/keep_within"
            )
        out.log(f"low on space: deleting {victim.host}/{victim.name}")
        if prune.delete_for_space(cfg, host, victim, now):
            deleted.append(f"{victim.host}/{victim.name}")
        else:
            busy.add(victim.host)


def prepare(run: Run) -> None:
    host = run.host
    for line in host.recover():
        run.out.log(line)
    # The trash is emptied after runs, outside the lock (serve.py), and by the
    # guard when it needs the space: never here, so no deletion delays a run.
    deleted = guard_space(run.cfg, host, run.out, run.now())
    base = host.newest_good()
    run.reused = host.reusable_trees()
    # A suspect snapshot is no base, but its files need not travel again.
    suspect = [a for a in host.attempts() if a.has_tree and a.record.get("suspect")]
    newer_suspect = [host.tree(a.name) for a in suspect[-1:] if not base or a.name > base.name]
    run.link_dests = ([host.tree(base.name)] if base else []) + run.reused + newer_suspect
    started = run.now()
    run.name = host.new_name(started)
    h = run.handoff
    run.record = {
        "state": "running",
        "begin": iso(started),
        "pid": os.getpid(),
        "mode": run.mode,
        "paths": list(h.paths),
        "excludes": list(h.excludes),
        "link_dest": [os.path.basename(p) for p in run.link_dests],
        "initiator": {"address": run.connect.address, "port": run.connect.port, "user": h.user},
        "key_fingerprint": run.fingerprint,
        "grabber": socket.gethostname(),
        "versions": {"pullsnap": pullsnap.__version__},
        "pruned_before": deleted,
    }


# --- pull ----------------------------------------------------------------------------


def rsync_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


def do_pull(run: Run) -> None:
    host, cfg, h = run.host, run.cfg, run.handoff
    host.write_record(run.name, run.record)
    os.mkdir(host.incomplete(run.name), 0o700)
    run.out.log(f"pulling {', '.join(h.paths)} into {host.host}/{run.name} ({run.mode})")
    private_dir = os.path.dirname(run.connect.known_hosts)
    jail = receiver.confine(
        cfg, run.mode, run.held, host.path, private_dir, h.port, run.out.log,
        write_dirs=[host.incomplete(run.name), *run.link_dests],
    )  # fmt: skip
    spec = pull.PullSpec(
        rsync=cfg.rsync, ssh=cfg.ssh, connect=run.connect, sources=h.paths,
        target=host.incomplete(run.name), link_dests=tuple(run.link_dests), excludes=h.excludes,
        mode=run.mode, timeout=cfg.rsync_timeout, compress=cfg.compress,
        confined=jail.prepared is not None,
    )  # fmt: skip
    # Forked before rsync: no thread exists yet.
    hasher = prehash.Prehasher(host.incomplete(run.name), run.mode, run.held)
    bases = manifest.BaseReader(manifest.base_paths(host, run.link_dests))
    try:
        run.result = pull.run_rsync(
            pull.rsync_argv(spec), rsync_env(), run.out.progress, run.out.log, jail.preexec(),
            cfg.run_timeout, on_new_file=hasher.add, on_started=bases.start,
        )  # fmt: skip
        run.state, run.code, run.message = pull.judge(run.result)
        if run.state in ("complete", "partial"):
            waited = time.monotonic()
            run.prehashed = hasher.close()
            run.prehash_wait = time.monotonic() - waited
    finally:
        run.bases = bases.join()  # before anything forks again (hooks do)
        hasher.abort()
        jail.close()


# --- finish --------------------------------------------------------------------------


def after_success_steps() -> list[Callable[[Run], None]]:
    """Steps after a successful publish, in order.  Each may update the
    record (and must write it back), log, or raise a PullsnapError, which is
    logged as a warning: the snapshot itself is already safe."""
    return [manifest.record_manifest, prune.after_success, hooks.after_success]


def after_failure_steps() -> list[Callable[[Run], None]]:
    """Steps after a run that made no snapshot (its record is written)."""
    return [diskfull.after_failure, hooks.after_failure]


def _each(steps: list[Callable[[Run], None]], run: Run) -> None:
    for step in steps:
        try:
            step(run)
        except errors.PullsnapError as e:
            run.out.log(f"warning: {step.__module__.rsplit('.', 1)[-1]}: {e}")


def finish(run: Run) -> None:
    assert run.result is not None
    host, result = run.host, run.result
    run.record.update(
        state=run.state,
        end=iso(run.now()),
        seconds=round(result.seconds, 3),
        rsync_exit=result.exit_code,
        stats=result.stats,
        message=run.message,
        errors=result.errors[-20:],
    )
    if result.failed_paths_total:
        # rsync exit 23: which files it could not read (rsyncout.failed_path).
        run.record.update(
            failed_paths=result.failed_paths, failed_paths_total=result.failed_paths_total
        )
    run.record.pop("pid", None)
    if run.state in ("complete", "partial"):
        # Before the record says so, and before publishing: a suspect
        # snapshot must not become `latest`, not even by recover() after a
        # crash between the two.
        sanity.check(run)
    host.write_record(run.name, run.record)
    if run.state not in ("complete", "partial"):
        _each(after_failure_steps(), run)
        return
    host.publish(run.name)
    for tree in run.reused:
        host.discard_incomplete(os.path.basename(tree)[: -len(".incomplete")])
    _each(after_success_steps(), run)


def verdict(run: Run) -> dict[str, Any]:
    """The result line the initiator gets."""
    stats = run.result.stats if run.result else {}
    return {
        "status": run.state,
        "exit": run.code,
        "message": run.message,
        "snapshot": run.name,
        "host": run.host.host,
        "files": stats.get("files", 0),
        "transferred": stats.get("bytes_received", 0),  # over the wire
        "added": stats.get("transferred_size", 0),  # new or changed files
        "total": stats.get("total_size", 0),
        "seconds": round(run.result.seconds, 3) if run.result else 0,
        "mode": run.mode,
        "link_dest": run.record.get("link_dest", []),
    }


def run_backup(run: Run) -> dict[str, Any]:
    """All phases, the host lock already held."""
    admit(run)
    prepare(run)
    do_pull(run)
    finish(run)
    return verdict(run)
