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


# --- one way of starting children per place (DESIGN.md "Children") ---------------------

# Where a child program may be started, and how: the rule DESIGN.md states.
CHILDREN = {
    # A run's path, latency and confinement first: bare fork and exec.
    "subprocess": {
        "pullsnap/grabber/transfer/piperun.py",  # rsync: pipe ends, confined before exec
        "pullsnap/grabber/session/agent.py",  # ssh-agent lives the whole run; ssh-add
        "pullsnap/grabber/run/hooks.py",  # hooks: their own session, killed whole at a deadline
        "pullsnap/versions.py",  # version probes started early, answered later
        "pullsnap/initiator/wiring.py",  # `ssh -G`, before the run's first child
    },
    # The initiator's run: Twisted's spawnProcess under one ProcessProtocol each.
    "spawnProcess": {"pullsnap/initiator/children.py"},
    # The operator's side: short commands through sh.
    "sh": {"pullsnap/oneshot.py"},
}
_STARTS = {
    "subprocess": re.compile(r"^\s*(import subprocess|from subprocess import)", re.MULTILINE),
    "spawnProcess": re.compile(r"\.spawnProcess\("),
    "sh": re.compile(r"^\s*(import sh\b|from sh import)", re.MULTILINE),
}


def test_children_start_only_where_the_rule_says() -> None:
    found: dict[str, set[str]] = {way: set() for way in _STARTS}
    for module in PACKAGE.rglob("*.py"):
        text = module.read_text()
        for way, pattern in _STARTS.items():
            if pattern.search(text):
                found[way].add(str(module.relative_to(REPO)))
    assert found == CHILDREN


def test_os_level_spawning_is_not_a_fourth_way() -> None:
    """os.system, os.popen, os.spawn* and posix_spawn: none of them."""
    pattern = re.compile(r"\bos\.(system|popen|spawn\w*|posix_spawn\w*)\(")
    used = [
        str(m.relative_to(REPO)) for m in PACKAGE.rglob("*.py") if pattern.search(m.read_text())
    ]
    assert used == []
