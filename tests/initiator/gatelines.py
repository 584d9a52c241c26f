"""What the gate's tests share (test_gate.py, test_gatecmd.py): the real
rsync client's command lines for the options the grabber uses, and rsync's
own escaping of a path (options.c safe_arg())."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RSYNC = shutil.which("rsync") or "/usr/bin/rsync"
# A directory name with every character a shell or rsync treats specially.
WEIRD = "x$y;z&|<>(){}\"'`!~#=,%+@^\\q é"

# rsync's client options we support, as the grabber and probes use them.
ACCEPTED_OPTIONS = [
    ["-a"],
    ["-aHAX"],
    ["-az"],
    ["-a", "--numeric-ids"],
    ["-aHAX", "--numeric-ids", "--inplace", "--delete", "--delete-excluded"],
    ["-a", "--timeout=300"],
    ["-a", "--bwlimit=100"],
    ["-a", "--bwlimit=1.5m"],
    ["-aR"],
    ["-an"],
    ["-ax"],
    ["-axx"],
    ["-ac"],
    ["-aW"],
    ["-aS"],
    ["-av"],
    ["-avv"],
    ["-r"],
    ["-aHAXRxz", "--numeric-ids", "--timeout=300", "--bwlimit=100"],
    ["-az", "--zc=zstd", "--zl=3"],
    ["-az", "--zc=zstd", "--zl=-5"],
    ["-azz"],
    ["-a", "--old-compress"],
    ["-ac", "--cc=xxh128"],
    ["-ac", "--cc=xxh64,md5"],
]


def escape(path: str) -> str:
    """Escape a file name the way rsync's client does (options.c safe_arg())."""
    return "".join("\\" + c if c in "!\"#$&'();<>`{|} \t\n\\" else c for c in path)


def sender(options: str, *paths: str) -> str:
    return f"rsync --server --sender {options} . " + " ".join(escape(p) for p in paths)
