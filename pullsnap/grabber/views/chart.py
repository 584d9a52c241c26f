"""A small inline SVG chart of a host's recent runs (pure).

    ▂ ▁ ▇ ▁ ▁ ▂ ▁ ▁ ▅ ▁     bars: bytes added per run (log scale, the first
    ╰─╮___╭──────╮__╭─      full run would flatten the rest); line: duration
    x     !                 marks: failed (x) or suspect (!) runs

Every bar carries a <title>, which browsers show on hover without any
script, and the whole chart has an aria-label.  No external references.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from pullsnap.grabber.store.base import recorded_added
from pullsnap.grabber.store.repository import GOOD_STATES, Attempt
from pullsnap.grabber.views.health import shown_state
from pullsnap.units import human_duration, human_size

RUNS = 60
WIDTH, HEIGHT = 300, 60
BAR_AREA = 44  # pixels for bars and the line; the rest holds the marks
COLOURS = {"good": "#4878a8", "line": "#d07a20", "failed": "#c0392b", "suspect": "#b7950b"}


@dataclass(frozen=True)
class Point:
    name: str
    added: int
    seconds: float
    state: str


def points(attempts: Sequence[Attempt], locked: bool = False, limit: int = RUNS) -> list[Point]:
    """The last `limit` finished runs, oldest first."""
    found = []
    for a in attempts:
        if "seconds" not in a.record:
            continue
        seconds = a.record.get("seconds", 0)
        found.append(
            Point(
                a.name,
                recorded_added(a.record).bytes,
                float(seconds) if isinstance(seconds, int | float) else 0.0,
                shown_state(a, locked),
            )
        )
    return found[-limit:]


def _kind(state: str) -> str:
    if state in GOOD_STATES:
        return "good"
    return "suspect" if state == "suspect" else "failed"


def svg(runs: Sequence[Point], width: int = WIDTH, height: int = HEIGHT) -> str:
    """The chart as an <svg> element; an empty chart says so."""
    label = f"{len(runs)} runs: bars are bytes added (log scale), the line is duration"
    head = (
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
    )
    if not runs:
        return head + f'<text x="4" y="{height // 2}" font-size="11">no runs yet</text></svg>'
    # One slot per run of the last RUNS, newest at the right edge, so charts
    # of hosts with fewer runs still line up.
    slot = width / max(len(runs), RUNS)
    left = width - slot * len(runs)
    top = max(math.log1p(p.added) for p in runs) or 1.0
    longest = max(p.seconds for p in runs) or 1.0
    parts = [head]
    line = []
    for i, p in enumerate(runs):
        x = left + i * slot
        kind = _kind(p.state)
        h = max(1.0, BAR_AREA * math.log1p(p.added) / top) if kind == "good" else 0.0
        tip = escape(f"{p.name}: {p.state}, +{human_size(p.added)}, {human_duration(p.seconds)}")
        if kind == "good":
            parts.append(
                f'<rect x="{x + 0.5:.1f}" y="{BAR_AREA - h:.1f}" width="{max(slot - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{COLOURS["good"]}"><title>{tip}</title></rect>'
            )
        else:
            mark = "x" if kind == "failed" else "!"
            parts.append(
                f'<text x="{x + slot / 2:.1f}" y="{height - 3}" font-size="10" '
                f'text-anchor="middle" fill="{COLOURS[kind]}">{mark}<title>{tip}</title></text>'
            )
        line.append(f"{x + slot / 2:.1f},{BAR_AREA - BAR_AREA * p.seconds / longest:.1f}")
    if len(line) > 1:
        parts.append(
            f'<polyline points="{" ".join(line)}" fill="none" stroke="{COLOURS["line"]}" '
            f'stroke-width="1.5"><title>duration, longest {human_duration(longest)}</title>'
            "</polyline>"
        )
    parts.append("</svg>")
    return "".join(parts)
