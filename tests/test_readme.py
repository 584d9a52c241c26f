"""The README's promises that code can check: its exit-code table is the one
in pullsnap/errors.py, the hook environment it lists is the one hooks get,
and its first two commands are still the demo and the tests."""

from __future__ import annotations

import re
from pathlib import Path

from pullsnap import errors
from pullsnap.initiator import hooks

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def test_exit_code_table_is_the_code_table() -> None:
    rows = re.findall(r"^\| (\d+) \| ([a-z-]+) \|", _section("Exit codes"), re.MULTILINE)
    assert {int(code): name for code, name in rows} == errors.EXIT_NAMES


def test_hook_environment_table_is_what_hooks_get() -> None:
    rows = [line for line in _section("Before and after hooks").splitlines()
            if line.startswith("| `")]  # fmt: skip
    listed = {name for row in rows for name in re.findall(r"`([A-Z][A-Z_]+)`", row.split(" | ")[0])}
    documented = {k for key in hooks.ENVIRONMENT for k in key.split(", ")}
    assert listed == documented


def test_the_first_two_commands_stay_first() -> None:
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[:2] for line in first_block[:2]] == [
        ["sudo", "./demo.sh"], ["sudo", "./test.sh"]
    ]  # fmt: skip
