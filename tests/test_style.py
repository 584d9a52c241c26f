"""The code stays ruff-clean (STYLE.md habits), checked with the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    trees = [name for name in ("pullsnap", "lab", "tests", "bench") if (ROOT / name).is_dir()]
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, *trees],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_ruff_check_is_clean() -> None:
    done = _ruff("check")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_is_clean() -> None:
    done = _ruff("format", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
