"""The grabber-to-initiator line protocol, and rsync's progress lines."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullsnap import report
from pullsnap.report import LOG, PROGRESS, RESULT, Progress

RSYNC = shutil.which("rsync") or "/usr/bin/rsync"


@pytest.fixture(scope="module")
def progress2_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], int, int]:
    """(lines, total bytes, file count) of a real `rsync -a --info=progress2` run."""
    base = tmp_path_factory.mktemp("progress2")
    src = base / "src"
    (src / "sub").mkdir(parents=True)
    sizes = {"a": 3 * 1024 * 1024, "sub/b": 1024 * 1024 + 7, "c": 5}
    for name, size in sizes.items():
        (src / name).write_bytes(os.urandom(size))
    done = subprocess.run(
        [RSYNC, "-a", "--info=progress2", f"{src}/", f"{base / 'dst'}/"],
        capture_output=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
    )
    lines = re.split(r"[\r\n]", done.stdout.decode())
    return [line for line in lines if line.strip()], sum(sizes.values()), len(sizes)


def test_real_progress2_lines_parse(progress2_output: tuple[list[str], int, int]) -> None:
    lines, total, files = progress2_output
    parsed = [report.parse_rsync_progress(line) for line in lines]
    progress = [p for p in parsed if p is not None]
    assert progress, lines
    # Every line rsync printed here is a progress update.
    assert len(progress) == len(lines), [ln for ln, p in zip(lines, parsed, strict=True) if not p]
    final = progress[-1]
    assert final.bytes == total
    assert final.percent == 100
    assert final.files == files
    assert final.rate.endswith("/s")
    assert re.fullmatch(r"[0-9]+:[0-9]{2}:[0-9]{2}", final.eta)
    assert [p.bytes for p in progress] == sorted(p.bytes for p in progress)
    assert all(0 <= p.percent <= 100 for p in progress)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "sending incremental file list",
        "sent 4,001,266 bytes  received 92 bytes  8,002,716.00 bytes/sec",
        "total size is 4,000,003  speedup is 1.00",
        "Number of files: 6 (reg: 3, dir: 3)",
        "rsync error: some files/attrs were not transferred (code 23)",
        "  1,234  12%",
        "abc  12%  3.10MB/s  0:00:07",
        "pullsnap-progress {}",
    ],
)
def test_other_rsync_lines_are_not_progress(line: str) -> None:
    assert report.parse_rsync_progress(line) is None


def test_progress_line_without_the_transfer_note() -> None:
    p = report.parse_rsync_progress("      1,048,576  50%    1.00MB/s    0:00:01")
    assert p == Progress(bytes=1048576, percent=50, rate="1.00MB/s", eta="0:00:01", files=0)


# --- our own lines ---------------------------------------------------------------------

_PROGRESS = st.builds(
    Progress,
    bytes=st.integers(0, 2**62),
    percent=st.integers(0, 100),
    rate=st.text(max_size=20),
    eta=st.text(max_size=12),
    files=st.integers(0, 2**40),
)


@given(p=_PROGRESS)
def test_progress_line_round_trip(p: Progress) -> None:
    line = report.progress_line(p)
    assert line.startswith("pullsnap-progress ")
    assert "\n" not in line and "\r" not in line
    assert report.parse_line(line) == (PROGRESS, p)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@given(result=st.dictionaries(st.text(max_size=10), _JSON, max_size=6))
def test_result_line_round_trip(result: dict) -> None:
    line = report.result_line(result)
    assert line.startswith("pullsnap-result ")
    assert "\n" not in line
    assert report.parse_line(line) == (RESULT, result)


@given(text=st.text().filter(lambda t: "\n" not in t and "\r" not in t))
def test_log_line_round_trip(text: str) -> None:
    assert report.parse_line(report.log_line(text)) == (LOG, text)


def test_a_typical_result() -> None:
    result = {"status": "ok", "exit": 0, "snapshot": "2026-11-25T141500Z", "files": 12}
    line = report.result_line(result)
    kind, value = report.parse_line(line)
    assert kind == RESULT and value == result


@pytest.mark.parametrize(
    "line",
    [
        "Traceback (most recent call last):",
        "pullsnap-progress",
        "pullsnap-progress {broken",
        'pullsnap-progress {"bytes": 1}',
        'pullsnap-progress {"bytes": "x", "percent": 1, "rate": "", "eta": ""}',
        'pullsnap-progress {"bytes": null, "percent": 1, "rate": "", "eta": ""}',
        'pullsnap-progress {"bytes": NaN, "percent": 1, "rate": "", "eta": ""}',
        'pullsnap-progress {"bytes": Infinity, "percent": 1, "rate": "", "eta": ""}',
        'pullsnap-progress {"bytes": 1e999, "percent": 1, "rate": "", "eta": ""}',
        "pullsnap-progress [1, 2, 3]",
        "pullsnap-progress null",
        "pullsnap-result",
        "pullsnap-result {broken",
        "pullsnap-result [1]",
        'pullsnap-result "ok"',
        "pullsnap-resultx {}",
        "PULLSNAP-RESULT {}",
        " pullsnap-result {}",
        "grabber error: bad handoff",
    ],
)
def test_garbage_falls_back_to_log(line: str) -> None:
    assert report.parse_line(line) == (LOG, line)


def test_log_tag_alone() -> None:
    assert report.parse_line("pullsnap-log") == (LOG, "")
    assert report.parse_line("pullsnap-log  two spaces") == (LOG, " two spaces")
