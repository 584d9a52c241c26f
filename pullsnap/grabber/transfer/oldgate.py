"""A backed-up host whose pullsnap predates the btrfs store (pure).

The btrfs store pulls with `rsync --inplace` (pull.py), and rsync's client
passes that option on to the sender (options.c server_options()).  A gate
from before the btrfs store has no "inplace" in its table and refuses the
whole command with one line on its stderr (initiator/gatecmd.py), which ssh
relays to the receiving rsync's stderr as it is:

    gate error: unknown option --inplace

Every gate since the allow-list was written prints exactly that line, and
nothing else in a run does.  The run has failed like any refused one (its
`.incomplete` tree is kept for the next run, store/btrfs.py plan()); only
its message changes, to say what to do.  A host keeps the store of its
snapshots (store/storekind.py choose()): `store = "hardlink"` helps only a
host that has none yet.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from pullsnap import errors
from pullsnap.config import DEFAULT_GRABBER_CONFIG

REFUSAL = "gate error: unknown option --inplace"


def refused_inplace(lines: Iterable[str]) -> bool:
    """Whether the sender's gate refused --inplace (rsync's stderr lines)."""
    return any(line.strip() == REFUSAL for line in lines)


def advice(host: str, has_snapshots: bool, config: str) -> str:
    """The run's one-line message (pure); `has_snapshots`: the host has good
    snapshots, subvolumes all (it stays on the btrfs store); `config`: the
    grabber's configuration file."""
    head = (
        f"{host}'s pullsnap is older than this backup host's btrfs store needs (its gate "
        f"refuses rsync --inplace): upgrade pullsnap on {host}"
    )
    if has_snapshots:
        return head + ' (its snapshots are subvolumes: store = "hardlink" does not apply to it)'
    where = config if os.path.isabs(config) else DEFAULT_GRABBER_CONFIG
    return head + f', or set store = "hardlink" in {where} until then'


def verdict(
    lines: Iterable[str], host: str, has_snapshots: Callable[[], bool], config: str
) -> tuple[str, int, str] | None:
    """(state, exit code, message) of a run or probe whose sender's gate
    refused --inplace (its rsync's stderr `lines`), else None;
    `has_snapshots` is asked only then."""
    if not refused_inplace(lines):
        return None
    return "failed", errors.REFUSED, advice(host, has_snapshots(), config)
