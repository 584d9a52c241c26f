"""The layout DESIGN.md promises ("Package layout"): tests mirror the
package, modules stay small, and the `faults` marker is for fault
scenarios only (a pure test runs in every tier)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "pullsnap"
MAX_LINES = 400


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def mirror_of(module: Path) -> Path:
    """pullsnap/grabber/run/sanity.py -> tests/grabber/run/test_sanity.py"""
    relative = module.relative_to(PACKAGE)
    return REPO / "tests" / relative.parent / f"test_{relative.name}"


def test_every_module_has_a_mirrored_test_module() -> None:
    missing = [str(m.relative_to(REPO)) for m in _modules() if not mirror_of(m).is_file()]
    assert missing == [], "modules without tests/<same path>/test_<name>.py"


def test_mirror_of() -> None:
    assert mirror_of(PACKAGE / "grabber" / "run" / "sanity.py") == (
        REPO / "tests" / "grabber" / "run" / "test_sanity.py"
    )
    assert mirror_of(PACKAGE / "names.py") == REPO / "tests" / "test_names.py"


def test_no_module_is_over_400_lines() -> None:
    long = {str(m.relative_to(REPO)): n for m in _modules()
            if (n := len(m.read_text().splitlines())) > MAX_LINES}  # fmt: skip
    assert long == {}, "split these (STYLE: modules of 50-300 lines, split before 400)"


_MODULE_FAULTS = re.compile(r"^pytestmark\s*=.*\bfaults\b", re.MULTILINE)
# Modules every test of which is a fault scenario (a process killed, a disk
# filled): the end-to-end tiers, and the lifeline's (each test kills one).
WHOLLY_FAULTS = ("tests/faults/", "tests/e2e/", "tests/initiator/test_lifeline.py")


def test_only_fault_scenarios_carry_the_faults_marker() -> None:
    """A unit-test module mixes pure tests with fault scenarios: the marker
    goes on each scenario, so `-m "not faults"` keeps the pure ones."""
    marked = [name for t in sorted((REPO / "tests").rglob("test_*.py"))
              if not (name := str(t.relative_to(REPO))).startswith(WHOLLY_FAULTS)
              and _MODULE_FAULTS.search(t.read_text())]  # fmt: skip
    assert marked == []
