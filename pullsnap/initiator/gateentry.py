"""`initiator gate`: the gate as a subcommand, with roots from the config.

sshd's forced command passes `--root` explicitly.  An operator asking
`initiator gate --dry-run` why a command line is refused may leave the
roots out: they are then the sources of every configured destination.
"""

from __future__ import annotations

import sys

from pullsnap.errors import PullsnapError


def _pop_config(argv: list[str]) -> tuple[str | None, list[str]]:
    rest: list[str] = []
    config = None
    words = iter(argv)
    for word in words:
        if word in ("-c", "--config"):
            config = next(words, None)
        elif word.startswith("--config="):
            config = word.split("=", 1)[1]
        else:
            rest.append(word)
    return config, rest


def main(argv: list[str]) -> int:
    from pullsnap.initiator import gatecmd

    config, rest = _pop_config(argv)
    wants_help = any(w in ("-h", "--help") for w in rest)
    if not wants_help and not any(w == "--root" or w.startswith("--root=") for w in rest):
        from pullsnap.config import DEFAULT_INITIATOR_CONFIG, load_initiator

        try:
            cfg = load_initiator(config or DEFAULT_INITIATOR_CONFIG)
        except PullsnapError as e:
            print(f"gate error: no --root given and {e}", file=sys.stderr)
            return 1
        roots = dict.fromkeys(s for d in cfg.destinations for s in d.sources)
        for root in roots:
            rest += ["--root", root]
        rest = ["--rsync", cfg.rsync, *rest]
    return gatecmd.main(rest)
