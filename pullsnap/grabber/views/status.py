"""`grabber status`: is every host backed up recently enough?

Reads the repository (records, the host's `.verify.json`, the usage cache),
prints one block per host (or JSON, or one Nagios line), optionally
rewrites a Prometheus textfile, runs on_stale for hosts that just went
stale, and exits 11 (STALE) when any host is stale: a monitoring check.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Sequence

from pullsnap import errors
from pullsnap.config import GrabberConfig, load_grabber, parse_duration
from pullsnap.grabber.run import hooks
from pullsnap.grabber.store import atomicfile
from pullsnap.grabber.store.repository import HostRepo, hosts
from pullsnap.grabber.views import health, prometheus, readonly, usage
from pullsnap.grabber.views.health import HostStatus

HELP = """\
Per host: the newest good snapshot and its age, the newest run and its
result, how many snapshots (good, suspect, failed, interrupted), the space
they use, and the last `grabber verify`.

A host is STALE when its newest good snapshot began longer ago than
--max-age, or the host's max_age in the config ([policy] / [hosts.NAME],
default 36h), or when it has none.  Hosts are those in the repository and
those named in [hosts.NAME]; name some to check only those.

exit status:  0  every host fresh
             11  a host is stale (--nagios: 2 CRITICAL, 1 WARNING, 3 UNKNOWN)
              2  bad command line or configuration

examples:
  grabber status                          # everything, for a person
  grabber status --max-age 26h web1       # one host, a tighter limit
  grabber status --nagios                 # an Icinga/Nagios check command
  grabber status --prometheus /var/lib/prometheus/node-exporter/pullsnap.prom --quiet
"""


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than zero")
    return seconds


def host_names(cfg: GrabberConfig, only: Sequence[str]) -> list[str]:
    if only:
        return list(dict.fromkeys(only))
    return sorted(set(hosts(cfg.repository)) | set(cfg.hosts))


def collect(
    cfg: GrabberConfig,
    only: Sequence[str] = (),
    now: dt.datetime | None = None,
    max_age: float | None = None,
    with_usage: bool = True,
) -> list[HostStatus]:
    """Every selected host's status, read from the repository."""
    readonly.require_readable(cfg)
    now = now or dt.datetime.now(dt.UTC)
    found = []
    for name in host_names(cfg, only):
        host, policy = HostRepo(cfg.repository, name), cfg.policy_for(name)
        verify = health.parse_verify(
            atomicfile.read_json(os.path.join(host.path, health.VERIFY_FILE))
        )
        used = usage.measure(host).total if with_usage and host.exists() else None
        found.append(health.summarize(
            name, host.attempts(), now=now, locked=host.exists() and host.is_locked(),
            max_age=policy.max_age if max_age is None else max_age,
            verify=verify, used=used, partial_is_good=policy.partial_is_good,
        ))  # fmt: skip
    return found


def free_space(path: str) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status", help="is every host backed up recently? (a monitoring check)",
        description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument(
        "hosts", nargs="*", type=readonly.host_argument, metavar="HOST", help="only these hosts"
    )
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
        type=_duration,
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
    p.set_defaults(handler=run)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if not args.nagios:
        return _run(args, lambda text: print(text, file=sys.stderr))
    try:
        return _run(args, lambda text: None)
    except errors.PullsnapError as e:
        print(f"PULLSNAP UNKNOWN - {e}")
        return health.NAGIOS_UNKNOWN


def _run(args: argparse.Namespace, warn: Callable[[str], None]) -> int:
    cfg = load_grabber(args.config)
    now = dt.datetime.now(dt.UTC)
    statuses = collect(cfg, args.hosts, now, args.max_age, with_usage=not args.no_usage)
    code = errors.STALE if any(s.stale for s in statuses) else errors.OK
    target = args.prometheus or cfg.prometheus_file
    if target:
        text = prometheus.render(statuses, now, cfg.repository, free_space(cfg.repository))
        try:
            atomicfile.replace(target, text.encode("utf-8"), 0o644)
        except OSError as e:
            warn(f"grabber: cannot write {target}: {e.strerror}: check the directory exists "
                 "and is writable by this user")  # fmt: skip
            code = code or errors.FAILED
    if not args.no_hooks:
        hooks.alert_stale(cfg, statuses, warn)
    if args.nagios:
        nagios_code, line = health.nagios(statuses)
        print(line)
        return nagios_code
    if args.json:
        print(json.dumps([health.as_json(s) for s in statuses], indent=1))
    elif not args.quiet:
        print(health.render(statuses), end="")
    return code
