"""`grabber verify`: re-read stored files against the manifests."""

from __future__ import annotations

import argparse
import datetime as dt

from pullsnap import errors
from pullsnap.grabber import hints
from pullsnap.grabber.commands import arguments
from pullsnap.grabber.integrity import verify
from pullsnap.grabber.views import readonly


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="re-read stored files and compare them with the snapshots' manifests",
        description="Each run records a BLAKE2b hash of every file it stored anew.  verify "
        "re-reads the files of one snapshot (or all) of HOST and names every file that no "
        "longer matches, with every snapshot sharing it.  Exit status 1 on any mismatch.  "
        "Run it as root when the snapshots were made with --super (their files keep their "
        "owners' modes).",
    )  # fmt: skip
    p.add_argument("host", type=arguments.host, metavar="HOST")
    p.add_argument("snapshot", nargs="?", metavar="SNAPSHOT", help="only this snapshot")
    p.add_argument("--sample", type=arguments.fraction, default=1.0, metavar="FRACTION",
                   help="check only this random fraction of the files (e.g. 0.05)")  # fmt: skip
    p.set_defaults(handler=run_verify)


def run_verify(args: argparse.Namespace) -> int:
    cfg = arguments.config(args)
    host = readonly.existing_host(cfg, args.host)
    outcome = verify.verify_host(host, args.snapshot, args.sample, config=cfg.path)
    trees = [a for a in host.attempts() if a.has_tree]
    for line in verify.report(host, outcome, trees):
        print(line)
    print(verify.summary(host, outcome))
    again = [args.host, *([args.snapshot] if args.snapshot else []),
             *(["--sample", str(args.sample)] if args.sample < 1 else [])]  # fmt: skip
    verify.remember(host, outcome, args.snapshot, args.sample, dt.datetime.now(dt.UTC))
    verify.require_all_readable(outcome, hints.grabber(cfg.path, "verify", *again))
    return errors.FAILED if outcome.mismatches else errors.OK
