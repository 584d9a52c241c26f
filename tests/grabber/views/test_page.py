"""The HTML report and its SVG chart (pure): self-contained, escaped, marked."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

from pullsnap.grabber.store.repository import classify, snapshot_name
from pullsnap.grabber.views import chart, health, page

NOW = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.UTC)


def _attempt(minutes_ago: int, state: str = "complete", added: int = 1000, **record):
    name = snapshot_name(NOW - dt.timedelta(minutes=minutes_ago))
    body = {"state": state, "seconds": 10.0 + minutes_ago % 7,
            "stats": {"transferred_size": added}, **record}  # fmt: skip
    return classify(name, body, state != "failed", False)


def test_points_keep_the_last_runs_that_finished() -> None:
    attempts = [_attempt(m) for m in range(100, 0, -1)]
    running = classify(snapshot_name(NOW), {"state": "running"}, False, True)
    found = chart.points([*attempts, running], locked=True)
    assert len(found) == chart.RUNS
    assert found[-1].name == attempts[-1].name and found[0].name == attempts[-60].name


def test_svg_bars_marks_and_titles() -> None:
    suspect = _attempt(10, added=0, suspect={"reason": "x"})
    attempts = [_attempt(30, added=10**9), _attempt(20, state="failed"), suspect,
                _attempt(5, added=5000)]  # fmt: skip
    svg = chart.svg(chart.points(attempts))
    assert svg.startswith("<svg ") and svg.endswith("</svg>")
    assert svg.count("<rect") == 2  # the good runs
    assert svg.count(">x<title>") == 1 and svg.count(">!<title>") == 1
    assert "<polyline" in svg and "+953.7 MiB" in svg
    heights = [float(h) for h in re.findall(r'<rect[^>]* height="([0-9.]+)"', svg)]
    assert heights[0] > heights[1] > 0
    assert "no runs yet" in chart.svg([])


def test_rows_and_stale_marks() -> None:
    fresh = health.summarize("web1", [_attempt(30)], now=NOW, max_age=3600, used=1 << 30)
    stale = health.summarize("web<2>", [], now=NOW, max_age=3600)
    text = page.render(
        [fresh, stale], {"web1": chart.points([_attempt(30)])}, repository="/srv/pullsnap",
        backup_host="vault", free=5 << 30, now=NOW,
    )  # fmt: skip
    assert "1 of 2 hosts stale" in text and "5.0 GiB free" in text
    row1 = re.search(r'<tr id="host-web1">.*?</tr>', text, re.S)
    assert row1 is not None and fresh.last_good in row1.group(0) and "1.0 GiB" in row1.group(0)
    assert "STALE" not in row1.group(0)
    assert '<tr id="host-web&lt;2&gt;" class="stale">' in text  # escaped, marked
    assert "never backed up" in text
    # Nothing to load and nothing to run.
    assert not re.search(r"<script|<link|<img|\bsrc=|\bhref=|url\(|@import|https?:", text, re.I)
    assert "default-src 'none'" in text


def test_the_page_is_well_formed() -> None:
    """Every element that opens closes (void elements aside)."""
    s = health.summarize("web1", [_attempt(30), _attempt(20, state="failed")], now=NOW,
                         max_age=3600)  # fmt: skip
    text = page.render([s], {"web1": chart.points([_attempt(30)])}, repository="/r",
                       backup_host="vault", free=None, now=NOW)  # fmt: skip
    void = {"meta", "br", "hr", "img", "input", "link"}
    stack: list[str] = []

    class Checker(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag not in void:
                stack.append(tag)

        def handle_startendtag(self, tag, attrs):
            pass

        def handle_endtag(self, tag):
            assert stack and stack.pop() == tag, (tag, stack)

    Checker().feed(text)
    assert stack == []
