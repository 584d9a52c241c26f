"""bench/report.py: where pullsnap's time goes, from the phases its records give."""

from __future__ import annotations

from bench import report


def _step(tool: str, scenario: str, wall: float, **phases: float) -> dict:
    return {"tool": tool, "scenario": scenario, "rep": 0, "wall": wall, "cpu": wall,
            **{report.PHASE + name: seconds for name, seconds in phases.items()}}  # fmt: skip


def test_the_phase_table_gives_medians_and_the_rest_of_the_wall_time() -> None:
    steps = [
        _step("pullsnap-btrfs", "nochange", 3.0, rsync=1.8, manifest=0.2, publish=0.1),
        _step("pullsnap-btrfs", "nochange", 3.4, rsync=2.0, manifest=0.3, publish=0.1),
        _step("rsnapshot-btrfs", "nochange", 2.2),  # no phases: no row
    ]
    lines = report.phase_table(steps)
    assert lines[0].startswith("### Where pullsnap's time goes")
    header = lines[2].strip("| ").split(" | ")
    assert header[:2] == ["tool", "scenario"] and header[-1] == "rest of the wall time"
    [row] = [line for line in lines if line.startswith("| pullsnap-btrfs")]
    cells = dict(zip(header, row.strip("| ").split(" | "), strict=True))
    assert (cells["rsync"], cells["manifest"], cells["publish"]) == ("1.90", "0.25", "0.10")
    assert cells["prepare"] == "0.00"  # a phase the record did not name
    assert cells["rest of the wall time"] == "0.95"  # each step's rest (0.9, 1.0), median
    assert not any("rsnapshot" in line for line in lines)


def test_no_phases_no_table() -> None:
    assert report.phase_table([_step("rsync-ssh", "full", 9.0)]) == []
