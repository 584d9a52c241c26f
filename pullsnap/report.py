"""What the grabber tells the initiator on ssh's stdout, one line each.

    pullsnap-progress {"bytes": 1048576, "percent": 12, "rate": "3.1MB/s", "eta": "0:00:07"}
    pullsnap-log <free text>
    pullsnap-queued <free text>      waiting for a pull slot; keeps the door open
    pullsnap-result {"status": "ok", "exit": 0, "snapshot": "2026-11-25T141500Z", ...}

Lines that start with none of these are passed on as log text, so a
grabber that dies with a traceback is still readable on the initiator.
Pure: builders return str, `parse_line` returns a tagged tuple.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

PROGRESS = "pullsnap-progress"
LOG = "pullsnap-log"
QUEUED = "pullsnap-queued"
RESULT = "pullsnap-result"

# rsync --info=progress2 prints "  1,234,567  12%    3.10MB/s    0:00:07 (xfr#3, to-chk=10/20)"
_PROGRESS2_RE = re.compile(
    r"^\s*([0-9,]+)\s+([0-9]+)%\s+(\S+/s)\s+([0-9:]+)(?:\s+\((?:xfr#([0-9]+))?[^)]*\))?\s*$"
)


@dataclass(frozen=True)
class Progress:
    bytes: int
    percent: int
    rate: str
    eta: str
    files: int = 0


def progress_line(p: Progress) -> str:
    body = {"bytes": p.bytes, "percent": p.percent, "rate": p.rate, "eta": p.eta, "files": p.files}
    return f"{PROGRESS} {json.dumps(body, separators=(',', ':'))}"


def log_line(text: str) -> str:
    return f"{LOG} {text}"


def queued_line(text: str) -> str:
    return f"{QUEUED} {text}"


def result_line(result: dict[str, Any]) -> str:
    return f"{RESULT} {json.dumps(result, sort_keys=True, separators=(',', ':'))}"


def parse_rsync_progress(text: str) -> Progress | None:
    """One `--info=progress2` update, or None if `text` is not one."""
    match = _PROGRESS2_RE.match(text)
    if match is None:
        return None
    return Progress(
        bytes=int(match.group(1).replace(",", "")),
        percent=int(match.group(2)),
        rate=match.group(3),
        eta=match.group(4),
        files=int(match.group(5) or 0),
    )


def printable(text: str) -> str:
    """`text` with every control or invisible character escaped as rsync
    escapes them (\\#ooo per byte, rsync(1) --8-bit-output), for a terminal.

    What the grabber sends is the backup host's text: a compromised one must
    not move the cursor, retitle or clear the initiator operator's terminal.
    The grabber applies it to stderr lines too: rsync escapes what it relays
    from the far side, but ssh copies the remote's stderr as it is, and those
    lines end up in records that `grabber list` and `status` print.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch == "\t" or ch.isprintable():
            out.append(ch)
        else:
            out.extend(f"\\#{b:03o}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def parse_line(line: str) -> tuple[str, Any]:
    """Classify one line: (PROGRESS, Progress) | (RESULT, dict) | (LOG | QUEUED, str)."""
    tag, _, rest = line.partition(" ")
    if tag == PROGRESS:
        try:
            body = json.loads(rest)
            return PROGRESS, Progress(
                bytes=int(body["bytes"]),
                percent=int(body["percent"]),
                rate=str(body["rate"]),
                eta=str(body["eta"]),
                files=int(body.get("files", 0)),
            )
        except (ValueError, KeyError, TypeError, OverflowError):
            # OverflowError: JSON allows Infinity and 1e999, int() does not.
            return LOG, line
    if tag == RESULT:
        try:
            body = json.loads(rest)
        except ValueError:
            return LOG, line
        if isinstance(body, dict):
            return RESULT, body
        return LOG, line
    if tag == LOG:
        return LOG, rest
    if tag == QUEUED:
        return QUEUED, rest
    return LOG, line
