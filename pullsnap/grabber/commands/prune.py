"""`grabber prune`: apply the retention rules, saying why each snapshot stays or goes."""

from __future__ import annotations

import argparse
import datetime as dt

from pullsnap.grabber.commands import arguments
from pullsnap.grabber.retention import prune
from pullsnap.grabber.views import readonly


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune", help="apply the retention policy: say what is kept and why, remove the rest",
        description="Applies keep_within/daily/weekly/monthly/yearly (README \"Retention\") "
        "to each host, or to the named ones, and prints every snapshot with the rule that "
        "keeps it or the reason it goes.  Runs after every successful backup too.  A host "
        "with a backup in progress is skipped (exit status 4).",
    )  # fmt: skip
    p.add_argument("hosts", nargs="*", metavar="HOST", help="only these hosts")
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    p.set_defaults(handler=run_prune)


def run_prune(args: argparse.Namespace) -> int:
    cfg = arguments.config(args)
    readonly.require_readable(cfg)
    return prune.prune_hosts(cfg, args.hosts, dt.datetime.now(dt.UTC), args.dry_run, print)
