"""`grabber versions`, `diff` and `du`: finding what to restore."""

from __future__ import annotations

import argparse
import json

from pullsnap import errors
from pullsnap.grabber.commands import arguments
from pullsnap.grabber.store.base import open_store
from pullsnap.grabber.store.repository import LATEST
from pullsnap.grabber.views import fileversions, readonly, treediff, usage


def register(sub: argparse._SubParsersAction) -> None:
    register_versions(sub)
    register_diff(sub)
    register_du(sub)


def register_versions(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "versions", help="every distinct version of a file across a host's snapshots",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="PATH is the file's absolute path on the backed-up host (or its path\n"
        "inside one snapshot).  An unchanged file is one hardlinked inode from snapshot\n"
        "to snapshot; each new inode is a new version.  For each version: the snapshots\n"
        "that hold it, its size, mtime, mode and owner (from rsync's fake-super xattr\n"
        "when there is one), and the path to copy it back from (README \"The repository\n"
        "and restoring\" says how to keep owners and modes).\n\n"
        "example:  grabber versions web1 /etc/ssh/sshd_config",
    )  # fmt: skip
    p.add_argument("host", type=arguments.host, metavar="HOST")
    p.add_argument("path", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=versions)


def versions(args: argparse.Namespace) -> int:
    host = readonly.existing_host(arguments.config(args), args.host)
    path, found = fileversions.find(host, args.path)
    if args.json:
        print(json.dumps(fileversions.as_json(host, path, found), indent=1))
    else:
        print(fileversions.render(host, path, found), end="")
    return errors.OK


def register_diff(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "diff", help="what changed between two snapshots of a host",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Lists the paths added (+), removed (-) or changed (M, with what\n"
        "changed: type, size, mtime, mode, owner, device, target, acl, xattrs) from\n"
        "snapshot A to snapshot B (default: the newest good one).  Files rsync hardlinked\n"
        "between the two are one inode and are skipped unread, so this is quick even\n"
        "for large trees.  Paths are as on the backed-up host; the last line counts.\n\n"
        "examples:\n"
        "  grabber diff web1 2026-11-24T021700Z latest\n"
        "  grabber diff web1 2026-11-24T021700Z 2026-11-25T021700Z --json",
    )  # fmt: skip
    p.add_argument("host", type=arguments.host, metavar="HOST")
    p.add_argument("a", metavar="A", help="the older snapshot (a name from grabber list)")
    p.add_argument("b", metavar="B", nargs="?", default=LATEST, help="the newer (default latest)")
    p.add_argument(
        "--content",
        action="store_true",
        help="also compare the bytes of files whose attributes all match",
    )
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.set_defaults(handler=diff)  # fmt: skip


def diff(args: argparse.Namespace) -> int:
    host = readonly.existing_host(arguments.config(args), args.host)
    a = treediff.snapshot_tree(host, args.a, args.config)
    b = treediff.snapshot_tree(host, args.b, args.config)
    counts = {"+": 0, "-": 0, "M": 0}
    try:
        for change in treediff.diff_trees(a, b, args.content):
            counts[change.sign] += 1
            if args.json:
                print(json.dumps(treediff.change_json(change)))
            else:
                print(treediff.change_line(change))
    except OSError as e:
        raise treediff.unreadable(e, a, b) from None
    if not args.json:
        print(f"{counts['+']} added, {counts['-']} removed, {counts['M']} changed")
    return errors.OK


def register_du(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "du", help="space per snapshot: what each holds, and what only it holds",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Snapshots share unchanged files (hardlinks) or blocks (btrfs).  For each\n"
        "snapshot of HOST"
        " (and each leftover .incomplete tree) this shows\n\n"
        "  SIZE    what the snapshot references, as `du -s` of it alone would\n"
        "  UNIQUE  what only this snapshot holds: deleting it alone frees this much\n\n"
        "and the host's total: every file counted once.  Figures are blocks on disk (btrfs:\n"
        "extents, as `btrfs filesystem du` counts them: exclusive and shared).\n"
        "They are cached in <repository>/HOST/.usage.json until a snapshot comes or goes.\n\n"
        "example:  grabber du web1",
    )  # fmt: skip
    p.add_argument("host", type=arguments.host, metavar="HOST", help="a host name")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--no-cache", action="store_true", help="walk the snapshots even if cached")
    p.set_defaults(handler=du)


def du(args: argparse.Namespace) -> int:
    host = readonly.existing_host(arguments.config(args), args.host)
    found = open_store(host).usage(use_cache=not args.no_cache)
    if args.json:
        print(json.dumps(usage.as_json(args.host, found), indent=1))
    else:
        print(usage.render(args.host, found), end="")
    return errors.OK
