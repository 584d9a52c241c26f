"""`initiator`: the backed-up host's command.

initiator               cron/timer entry: run every destination, quiet on success
initiator --now         the same, with progress and a verdict per destination
initiator check         validate configuration and environment (--probe: and the backup host)
initiator setup         create the login key, print the line that authorizes it
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

First time on this host: `initiator setup` (it prints the `grabber authorize`
line for the backup host's operator), then `initiator check --probe`.

By hand, `initiator --now` shows live progress, then one verdict line per
destination: snapshot, files, bytes transferred and added, duration.
Scheduled (cron, systemd timer): no progress; from cron nothing at all on
success, so cron mails only failures; under systemd one key=value line per
destination in the journal.  A failure always prints one line on stderr.
Each destination may run `before` and `after` hooks (README "Before and after hooks").

exit status (README "Exit codes"): {codes}
""".format(codes=", ".join(f"{code} {name}" for code, name in errors.EXIT_NAMES.items()))

MISSING_CAP_WARNING = (
    "warning: CAP_DAC_READ_SEARCH is missing: files only root can read will be skipped "
    "(start `{command}` as root, or give it AmbientCapabilities=CAP_DAC_READ_SEARCH)"
)


CHECK_DESCRIPTION = """\
Is this host ready to be backed up?  Checks the configuration, the tools
(and the rsync version: 3.4.0 or later, CVE-2024-12084..12088), Landlock,
the user and its capabilities, and each destination's login key and pinned
host key.  Every problem line ends with the command or setting that fixes it.

--probe then makes a real handshake with each destination's backup host
that transfers nothing: ssh login and host binding, the one-shot door, the
connect-back, the gate and rsync on both sides.  A refusal prints the
reason the refusing side gave.  Run it once the backup host's operator has
authorized this host's key (see `initiator setup`).

Exit status: 0 all good, 1 a check found a problem, else the probe's
status (README "Exit codes").
"""

SETUP_DESCRIPTION = """\
Run once as root on a host to be backed up, after writing the configuration
(start from config/initiator.toml).  Creates what is missing and checks what
exists: the configuration and key directories, the runtime directory if one
is configured, and each destination's login key (ed25519, no passphrase,
owned by the initiator's user, mode 0600).  It then prints the exact line
the backup host's operator runs to bind that key to this host's name, and
runs `initiator check`.  Nothing that exists is changed; a wrong owner or
mode is reported with the command that fixes it.
"""


def _config_option(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "-c", "--config", default=default, metavar="FILE",
        help=f"configuration file (default {DEFAULT_INITIATOR_CONFIG})",
    )  # fmt: skip


def _dest_option(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument(
        "--dest", action="append", default=default, metavar="NAME",
        help="only this destination (repeatable; default: all)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="initiator",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="'initiator gate --help' describes sshd's forced command.",
    )
    _config_option(parser, DEFAULT_INITIATOR_CONFIG)
    parser.add_argument("--now", action="store_true", help="run now, showing progress and verdicts")
    _dest_option(parser, [])
    parser.add_argument(
        "--dry-run", action="store_true",
        help="full handshake and gate check, but transfer nothing and make no snapshot",
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true", help="print the run's log lines")
    parser.add_argument(
        "--format", choices=console.STYLES, default="auto",
        help="text (for people) or logfmt (key=value lines, README \"Log lines\"); "
        "auto: text on a terminal, else logfmt",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    check = sub.add_parser(
        "check", help="check configuration and environment (--probe: and the backup host)",
        description=CHECK_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    _config_option(check, argparse.SUPPRESS)
    _dest_option(check, argparse.SUPPRESS)
    check.add_argument(
        "--probe", action="store_true",
        help="also make a real handshake with each backup host, transferring nothing",
    )  # fmt: skip
    check.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="print the probe's log lines")  # fmt: skip
    setup = sub.add_parser(
        "setup", help="create the login key and directories, print the line to authorize it",
        description=SETUP_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    _config_option(setup, argparse.SUPPRESS)
    setup.add_argument(
        "--name", metavar="HOST",
        help="the name the backup host files this host under (default: the short host name)",
    )  # fmt: skip
    return parser


def take_privileges(cfg: InitiatorConfig, warn: Any) -> None:
    """Root drops to cfg.user keeping CAP_DAC_READ_SEARCH; others hold what they got."""
    if os.geteuid() == 0:
        caps.drop_to_user(cfg.user, caps.INITIATOR_CAPS)
    elif caps.have(caps.INITIATOR_CAPS):
        caps.hold_quietly(caps.INITIATOR_CAPS)
    else:
        from pullsnap.initiator import advice

        warn(MISSING_CAP_WARNING.format(command=advice.initiator(cfg)))


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
        if args.command == "setup":
            from pullsnap.initiator import setup

            return setup.run(cfg, args.name)
        destinations = _select(cfg, args.dest)
        checked = errors.OK
        if args.command == "check":
            from pullsnap.initiator import check

            checked = check.run(cfg, probe=args.probe)
            if not args.probe:
                return checked
        take_privileges(cfg, lambda text: print(text, file=sys.stderr))
    except errors.PullsnapError as e:
        print(f"initiator: {e}", file=sys.stderr)
        return e.exit_code
    if args.command == "check":
        probed = console.run_all(cfg, destinations, now=True, verbose=args.verbose, probe=True,
                                 style="text")  # fmt: skip
        return probed or checked
    return console.run_all(
        cfg, destinations, now=args.now, verbose=args.verbose, probe=args.dry_run,
        style=args.format,
    )  # fmt: skip


def entry() -> None:
    """The `initiator` command (pyproject.toml [project.scripts])."""
    from pullsnap.fastexit import exit_now

    exit_now(main())


if __name__ == "__main__":
    entry()
