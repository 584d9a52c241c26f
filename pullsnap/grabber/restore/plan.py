"""What a restore runs (pure): rsync's argv for the snapshot's mode, and
what its dry run says the copy would overwrite.

A `--super` snapshot holds the real owners, modes, ACLs and xattrs, so a
copy by root keeps them.  A `--fake-super` snapshot's files belong to the
grabber user and carry the real ones in `user.rsync.*` xattrs: rsync
reads them back with `--fake-super` on the reading side, and the writing
side must be the real super-user (rsync(1) --fake-super: it "affects only
the side where the option is used"; `-M--super` gives a local copy's
receiver `--super`).  `--modify-window=-1` compares times to the
nanosecond (rsync(1)).

    local, super        rsync -aHAX --numeric-ids --modify-window=-1 SRC TARGET
    local, fake-super   ... --fake-super -M--super SRC TARGET
    --to-host, super    ... -e RSH SRC DEST:TARGET      (root on DEST writes)
    --to-host, fake     ... --fake-super -e RSH SRC DEST:TARGET
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pullsnap import errors

MODES = ("super", "fake-super")
BASE = ("-aHAX", "--numeric-ids", "--modify-window=-1")
# rsync(1) --itemize-changes: YXcstpoguax, then the name; "+" in every
# attribute place is an item the receiver creates.
_ITEM_RE = re.compile(r"^([<>ch.*][fdLDS])([^ ]{9}) (.*)$")
SHOWN = 3  # overwritten paths named in a refusal


@dataclass(frozen=True)
class Copy:
    """One restore: where from, where to, and how."""

    rsync: str
    mode: str  # the snapshot's: "super" or "fake-super"
    source: str  # inside the snapshot; a directory ends with "/"
    target: str  # a local path, or a path on `to_host`
    to_host: str = ""  # [USER@]HOST for rsync over ssh
    rsh: str = "ssh"
    progress: bool = False


def mode_flags(mode: str, remote: bool) -> list[str]:
    if mode not in MODES:
        raise errors.UsageError(
            f"the snapshot's record names no mode ({mode!r}): restore it by hand (README "
            '"The repository and restoring")'
        )
    if mode == "super":
        return []
    return ["--fake-super"] if remote else ["--fake-super", "-M--super"]


def destination(copy: Copy) -> str:
    return f"{copy.to_host}:{copy.target}" if copy.to_host else copy.target


def rsync_argv(copy: Copy, *, dry_run: bool = False, checksum: bool = False) -> list[str]:
    """The copy's argv; `dry_run` itemizes what it would do, `checksum` with
    it compares contents (the check after a copy to another host)."""
    argv = [copy.rsync, *BASE, *mode_flags(copy.mode, bool(copy.to_host))]
    if dry_run:
        argv += ["--dry-run", "--itemize-changes"] + (["--checksum"] if checksum else [])
    elif copy.progress:
        argv += ["--info=progress2"]
    if copy.to_host:
        argv += ["-e", copy.rsh]
    return [*argv, "--", copy.source, destination(copy)]


def overwrites(lines: Iterable[str]) -> list[str]:
    """Paths an itemized dry run would change that already exist at the
    target: every item but a creation ("+" in every place), leaving out
    directories (a copy into one adds to it)."""
    found = []
    for line in lines:
        match = _ITEM_RE.match(line.rstrip("\n"))
        if match is None:
            continue
        kind, flags, name = match.groups()
        if set(flags) == {"+"} or kind[1] == "d":
            continue
        found.append(name.split(" -> ")[0].split(" => ")[0])
    return found


def changed(lines: Iterable[str]) -> list[str]:
    """Paths a `--checksum` dry run after the copy would still send or change:
    what did not arrive as the snapshot holds it."""
    found = []
    for line in lines:
        match = _ITEM_RE.match(line.rstrip("\n"))
        if match is not None and match.group(3) != "./":
            found.append(match.group(3))
    return found


def refusal(paths: Sequence[str], target: str) -> str:
    named = ", ".join(paths[:SHOWN]) + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN
                                        else "")  # fmt: skip
    return (f"{len(paths)} file(s) at {target} would be overwritten ({named}): "
            "pick an empty target, or add --force")  # fmt: skip


def shown(argv: Sequence[str]) -> str:
    return shlex.join(argv)
