"""`grabber authorize`, `deauthorize`, `install-launcher` and `check`: setting
up the backup host."""

from __future__ import annotations

import argparse
import os
import sys

from pullsnap import errors
from pullsnap.grabber.commands import arguments
from pullsnap.grabber.setup import authorize, check
from pullsnap.grabber.setup.launcher import DEFAULT_LAUNCHER


def register_authorize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "authorize", help="bind a backed-up host's login key to its host name",
        description="Add (or replace) the authorized_keys line that binds KEY to HOST: "
        "that key can then only start backups into <repository>/HOST.",
    )  # fmt: skip
    p.add_argument("host", type=arguments.host, metavar="HOST")
    p.add_argument("key", metavar="KEY", help="the public key, 'ssh-ed25519 AAAA...'")
    p.add_argument("--user", default="pullsnap", help="the grabber account (pullsnap)")
    p.add_argument(
        "--bind-config", action="store_true",
        help="name this --config in the line (when it is not the default path)",
    )  # fmt: skip
    p.add_argument(
        "--from", dest="sources", metavar="ADDR", action="append", default=[],
        help="accept the key only from this address or network (address/bits); "
        "repeat or separate with commas: sshd's from=\"...\" option",
    )  # fmt: skip
    p.set_defaults(handler=run_authorize)
    p = sub.add_parser("deauthorize", help="remove a host's authorized_keys lines")
    p.add_argument("host", type=arguments.host, metavar="HOST")
    p.add_argument("--user", default="pullsnap", help="the grabber account (pullsnap)")
    p.set_defaults(handler=run_deauthorize)
    p = sub.add_parser(
        "install-launcher", help="install the capability launcher for rsync --super (root)",
        description="Compile the launcher, give it the receiver capabilities (=p) and "
        "CAP_SYS_ADMIN (used only to put rsync in a read-only mount namespace, then dropped), "
        "make it mode 0750 root:<user's group>.  Then make it the user's login shell.",
    )  # fmt: skip
    p.add_argument("--user", default="pullsnap", help="the grabber account (pullsnap)")
    p.add_argument("--dest", default=DEFAULT_LAUNCHER, help="where to install it")
    p.set_defaults(handler=run_install_launcher)


def run_authorize(args: argparse.Namespace) -> int:
    config = os.path.abspath(args.config) if args.bind_config else None
    sources = [part for value in args.sources for part in value.split(",") if part.strip()]
    line = authorize.authorize(args.user, args.host, args.key, config, sources)
    print(f"grabber: {authorize.authorized_keys_path(args.user)}: {line.strip()}")
    return errors.OK


def run_deauthorize(args: argparse.Namespace) -> int:
    removed = authorize.deauthorize(args.user, args.host)
    print(f"grabber: {args.host}: " + ("removed" if removed else "had no lines"))
    return errors.OK


def run_install_launcher(args: argparse.Namespace) -> int:
    from pullsnap.grabber.setup import launcher

    launcher.install_for(args.user, args.dest)
    print(f"grabber: installed {args.dest}; now: usermod --shell {args.dest} {args.user}")
    return errors.OK


def register_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="check this backup host: account, capabilities, rsync, repository, keys",
        description=check.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--user", help="the grabber account (default: pullsnap; yourself if not root)")
    p.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    cfg = arguments.config(args)
    return check.check_host(cfg, args.user or check.default_user(), sys.argv[0], sys.stdout)
