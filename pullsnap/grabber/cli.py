"""`grabber`: the backup host's command.

Started by sshd as a login shell (`grabber -c COMMAND`), it serves one
backup.  Started by an operator, it lists and manages the repository.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys

from pullsnap import errors
from pullsnap.config import DEFAULT_GRABBER_CONFIG

# Enough for the deepest tree rsync sends, with room for everything else.
DESCRIPTORS = 4096

DESCRIPTION = """\
pullsnap's backup-host side.

As the login shell of the backup user, sshd starts it for each backup; its
authorized_keys line binds each backed-up host's key to a host name:

  restrict,command="pullsnap-grabber host=web1" ssh-ed25519 AAAA... web1

Operators use the subcommands below.  Snapshots are plain directories:
<repository>/<host>/<YYYY-MM-DDTHHMMSSZ>/, newest good one at <host>/latest.
"""


def _is_login_shell(argv: list[str]) -> bool:
    return (len(argv) > 1 and argv[1] == "-c") or os.path.basename(argv[0]).startswith("-")


def _config_option(parser: argparse.ArgumentParser, default: object, *short: str) -> None:
    parser.add_argument(
        *short, "--config", default=default, metavar="FILE",
        help=f"grabber configuration (default {DEFAULT_GRABBER_CONFIG})",
    )  # fmt: skip


def enough_descriptors() -> None:
    """Walks of a snapshot tree hold a descriptor per directory level, and a
    backed-up host decides the depth (rsync sends about 1024 levels, the
    usual soft limit): raise the soft limit towards the hard one, as
    systemd.exec(5) LimitNOFILE= asks of programs that need more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = DESCRIPTORS if hard == resource.RLIM_INFINITY else min(hard, DESCRIPTORS)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _on_signal(signum: int, frame: object) -> None:
    # Unwind through the finally blocks: the agent dies, the private
    # directory goes, the record stays "running" and is marked
    # "interrupted" by the next run.
    raise SystemExit(errors.FAILED)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grabber",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _config_option(parser, DEFAULT_GRABBER_CONFIG)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the operator's parser needs the commands: a backup (the login
    # shell) starts without importing them.
    from pullsnap.grabber import commands

    commands.register(sub)
    # `grabber status --config FILE` as well as `grabber --config FILE
    # status`, as git and borg take theirs.  argparse copies a subparser's
    # values over the main parser's (Lib/argparse.py, _SubParsersAction),
    # so the subcommand's option has no default and sets `config` only
    # when given.  After the command `-c FILE` too, as `initiator -c FILE`;
    # before it, `-c` is the login shell's (sshd runs `grabber -c COMMAND`).
    for command in sub.choices.values():
        _config_option(command, argparse.SUPPRESS, "-c")
    parser.set_defaults(commands=tuple(sub.choices))
    return parser


def main(argv: list[str] | None = None, held: tuple[str, ...] | None = None) -> int:
    """`held`: the receiver capabilities login.py kept, when it started us."""
    argv = list(sys.argv if argv is None else argv)
    if _is_login_shell(argv):
        from pullsnap.grabber.session import binding

        if not binding.started_by_sshd(os.environ):
            known = build_parser().get_default("commands")
            print(f"grabber: {binding.login_mistake(argv, known)}", file=sys.stderr)
            return errors.REFUSED
        from pullsnap import caps

        if held is None:
            # Before any thread exists (capabilities are per thread), and
            # before the modules a backup needs are loaded.
            held = caps.hold_at_start(caps.GRABBER_LAUNCHER_CAPS)
        from pullsnap.grabber.session.serve import serve

        enough_descriptors()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _on_signal)
        return serve(argv, os.environ, sys.stdin.fileno(), sys.stdout, held)
    enough_descriptors()
    parser = build_parser()
    args = parser.parse_args(argv[1:])
    if args.command is None:
        parser.print_help()
        return errors.USAGE
    try:
        return int(args.handler(args))
    except errors.PullsnapError as e:
        print(f"grabber: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
