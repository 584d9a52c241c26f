"""SECURITY.md names, for each claim, the test that proves it: those tests exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")

pytestmark = pytest.mark.security


def test_every_named_test_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    references = REFERENCE.findall(text)
    assert len(references) > 30
    missing = []
    for path, name in references:
        source = ROOT / path
        if not source.is_file():
            missing.append(path)
        elif name and not re.search(rf"^(?:async )?def {name}\(", source.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert missing == []


def test_every_security_test_file_is_named() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    files = {
        p.relative_to(ROOT).as_posix() for p in (ROOT / "tests" / "security").glob("test_*.py")
    }
    named = {path for path, _ in REFERENCE.findall(text)}
    assert files <= named, files - named
