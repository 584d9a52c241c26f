"""`key=value` log lines for machines: cron mail filters, the journal, log shippers.

    dest=vault result=ok exit=0 snapshot=web1/2026-11-25T021700Z files=48211 ...

A value is written bare when it is a non-empty run of printable characters
without space, `"`, `=` or `\\`; otherwise as a JSON string, so every line
splits back into the same pairs (`parse`).  Pure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

_BARE_RE = re.compile(r'^[^\s"=\\]+\Z')
_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*\Z")
_PAIR_RE = re.compile(r'([a-z][a-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s"=\\]*)(?:\s+|\Z)')


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    if _BARE_RE.match(text) and text.isprintable():
        return text
    # JSON escapes only U+0000-001F; DEL, C1 controls and invisible characters
    # get \uXXXX too, so a line reaches a terminal or a mail as text.
    quoted = json.dumps(text, ensure_ascii=False)
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in quoted)


def line(pairs: Iterable[tuple[str, Any]]) -> str:
    """One log line from (key, value) pairs, in order; None values are left out."""
    words = []
    for key, value in pairs:
        if not _KEY_RE.match(key):
            raise ValueError(f"bad log key {key!r}")
        if value is not None:
            words.append(f"{key}={value_text(value)}")
    return " ".join(words)


def parse(text: str) -> dict[str, str]:
    """The pairs of a line `line` wrote (values as strings)."""
    pairs: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _PAIR_RE.match(text, pos)
        if match is None:
            raise ValueError(f"not a key=value line at column {pos}: {text!r}")
        raw = match.group(2)
        pairs[match.group(1)] = json.loads(raw) if raw.startswith('"') else raw
        pos = match.end()
    return pairs
