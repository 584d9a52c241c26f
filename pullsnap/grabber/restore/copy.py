"""`grabber restore HOST SNAPSHOT PATH TARGET`: one path of a snapshot back
to a local directory or, with `--to-host`, to a host through rsync over ssh.

    1 the snapshot (a name or `latest`), its mode from its record, PATH in
      it (looked up without following the snapshot's symlinks)
    2 unless --force: an itemized dry run; anything it would overwrite
      refuses the restore, naming the first few
    3 rsync with the mode's flags (plan.py), its progress line on a terminal
    4 the check (check.py): locally every entry's attributes and every
      file's bytes; to a host, the snapshot's files against the manifest
      and a --checksum dry run that must find nothing left to change
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass

from pullsnap import errors, oneshot
from pullsnap.childenv import child_env
from pullsnap.grabber import hints
from pullsnap.grabber.integrity import manifest
from pullsnap.grabber.restore import check, plan
from pullsnap.grabber.restore.check import Checked
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.views import fileversions, treediff

# rsync(1) EXIT VALUES: 0 success, 24 vanished (cannot happen in a snapshot).
_RSYNC_OK = (0,)
# What the operator's ssh needs from their session (keys, agent, known_hosts).
_SSH_ENVIRONMENT = ("HOME", "USER", "LOGNAME", "SSH_AUTH_SOCK")


@dataclass(frozen=True)
class Request:
    host: HostRepo
    snapshot: str  # a name, or "latest"
    path: str  # as on the backed-up host, or inside the snapshot
    target: str
    rsync: str = "/usr/bin/rsync"
    to_host: str = ""
    rsh: str = "ssh"
    force: bool = False
    config: str = ""  # for the commands it suggests


@dataclass(frozen=True)
class Done:
    name: str  # the snapshot's name
    mode: str
    shown: str  # PATH as the backed-up host names it
    destination: str
    checked: Checked


def _environment() -> dict[str, str]:
    return child_env(**{k: os.environ[k] for k in _SSH_ENVIRONMENT if k in os.environ})


def _run(argv: list[str], capture: bool) -> str:
    """rsync's stdout when captured; on a terminal its output goes straight
    there (the operator's side: through `sh`, pullsnap/oneshot.py)."""
    if capture:
        done = oneshot.run(argv, env=_environment())
        code, out, said = done.code, done.stdout, done.stderr.strip().splitlines()
    else:
        code, out, said = oneshot.run_foreground(argv, env=_environment()), "", []
    if code not in _RSYNC_OK:
        # The first line is the cause (ssh's, or rsync's); the last, rsync's summary.
        told = "; ".join(dict.fromkeys(said[:1] + said[-1:]))
        raise errors.RunFailed(
            f"rsync failed with exit {code}" + (f": {told}" if told else "")
            + f" ({plan.shown(argv)})"
        )  # fmt: skip
    return out


def prepare(req: Request, progress: bool) -> tuple[plan.Copy, str, bytes, str]:
    """(the copy, the snapshot's name, PATH relative to its root, PATH as shown)."""
    tree = treediff.snapshot_tree(req.host, req.snapshot, req.config)
    name = os.path.basename(tree)
    record = req.host.read_record(name) or {}
    parts = fileversions.components(fileversions.strip_snapshot_prefix(req.host, req.path))
    shown = os.fsdecode(b"/" + b"/".join(parts))
    hit = fileversions.lookup(tree, parts)
    if hit is None:
        see = hints.grabber(req.config, "versions", req.host.host, shown)
        raise errors.UsageError(f"{shown} is not in {req.host.host}/{name} (see: {see})")
    found, st = hit
    source, target = os.fsdecode(found), req.target
    if stat.S_ISDIR(st.st_mode):
        source, target = source + "/", target.rstrip("/") + "/"
    elif not req.to_host and os.path.isdir(target):
        target = os.path.join(target, os.fsdecode(parts[-1]))
    if not req.to_host and os.geteuid() != 0:
        raise errors.UsageError("a restore writes owners and modes: run it as root")
    mode = str(record.get("mode", ""))
    copy = plan.Copy(rsync=req.rsync, mode=mode, source=source, target=target,
                     to_host=req.to_host, rsh=req.rsh, progress=progress)  # fmt: skip
    plan.mode_flags(copy.mode, bool(copy.to_host))  # refuses an unknown mode now
    return copy, name, b"/".join(parts), shown


def _mount_note(target: str) -> str:
    """Restored exactly, a backed-up host's setuid files and device nodes
    work on this host too unless its mount says nosuid,nodev (mount(8))."""
    from pullsnap.grabber.confine import mounts

    missing = mounts.missing_safety_options(target)
    if not missing:
        return ""
    return (f"note: {target} is on a mount without {','.join(missing)}: setuid files and "
            "device nodes from the snapshot work there; inspect them before use")  # fmt: skip


def restore(req: Request, progress: bool, say: Callable[[str], None]) -> Done:
    copy, name, in_snapshot, shown = prepare(req, progress)
    destination = plan.destination(copy)
    if not req.force:
        dry = _run(plan.rsync_argv(copy, dry_run=True), capture=True)
        overwritten = plan.overwrites(dry.splitlines())
        if overwritten:
            raise errors.Refused(plan.refusal(overwritten, destination))
    say(f"restoring {shown} from {req.host.host}/{name} ({copy.mode}) to {destination}")
    if not copy.to_host and (note := _mount_note(copy.target)):
        say(note)
    _run(plan.rsync_argv(copy), capture=not progress)
    found = manifest.read(req.host.manifest_path(name))
    if copy.to_host:
        checked = check.check_sources(copy.source, in_snapshot, found)
        after = _run(plan.rsync_argv(copy, dry_run=True, checksum=True), capture=True)
        checked.problems += [f"{destination}: {p} differs from the snapshot"
                             for p in plan.changed(after.splitlines())]  # fmt: skip
    else:
        checked = check.check_local(copy.source, copy.target, in_snapshot, found)
    return Done(name, copy.mode, shown, destination, checked)
