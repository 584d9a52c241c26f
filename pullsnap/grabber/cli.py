"""`grabber`: the backup host's command.

Started by sshd as a login shell (`grabber -c COMMAND`), it serves one
backup.  Started by an operator, it lists and manages the repository.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from pullsnap import errors
from pullsnap.config import DEFAULT_GRABBER_CONFIG, load_grabber
from pullsnap.grabber import admin, listing

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
    parser.add_argument(
        "--config", default=DEFAULT_GRABBER_CONFIG, metavar="FILE",
        help=f"grabber configuration (default {DEFAULT_GRABBER_CONFIG})",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_list = sub.add_parser("list", help="list snapshots and attempts per host")
    p_list.add_argument("hosts", nargs="*", metavar="HOST", help="only these hosts")
    p_auth = sub.add_parser(
        "authorize", help="bind a backed-up host's login key to its host name",
        description="Add (or replace) the authorized_keys line that binds KEY to HOST: "
        "that key can then only start backups into <repository>/HOST.",
    )  # fmt: skip
    p_auth.add_argument("host", metavar="HOST")
    p_auth.add_argument("key", metavar="KEY", help="the public key, 'ssh-ed25519 AAAA...'")
    p_auth.add_argument("--user", default="pullsnap", help="the grabber account (pullsnap)")
    p_auth.add_argument(
        "--bind-config", action="store_true",
        help="name this --config in the line (when it is not the default path)",
    )  # fmt: skip
    p_deauth = sub.add_parser("deauthorize", help="remove a host's authorized_keys lines")
    p_deauth.add_argument("host", metavar="HOST")
    p_deauth.add_argument("--user", default="pullsnap", help="the grabber account (pullsnap)")
    p_launch = sub.add_parser(
        "install-launcher", help="install the capability launcher for rsync --super (root)",
        description="Compile the launcher, give it the receiver capabilities (=p), make it "
        "mode 0750 root:<user's group>.  Then make it the user's login shell.",
    )  # fmt: skip
    p_launch.add_argument("--user", default="pullsnap", help="the grabber account (pullsnap)")
    p_launch.add_argument("--dest", default=admin.DEFAULT_LAUNCHER, help="where to install it")
    p_launch.add_argument(
        "--security-xattrs", action="store_true",
        help="also grant CAP_SYS_ADMIN, for security.* xattrs other than capabilities",
    )  # fmt: skip
    return parser


def _admin(args: argparse.Namespace) -> int:
    if args.command == "authorize":
        config = os.path.abspath(args.config) if args.bind_config else None
        line = admin.authorize(args.user, args.host, args.key, config)
        print(f"grabber: {admin.authorized_keys_path(args.user)}: {line.strip()}")
        return errors.OK
    if args.command == "deauthorize":
        removed = admin.deauthorize(args.user, args.host)
        print(f"grabber: {args.host}: " + ("removed" if removed else "had no lines"))
        return errors.OK
    if args.command == "install-launcher":
        import grp
        import pwd

        from pullsnap import caps
        from pullsnap.grabber.launcher import install_launcher

        entry = pwd.getpwnam(args.user)
        group = grp.getgrgid(entry.pw_gid).gr_name
        wanted = (
            caps.RECEIVER_SECURITY_XATTR_CAPS if args.security_xattrs else caps.RECEIVER_SUPER_CAPS
        )
        os.makedirs(os.path.dirname(args.dest), mode=0o755, exist_ok=True)
        install_launcher(args.dest, group, sys.executable, wanted)
        print(f"grabber: installed {args.dest}; now: usermod --shell {args.dest} {args.user}")
        return errors.OK
    return errors.USAGE


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    if _is_login_shell(argv):
        from pullsnap.grabber import receiver
        from pullsnap.grabber.serve import serve

        # Before any thread exists: capabilities are per thread.
        held = receiver.hold_quietly_at_start()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _on_signal)
        return serve(argv, os.environ, sys.stdin.fileno(), sys.stdout, held)
    parser = build_parser()
    args = parser.parse_args(argv[1:])
    if args.command is None:
        parser.print_help()
        return errors.USAGE
    try:
        if args.command in ("authorize", "deauthorize", "install-launcher"):
            return _admin(args)
        cfg = load_grabber(args.config)
        if args.command == "list":
            print(listing.render(cfg.repository, args.hosts), end="")
            return errors.OK
    except errors.PullsnapError as e:
        print(f"grabber: {e}", file=sys.stderr)
        return e.exit_code
    parser.print_help()
    return errors.USAGE


if __name__ == "__main__":
    sys.exit(main())
