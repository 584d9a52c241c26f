"""Retention on disk: `grabber prune` and the step after each run.

The decisions are rules.py's (pure); this module reads the repository,
holds locks and deletes.  Deleting is two steps: under the host's lock each
victim is renamed into `<host>/.trash/` (atomic, instant), and the trash is
emptied after the lock is released, so a large deletion never holds up the
next backup.  A deletion that was interrupted is finished by the next prune
(or by the guard, when it needs the space).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence

from pullsnap import errors
from pullsnap.config import GrabberConfig
from pullsnap.grabber import hints
from pullsnap.grabber.retention import rules
from pullsnap.grabber.store.base import Store, store_of
from pullsnap.grabber.store.repository import INCOMPLETE, Attempt, HostRepo, hosts, iso
from pullsnap.names import check_host_name


def running_bases(attempts: Sequence[Attempt]) -> dict[str, str]:
    """The link-dest trees named by running records: never removed under them."""
    protect: dict[str, str] = {}
    for a in attempts:
        if a.state == "running":
            for tree in a.record.get("link_dest", []):
                base = str(tree).removesuffix(INCOMPLETE)
                protect[base] = f"link-dest of the running {a.name}"
    return protect


def decision_for(
    cfg: GrabberConfig, host: HostRepo, now: dt.datetime, fresh: str = ""
) -> tuple[rules.Decision, list[Attempt]]:
    attempts = host.attempts()
    policy = cfg.policy_for(host.host)
    anchor = rules.anchor_for(attempts, policy, now, exclude=fresh)
    decision = rules.decide(
        attempts, policy, cfg.min_keep, anchor, host.host, running_bases(attempts), fresh
    )
    return decision, attempts


def apply(store: Store, decision: rules.Decision, warn: Callable[[str], None]) -> list[str]:
    """Move what the decision removes aside (host lock held); the trash is
    emptied once the lock is released."""
    removed = []
    for name in decision.remove:
        try:
            store.delete(name, now=False)
        except (errors.PullsnapError, OSError) as e:
            warn(f"warning: {store.host.host}/{name} not removed: {e}")
            continue
        removed.append(name)
    return removed


def lines(host: str, decision: rules.Decision, removing: str = "remove") -> list[str]:
    """What `prune` prints: each attempt, kept (with its reasons) or removed (why)."""
    width = len(removing)
    out = []
    for name in sorted({*decision.keep, *decision.remove}):
        if name in decision.remove:
            out.append(f"{host} {name}  {removing.ljust(width)}  {decision.remove[name]}")
        else:
            out.append(f"{host} {name}  {'keep'.ljust(width)}  {'; '.join(decision.keep[name])}")
    return out


# --- after each successful run -------------------------------------------------------


def after_run(
    cfg: GrabberConfig, store: Store, name: str, now: dt.datetime, log: Callable[[str], None]
) -> list[str]:
    """Apply the rules to the host of a run that made `name` (lock held); what went."""
    host = store.host
    mine = next((a for a in host.attempts() if a.name == name), None)
    if mine is None or not rules.counts_as_good(mine, cfg.policy_for(host.host)):
        log("retention: not applied, this run made no good snapshot")
        return []
    decision, _ = decision_for(cfg, host, now, fresh=name)
    removed = apply(store, decision, log)
    if removed:
        log(f"retention: removed {', '.join(removed)}")
    return removed


# --- `grabber prune` -----------------------------------------------------------------------


def prune_host(
    cfg: GrabberConfig, store: Store, now: dt.datetime, dry_run: bool, say: Callable[[str], None]
) -> bool:
    """One host; False when it was skipped because a backup holds its lock."""
    host = store.host
    if dry_run:
        decision, _ = decision_for(cfg, host, now)
        for line in lines(host.host, decision, "would remove"):
            say(line)
        return True
    with host.try_lock({"pid": os.getpid(), "since": iso(now), "by": "grabber prune"}) as locked:
        if not locked:
            say(f"{host.host}: skipped, {host.lock_holder().split(': ', 1)[-1]}")
            return False
        decision, _ = decision_for(cfg, host, now)
        removed = set(apply(store, decision, say))
    for line in lines(host.host, decision):
        say(line)
    if len(removed) < len(decision.remove):
        say(f"{host.host}: {len(decision.remove) - len(removed)} could not be removed (above)")
    # Outside the lock: a new backup of this host need not wait for this.
    try:
        store.empty_trash()
    except OSError as e:
        # Root's directories of a --super snapshot, without the launcher's
        # capabilities: a backup (through the launcher) finishes the job.
        again = hints.grabber(cfg.path, "prune", host.host)
        say(f"warning: {host.host}: the trash is not empty ({e.strerror}): the next backup of "
            f"{host.host} empties it, or run as root: {again}")  # fmt: skip
    return True


def selected_hosts(root: str, names: Sequence[str], config: str = "") -> list[str]:
    present = hosts(root)
    for name in names:
        check_host_name(name)
        if name not in present:
            raise errors.NoSuchHost(name, root, hints.grabber(config, "list"))
    return list(names) or present


def prune_hosts(
    cfg: GrabberConfig, names: Sequence[str], now: dt.datetime, dry_run: bool,
    say: Callable[[str], None],
) -> int:  # fmt: skip
    """`grabber prune`: each named host (all if none); LOCKED if one was skipped."""
    skipped = [
        name
        for name in selected_hosts(cfg.repository, names, cfg.path)
        if not prune_host(cfg, store_of(cfg, name), now, dry_run, say)
    ]
    return errors.LOCKED if skipped else errors.OK
