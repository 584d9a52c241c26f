"""What may be backed up and left out (pure): source paths and exclude
patterns, the same rule for the configuration that names them and for the
handoff that carries them to the backup host.  Each check raises ValueError
with the problem in words; the caller says where it came from."""

from __future__ import annotations

import re

MAX_PATH_LEN = 4096
MAX_EXCLUDE_LEN = 1024

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_GLOB_CHARS = frozenset("*?[")
# `--exclude` honours rsync's old rule prefixes ("+ ", "- ", "!"), so such a
# line would turn an exclude into an include or clear the list (rsync(1)
# FILTER RULES, "--exclude" and "!").  Merge-rule lookalikes are refused too:
# an exclude list never needs them.
_RULE_LOOKALIKE_RE = re.compile(r"^(?:[-+!]|(?:merge|dir-merge|[.:])(?:[ ,_]|$))")


def check_source_path(path: str) -> None:
    """Absolute, normalised, printable, no glob characters."""
    if not path.startswith("/"):
        raise ValueError(f"source path {path!r} is not absolute")
    if len(path) > MAX_PATH_LEN:
        raise ValueError(f"a source path is longer than {MAX_PATH_LEN} characters")
    if _CONTROL_RE.search(path):
        raise ValueError(f"source path {path!r} contains control characters")
    if _GLOB_CHARS & set(path):
        raise ValueError(f"source path {path!r} contains glob characters")
    parts = path.split("/")[1:]
    if path != "/" and any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"source path {path!r} is not normalised")


def check_exclude(pattern: str) -> None:
    """A plain exclude pattern: no control bytes, no rule prefixes."""
    if not pattern or len(pattern) > MAX_EXCLUDE_LEN:
        raise ValueError("an exclude pattern is empty or too long")
    if _CONTROL_RE.search(pattern):
        raise ValueError(f"exclude {pattern!r} contains control characters")
    if _RULE_LOOKALIKE_RE.match(pattern):
        raise ValueError(f"exclude {pattern!r} looks like an rsync option or filter rule")
