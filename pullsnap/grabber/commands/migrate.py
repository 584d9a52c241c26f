"""`grabber migrate HOST`: move a host from the hardlink store to btrfs."""

from __future__ import annotations

import argparse
import datetime as dt

from pullsnap import errors
from pullsnap.grabber.commands import arguments
from pullsnap.grabber.store import migrate
from pullsnap.grabber.store.repository import iso
from pullsnap.grabber.views import readonly


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "migrate", help="move a host's snapshots to the btrfs store, without a full transfer",
        description="Copies HOST's newest good snapshot into a btrfs subvolume with reflinks "
        "(cp -a --reflink=always: no data is copied) and puts it in the snapshot's place; "
        "the next run is a writable snapshot of it.  Older snapshots stay hardlinked trees "
        "until retention removes them.  The repository must be on btrfs; run as root.  "
        "A backup of HOST waits until it is done (the host lock).",
    )  # fmt: skip
    p.add_argument("host", type=arguments.host, metavar="HOST", help="a host name")
    p.set_defaults(handler=run_migrate)


def run_migrate(args: argparse.Namespace) -> int:
    host = readonly.existing_host(arguments.config(args), args.host)
    migrate.migrate(host, iso(dt.datetime.now(dt.UTC)), print)
    return errors.OK
