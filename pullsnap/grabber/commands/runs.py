"""`grabber list`, `allow-run` and `accept`: a host's runs and snapshots."""

from __future__ import annotations

import argparse
import datetime as dt

from pullsnap import errors
from pullsnap.grabber.commands import arguments
from pullsnap.grabber.commands.arguments import config
from pullsnap.grabber.run import admission, sanity
from pullsnap.grabber.views import listing, readonly


def register_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list snapshots and attempts per host")
    p.add_argument("hosts", nargs="*", metavar="HOST", help="only these hosts")
    p.set_defaults(handler=list_runs)


def list_runs(args: argparse.Namespace) -> int:
    cfg = config(args)
    readonly.require_readable(cfg)
    print(listing.render(cfg.repository, args.hosts), end="")
    return errors.OK


def register_allow_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "allow-run", help="let one run of HOST start before its minimum interval",
        description="Runs of a host that make a snapshot are at least min_interval apart, so a "
        "compromised host cannot flood retention.  This lets the next run through once.",
    )  # fmt: skip
    p.add_argument("host", type=arguments.host, metavar="HOST")
    p.set_defaults(handler=allow_run)


def allow_run(args: argparse.Namespace) -> int:
    host = readonly.existing_host(config(args), args.host)
    admission.allow_one_run(host)
    print(f"grabber: the next run of {args.host} may start now")
    return errors.OK


def register_accept(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "accept", help="clear the suspect mark of a snapshot that shrank for a good reason",
        description="A snapshot much smaller than the previous good one is kept but marked "
        "suspect.  If the shrink was intended, accept it: it becomes a good snapshot.",
    )  # fmt: skip
    p.add_argument("host", type=arguments.host, metavar="HOST")
    p.add_argument("snapshot", metavar="SNAPSHOT")
    p.set_defaults(handler=accept)


def accept(args: argparse.Namespace) -> int:
    host = readonly.existing_host(config(args), args.host)
    sanity.accept(host, args.snapshot, dt.datetime.now(dt.UTC))
    print(f"grabber: {args.host}/{args.snapshot} now counts as good")
    return errors.OK
