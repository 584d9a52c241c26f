"""The operator's command line, apart from the domain (borg's archiver/*_cmd.py).

Each module registers the argparse subcommands of one group and holds their
thin handlers: read the configuration once, call the domain, print.  The
domain modules carry no argparse and load no configuration.  Only the
operator's parser imports this package: a backup (the login shell) starts
without it.
"""

from __future__ import annotations

import argparse

from pullsnap.grabber.commands import (
    hostsetup,
    migrate,
    monitor,
    prune,
    restore,
    runs,
    snapshots,
    verify,
)

# In the order `grabber --help` lists them.
REGISTER = (
    runs.register_list,
    hostsetup.register_authorize,
    runs.register_allow_run,
    runs.register_accept,
    monitor.register_status,
    monitor.register_report,
    restore.register,
    snapshots.register,
    hostsetup.register_check,
    prune.register,
    verify.register,
    migrate.register,
)


def register(sub: argparse._SubParsersAction) -> None:
    for add in REGISTER:
        add(sub)
