"""What a check found, and how `initiator check` and `grabber check` print it.

    ok: rsync 3.5.0
    problem: repository /srv/pullsnap is mode 0755 -- fix: chmod 0700 /srv/pullsnap

Every problem names the command or setting that fixes it; a note is for
something worth knowing that is not wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TextIO

OK, NOTE, PROBLEM = "ok", "note", "problem"


@dataclass(frozen=True)
class Finding:
    ok: bool
    text: str
    fix: str = ""
    note: bool = False  # ok, but worth saying (e.g. "--super would need ...")

    @property
    def level(self) -> str:
        return PROBLEM if not self.ok else NOTE if self.note else OK


def render(finding: Finding) -> str:
    """One line (pure)."""
    fix = f" -- fix: {finding.fix}" if finding.fix and not finding.ok else ""
    hint = f" ({finding.fix})" if finding.fix and finding.ok else ""
    return f"{finding.level}: {finding.text}{hint}{fix}"


def print_all(findings: Iterable[Finding], out: TextIO) -> int:
    """Print each finding as it comes; return the number of problems."""
    problems = 0
    for finding in findings:
        problems += not finding.ok
        print(render(finding), file=out, flush=True)
    return problems


def guarded(check: Callable[[], Iterable[Finding]], what: str) -> Iterable[Finding]:
    """Run one check; an OSError becomes a problem finding instead of a traceback."""
    try:
        yield from check()
    except OSError as e:
        where = f": {e.filename}" if e.filename else ""
        yield Finding(False, f"{what}: {e.strerror or e}{where}", "see the message")
