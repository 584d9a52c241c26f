"""`initiator`: the backed-up host's command.

initiator               cron/timer entry: run every destination, quiet on success
initiator --now         the same, with progress and a verdict per destination
initiator check         validate configuration and environment
initiator gate ...      sshd's forced command (and operators' --dry-run)
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from pullsnap import caps, errors
from pullsnap.config import DEFAULT_INITIATOR_CONFIG, InitiatorConfig, load_initiator
from pullsnap.initiator import console

DESCRIPTION = """\
Back this host up to the backup hosts in the configuration.

Each run opens a one-shot, read-only SSH door: a one-time key and host key,
an sshd that accepts one connection from the backup host and lets through
only `rsync --server --sender` inside the configured sources.  The backup
host's grabber pulls a hardlinked snapshot through it; nothing stays open
afterwards.

Without --now (cron, systemd timer) nothing is printed on success; a failure
prints one line on stderr and exits non-zero (see README "Exit codes").
"""

MISSING_CAP_WARNING = (
    "warning: CAP_DAC_READ_SEARCH is missing: files only root can read will be skipped "
    "(start initiator as root, or give it AmbientCapabilities=CAP_DAC_READ_SEARCH)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="initiator",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="subcommands: check (validate config and environment), "
        "gate (the forced command; see 'initiator gate --help')",
    )
    parser.add_argument(
        "-c", "--config", default=DEFAULT_INITIATOR_CONFIG, metavar="FILE",
        help=f"configuration file (default {DEFAULT_INITIATOR_CONFIG})",
    )  # fmt: skip
    parser.add_argument("--now", action="store_true", help="run now, showing progress and verdicts")
    parser.add_argument(
        "--dest", action="append", default=[], metavar="NAME",
        help="only this destination (repeatable; default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--dry-run", action="store_true",
        help="full handshake and gate check, but transfer nothing and make no snapshot",
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="print the run's log lines")
    parser.add_argument("command", nargs="?", choices=["check"], help="check: validate only")
    return parser


def take_privileges(cfg: InitiatorConfig, warn: Any) -> None:
    """Root drops to cfg.user keeping CAP_DAC_READ_SEARCH; others hold what they got."""
    if os.geteuid() == 0:
        caps.drop_to_user(cfg.user, caps.INITIATOR_CAPS)
    elif caps.have(caps.INITIATOR_CAPS):
        caps.hold_quietly(caps.INITIATOR_CAPS)
    else:
        warn(MISSING_CAP_WARNING)


def _select(cfg: InitiatorConfig, names: list[str]) -> list[Any]:
    if not names:
        return list(cfg.destinations)
    known = {d.name: d for d in cfg.destinations}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise errors.UsageError(f"no destination named {unknown[0]!r} in {cfg.path}")
    return [known[n] for n in names]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["gate"]:
        from pullsnap.initiator import gateentry

        return gateentry.main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        cfg = load_initiator(args.config)
        if args.command == "check":
            from pullsnap.initiator import check

            return check.run(cfg)
        destinations = _select(cfg, args.dest)
        take_privileges(cfg, lambda text: print(text, file=sys.stderr))
    except errors.PullsnapError as e:
        print(f"initiator: {e}", file=sys.stderr)
        return e.exit_code
    return console.run_all(
        cfg, destinations, now=args.now, verbose=args.verbose, probe=args.dry_run
    )


if __name__ == "__main__":
    sys.exit(main())
