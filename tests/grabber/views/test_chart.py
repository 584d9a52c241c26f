"""The report's run chart (chart.py, pure): the last runs, one mark each."""

from __future__ import annotations

from pullsnap.grabber.store.repository import classify
from pullsnap.grabber.views import chart


def test_points_are_the_finished_runs_oldest_first_and_capped() -> None:
    attempts = [
        classify(f"2026-11-{d:02d}T020000Z", {"state": "complete", "seconds": d,
                 "stats": {"transferred_size": d * 1000}}, True, False)
        for d in range(1, 29)
    ] + [classify("2026-11-29T020000Z", {"state": "running"}, False, True)]  # fmt: skip
    found = chart.points(attempts, limit=5)
    assert [p.name for p in found] == [f"2026-11-{d:02d}T020000Z" for d in range(24, 29)]
    assert found[-1] == chart.Point("2026-11-28T020000Z", 28000, 28.0, "complete")


def test_the_svg_marks_failed_and_suspect_runs_and_fetches_nothing() -> None:
    runs = [
        chart.Point("a", 1 << 20, 10, "complete"), chart.Point("b", 0, 3, "failed"),
        chart.Point("c", 5, 12, "suspect"), chart.Point("d", 2 << 20, 11, "unpublished"),
    ]  # fmt: skip
    svg = chart.svg(runs)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 1  # only the good run has a bar
    assert svg.count(">x<title>") == 2 and svg.count(">!<title>") == 1
    assert "href" not in svg and "<script" not in svg
    assert "no runs yet" in chart.svg([])
