"""Retention on disk: `grabber prune`, the step after each run, and the
order in which the free-space guard takes snapshots.

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
from typing import Any

from pullsnap import errors
from pullsnap.config import GrabberConfig
from pullsnap.grabber.retention import guard, rules
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


def apply(host: HostRepo, decision: rules.Decision, warn: Callable[[str], None]) -> list[str]:
    """Move what the decision removes to the trash (host lock held)."""
    removed = []
    for name in decision.remove:
        try:
            host.delete(name, remove=False)
        except (errors.PullsnapError, OSError) as e:
            warn(f"warning: {host.host}/{name} not removed: {e}")
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


def after_success(run: Any) -> None:
    """After-success step: apply the policy to the run's host (lock held)."""
    host: HostRepo = run.host
    policy = run.cfg.policy_for(host.host)
    mine = next((a for a in host.attempts() if a.name == run.name), None)
    if mine is None or not rules.counts_as_good(mine, policy):
        run.out.log("retention: not applied, this run made no good snapshot")
        return
    decision, _ = decision_for(run.cfg, host, run.now(), fresh=run.name)
    removed = apply(host, decision, run.out.log)
    if removed:
        run.out.log(f"retention: removed {', '.join(removed)}")
        run.record["pruned_after"] = removed
        host.write_record(run.name, run.record)


# --- the free-space guard ----------------------------------------------------------------


def guard_victim(cfg: GrabberConfig, now: dt.datetime, skip: set[str]) -> guard.Candidate | None:
    """The snapshot the policy values least, across hosts not in `skip`."""
    ranked: dict[str, list[tuple[int, str]]] = {}
    good: dict[str, int] = {}
    for name in hosts(cfg.repository):
        if name in skip:
            continue
        decision, attempts = decision_for(cfg, HostRepo(cfg.repository, name), now)
        policy = cfg.policy_for(name)
        good[name] = sum(rules.counts_as_good(a, policy) for a in attempts)
        tiers = [(decision.guard_tier(a.name), a.name) for a in attempts]
        ranked[name] = [(tier, n) for tier, n in tiers if tier is not None]
    return guard.next_ranked_victim(ranked, good)


def delete_for_space(
    cfg: GrabberConfig, own: HostRepo, victim: guard.Candidate, now: dt.datetime
) -> bool:
    """Delete `victim` now (the guard needs the space); False if its host is busy.

    Another host's snapshots are deleted only under that host's lock, after
    deciding again: its running backup is never touched.
    """
    host = HostRepo(cfg.repository, victim.host)
    if victim.host == own.host:
        host.delete(victim.name)
        return True
    holder = {"pid": os.getpid(), "since": iso(now), "by": f"the free-space guard of {own.host}"}
    with host.try_lock(holder) as locked:
        if not locked:
            return False
        decision, _ = decision_for(cfg, host, now)
        if decision.guard_tier(victim.name) is None:
            return False
        host.delete(victim.name)
    return True


# --- `grabber prune` -----------------------------------------------------------------------


def prune_host(
    cfg: GrabberConfig, host: HostRepo, now: dt.datetime, dry_run: bool, say: Callable[[str], None]
) -> bool:
    """One host; False when it was skipped because a backup holds its lock."""
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
        removed = set(apply(host, decision, say))
    for line in lines(host.host, decision):
        say(line)
    if len(removed) < len(decision.remove):
        say(f"{host.host}: {len(decision.remove) - len(removed)} could not be removed (above)")
    # Outside the lock: a new backup of this host need not wait for this.
    try:
        host.empty_trash()
    except OSError as e:
        # Root's directories of a --super snapshot, without the launcher's
        # capabilities: a backup (through the launcher) finishes the job.
        say(f"warning: {host.host}: the trash is not empty ({e.strerror}): the next backup of "
            f"{host.host} empties it, or run grabber prune as root")  # fmt: skip
    return True


def selected_hosts(root: str, names: Sequence[str]) -> list[str]:
    present = hosts(root)
    for name in names:
        check_host_name(name)
        if name not in present:
            raise errors.UsageError(f"no host {name!r} in {root} (see grabber list)")
    return list(names) or present


def prune_hosts(
    cfg: GrabberConfig, names: Sequence[str], now: dt.datetime, dry_run: bool,
    say: Callable[[str], None],
) -> int:  # fmt: skip
    """`grabber prune`: each named host (all if none); LOCKED if one was skipped."""
    skipped = [
        name
        for name in selected_hosts(cfg.repository, names)
        if not prune_host(cfg, HostRepo(cfg.repository, name), now, dry_run, say)
    ]
    return errors.LOCKED if skipped else errors.OK
