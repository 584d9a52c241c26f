"""`grabber restore` and `grabber delete`: a snapshot's files back, a snapshot gone."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys

from pullsnap import errors
from pullsnap.grabber import hints
from pullsnap.grabber.commands import arguments
from pullsnap.grabber.store.base import store_of
from pullsnap.grabber.views import readonly

RESTORE = """\
Copies PATH (as on the backed-up host; a file or a directory) from SNAPSHOT
(a name from grabber list, or latest) to TARGET with the flags the snapshot's
mode needs: a --super snapshot as it is, a --fake-super one with its owners,
modes and devices turned back from the user.rsync.%stat xattrs.  Run it as
root.  With --to-host, TARGET is a path on that host, written by rsync over
ssh as the user ssh logs in as (root, for owners).

Without --force it refuses to overwrite anything that exists at TARGET
(an itemized dry run decides), naming the first few.  On a terminal it shows
rsync's progress line.  Afterwards it checks what arrived: each entry's type,
size, mtime, mode and owner, and each file's bytes against the snapshot's
manifest (with --to-host: the snapshot's files against the manifest, then an
rsync --checksum dry run that must find nothing to change).  Exit 0 when all
of it matches, 1 otherwise.

examples:
  grabber restore web1 latest /etc/ssh/sshd_config /tmp/restore
  grabber restore web1 2026-11-24T021700Z /home/alice /restore/alice
  grabber restore web1 latest /home/alice /home/alice --to-host root@web1 --force
"""

DELETE = """\
Deletes one snapshot of HOST, tree, record and manifest, through the store
and under the host's lock (a run in progress makes it refuse).  The newest
good snapshot (latest) goes only with --force; latest then moves to the one
before it.  Each deletion is recorded in <repository>/HOST/.deletions.jsonl:
when, by whom, which snapshot, its state and mode, and --reason.

example:  grabber delete web1 2026-11-24T021700Z --reason "held a leaked key"
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "restore", help="copy a path of a snapshot back, with the flags its mode needs",
        description=RESTORE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("host", type=arguments.host, metavar="HOST")
    p.add_argument("snapshot", metavar="SNAPSHOT", help="a name from grabber list, or latest")
    p.add_argument("path", metavar="PATH", help="the path on the backed-up host")
    p.add_argument("target", metavar="TARGET", help="where to put it (a directory, or a file)")
    p.add_argument("--to-host", default="", metavar="[USER@]HOST",
                   help="restore to TARGET on this host, through rsync over ssh")  # fmt: skip
    p.add_argument("--rsh", default="ssh", metavar="COMMAND",
                   help="the ssh command for --to-host (rsync -e; default ssh)")  # fmt: skip
    p.add_argument("--force", action="store_true", help="overwrite what exists at TARGET")
    p.set_defaults(handler=restore)
    p = sub.add_parser(
        "delete", help="delete one snapshot (the newest good one only with --force)",
        description=DELETE, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("host", type=arguments.host, metavar="HOST")
    p.add_argument("snapshot", metavar="SNAPSHOT", help="a name from grabber list")
    p.add_argument("--force", action="store_true", help="delete it even if it is the newest good")
    p.add_argument("--reason", default="", help="why, for the record of deletions")
    p.set_defaults(handler=delete)


def restore(args: argparse.Namespace) -> int:
    from pullsnap.grabber.restore import copy

    cfg = arguments.config(args)
    host = readonly.existing_host(cfg, args.host)
    request = copy.Request(host=host, snapshot=args.snapshot, path=args.path,
                           target=args.target, rsync=cfg.rsync, to_host=args.to_host,
                           rsh=args.rsh, force=args.force, config=cfg.path)  # fmt: skip
    done = copy.restore(request, sys.stdout.isatty(), lambda line: print(f"grabber: {line}"))
    print(f"grabber: {done.shown} from {args.host}/{done.name} ({done.mode}) to "
          f"{done.destination}: {done.checked.line()}")  # fmt: skip
    return errors.FAILED if done.checked.problems else errors.OK


def delete(args: argparse.Namespace) -> int:
    from pullsnap.grabber.retention import delete as deletion

    cfg = arguments.config(args)
    host = readonly.existing_host(cfg, args.host)
    forced = hints.grabber(cfg.path, "delete", args.host, args.snapshot, "--force")
    line = deletion.delete(store_of(cfg, args.host), args.snapshot, force=args.force,
                           by=deletion.who(os.getuid(), os.environ), reason=args.reason,
                           now=dt.datetime.now(dt.UTC), hint=forced)  # fmt: skip
    print(f"grabber: deleted {args.host}/{args.snapshot} ({line['state']}, {line['mode']}); "
          f"recorded in {os.path.join(host.path, deletion.DELETIONS)}")  # fmt: skip
    return errors.OK
