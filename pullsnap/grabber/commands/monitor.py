"""`grabber status` and `grabber report`: monitoring."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable

from pullsnap import errors
from pullsnap.grabber.commands import arguments
from pullsnap.grabber.run import hooks
from pullsnap.grabber.views import health, page, repospace, status

HELP = """\
Per host: the newest good snapshot and its age, the newest run and its
result, how many snapshots (good, suspect, failed, interrupted), the space
they use, and the last `grabber verify`.

A host is STALE when its newest good snapshot began longer ago than
--max-age, or the host's max_age in the config ([policy] / [hosts.NAME],
default 36h), or when it has none.  Hosts are those in the repository and
those named in [hosts.NAME]; name some to check only those.  A last line
says how much room, in bytes and in inodes, the repository's filesystem has
left: WARNING or CRITICAL below free_warn / free_crit or free_inodes_warn /
free_inodes_crit.

exit status:  0  every host fresh, the repository above free_crit and free_inodes_crit
             11  a host is stale (--nagios: 2 CRITICAL, 1 WARNING, 3 UNKNOWN)
              5  the repository is below free_crit or free_inodes_crit
              2  bad command line or configuration

examples:
  grabber status                          # everything, for a person
  grabber status --max-age 26h web1       # one host, a tighter limit
  grabber status --nagios                 # an Icinga/Nagios check command
  grabber status --prometheus /var/lib/prometheus/node-exporter/pullsnap.prom --quiet
"""


def register_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status", help="is every host backed up recently? (a monitoring check)",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("hosts", nargs="*", type=arguments.host, metavar="HOST", help="only these hosts")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print a JSON list, one object a host")
    shown.add_argument(
        "--nagios",
        action="store_true",
        help="print one plugin line and exit 0/1/2/3 as Nagios and Icinga expect",
    )
    shown.add_argument("--quiet", action="store_true", help="print nothing; only the exit status")
    p.add_argument(
        "--max-age",
        type=arguments.duration,
        metavar="DURATION",
        help="stale after this (e.g. 36h, 2d), for every host; default: the config",
    )
    p.add_argument(
        "--prometheus",
        metavar="FILE",
        help="also rewrite this node_exporter textfile (default: prometheus_file)",
    )
    p.add_argument("--no-hooks", action="store_true", help="do not run the on_stale hook")
    p.add_argument(
        "--no-usage",
        action="store_true",
        help="skip the space used (walks new snapshots once; then cached)",
    )
    p.set_defaults(handler=run_status)  # fmt: skip


def run_status(args: argparse.Namespace) -> int:
    if not args.nagios:
        return _run_status(args, lambda text: print(text, file=sys.stderr))
    try:
        return _run_status(args, lambda text: None)
    except errors.PullsnapError as e:
        print(f"PULLSNAP UNKNOWN - {e}")
        return health.NAGIOS_UNKNOWN


def _run_status(args: argparse.Namespace, warn: Callable[[str], None]) -> int:
    cfg = arguments.config(args)
    now = dt.datetime.now(dt.UTC)
    statuses = status.collect(cfg, args.hosts, now, args.max_age, with_usage=not args.no_usage)
    room = status.room(cfg)
    code = errors.STALE if any(s.stale for s in statuses) else errors.OK
    if code == errors.OK and room is not None and room.level == repospace.CRITICAL:
        code = errors.NO_SPACE
    target = args.prometheus or cfg.prometheus_file
    if target and not status.write_prometheus(cfg, statuses, now, target, warn):
        code = code or errors.FAILED
    if not args.no_hooks:
        hooks.alert_stale(cfg, statuses, warn)
    if args.nagios:
        nagios_code, line = health.nagios(statuses, room.problems if room else (),
                                          room.level if room else repospace.OK)  # fmt: skip
        print(line)
        return nagios_code
    if args.json:
        print(json.dumps([health.as_json(s) for s in statuses], indent=1))
    elif not args.quiet:
        print(health.render(statuses, args.config), end="")
        if room is not None:
            print(repospace.render(room, cfg.repository), end="")
    return code


def register_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write a static HTML page about every host",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="One self-contained page (no scripts, nothing fetched from elsewhere):\n"
        "a row per host with its newest good snapshot, its age (marked when stale),\n"
        "snapshot count, space used and added, last verify, and a chart of bytes added\n"
        "and duration of its last 60 runs.  The file is replaced atomically, so a web\n"
        "server may serve it while it is rewritten.\n\n"
        "example (cron, every 15 minutes, as the grabber user):\n"
        "  */15 * * * *  pullsnap  grabber report --html /var/www/backups/index.html",
    )  # fmt: skip
    p.add_argument("--html", required=True, metavar="FILE", help="where to write ('-': stdout)")
    p.add_argument("hosts", nargs="*", type=arguments.host, metavar="HOST", help="only these hosts")
    p.set_defaults(handler=run_report)


def run_report(args: argparse.Namespace) -> int:
    text = page.page(arguments.config(args), args.hosts, dt.datetime.now(dt.UTC))
    if args.html == "-":
        sys.stdout.write(text)
    else:
        page.write(args.html, text)
    return errors.OK
