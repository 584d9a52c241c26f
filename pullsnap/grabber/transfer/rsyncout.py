"""What rsync writes, read (pure): --stats lines, the itemized names of
what it stored (our --out-format), and its per-file error lines."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# Each file rsync changes in the new tree is one stdout line "<marker><%i>
# <%b> <%n>" (rsync(1) --out-format, --itemize-changes): the manifest hashes
# those.  With %b in the format, rsync writes a transferred file's line once
# its data is written (and, in place, truncated), before it sets the file's
# times and modes.
ITEM_MARKER = "pullsnap-item "
OUT_FORMAT = "%i %b %n"


# --- stats -------------------------------------------------------------------------

_STAT_KEYS = {
    "Number of files": "files",
    "Number of created files": "created_files",
    "Number of deleted files": "deleted_files",
    "Number of regular files transferred": "transferred_files",
    "Total file size": "total_size",
    "Total transferred file size": "transferred_size",
    "Literal data": "literal_data",
    "Matched data": "matched_data",
    "File list size": "file_list_size",
    "Total bytes sent": "bytes_sent",
    "Total bytes received": "bytes_received",
}
_STAT_RE = re.compile(r"^([A-Za-z ]+): ([0-9,]+)")


def parse_stats(lines: Sequence[str]) -> dict[str, int]:
    """rsync --stats output -> {"files": n, "transferred_size": bytes, ...}."""
    stats: dict[str, int] = {}
    for line in lines:
        match = _STAT_RE.match(line.strip())
        if match and match.group(1) in _STAT_KEYS:
            stats[_STAT_KEYS[match.group(1)]] = int(match.group(2).replace(",", ""))
    return stats


# --- itemized changes and error lines (pure) ----------------------------------------

# rsync(1) --itemize-changes: Y is ">" received, "c" created locally (a copy
# from a --link-dest tree whose attributes differ), "h" a hard link to
# another file of this transfer; X "f" is a regular file.
NEW_FILE_KINDS = (">f", "cf", "hf")
_OCTAL_ESCAPE_RE = re.compile(rb"\\#([0-7]{3})")


def unescape_name(text: str) -> bytes:
    """rsync's output escapes unprintable bytes (and a backslash before '#')
    as \\#ooo (rsync(1) --8-bit-output); undo it."""
    raw = text.encode("utf-8", "surrogateescape")
    return _OCTAL_ESCAPE_RE.sub(lambda m: bytes([int(m.group(1), 8)]), raw)


def parse_item(line: str) -> tuple[str, bytes] | None:
    """A marked --out-format line -> (itemize code, path relative to the target)."""
    if not line.startswith(ITEM_MARKER):
        return None
    code, sep, rest = line[len(ITEM_MARKER) :].partition(" ")
    sent, gap, name = rest.partition(" ")
    if not sep or not gap or len(code) < 2 or not sent.replace(",", "").isdigit() or not name:
        return None
    # A local transfer with --relative names absolute paths: still relative to the target.
    return code, unescape_name(name).lstrip(b"/")


def is_new_file(code: str) -> bool:
    """Did rsync store this file anew (not a hard link to a --link-dest file)?"""
    return code[:2] in NEW_FILE_KINDS


# rsync's per-file errors name the file in double quotes (log.c rsyserr and
# the calls in sender.c, flist.c, receiver.c), e.g.
#   rsync: [sender] send_files failed to open "/etc/shadow": Permission denied (13)
#   rsync: [sender] opendir "/root" failed: Permission denied (13)
#   rsync: [sender] readlink_stat("/proc/1/cwd") failed: Permission denied (13)
_FAILED_PATH_RE = re.compile(r'^rsync: (?:\[\w+\] )?(.*?)"(.+)"(?:[^"]*?): (.+)$')


def failed_path(line: str) -> dict[str, str] | None:
    """{"path", "error"} for one rsync error line about a file, or None."""
    match = _FAILED_PATH_RE.match(line.strip())
    if match is None:
        return None
    # flist.c names some calls with the file inside: readlink_stat("/x") failed.
    call = match.group(1).strip().removesuffix("(").strip()
    return {"path": match.group(2), "error": f"{call}: {match.group(3)}"}


# strerror(ENOENT): a source path (or a file below it) that is not there.
_MISSING = "No such file or directory"
SHOWN_PATHS = 3


def is_missing(failed: Mapping[str, Any]) -> bool:
    """A failed path that does not exist on the backed-up host (vs unreadable)."""
    return _MISSING in str(failed.get("error", ""))


def failed_summary(failed: Sequence[Mapping[str, Any]], total: int) -> str:
    """What a partial run could not read, as its verdict and record say it (pure):
    `2 unreadable: /etc/shadow, /root; 1 missing: /srv/data`.  `failed` is
    the first of them (the record keeps up to MAX_FAILED_PATHS), `total` all."""
    missing = [str(f.get("path", "?")) for f in failed if is_missing(f)]
    unreadable = [str(f.get("path", "?")) for f in failed if not is_missing(f)]
    counts = (total - len(missing), len(missing))
    parts = []
    for what, paths, count in (("unreadable", unreadable, counts[0]),
                               ("missing", missing, counts[1])):  # fmt: skip
        if count <= 0:
            continue
        more = count - min(len(paths), SHOWN_PATHS)
        named = ", ".join(paths[:SHOWN_PATHS]) + (f" and {more} more" if more > 0 else "")
        parts.append(f"{count} {what}: {named}" if paths else f"{count} {what}")
    return "; ".join(parts)
