"""Suite-wide rules.

* Tests marked `root` need root (users, capabilities, mounts).  Outside CI
  they are skipped when not root; in CI (`CI=true`) every skip, for any
  reason, fails the run: a green CI means every test ran.
* Each test starts from a clean environment for the variables our code
  reads, so a developer's shell cannot change results.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.labfixtures"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_skipped: list[str] = []

_ENV_WE_READ = (
    "SSH_ORIGINAL_COMMAND",
    "SSH_CONNECTION",
    "SSH_CLIENT",
    "SSH_AUTH_SOCK",
    "PULLSNAP_CONFIG",
    "RUNTIME_DIRECTORY",
    "XDG_RUNTIME_DIR",
    "RSYNC_RSH",
    "RSYNC_PROTECT_ARGS",
    "RSYNC_OLD_ARGS",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (runs in CI as root)")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if IN_CI and _skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if IN_CI and _skipped:
        terminalreporter.write_sep("=", "skips are failures in CI (CI=true)", red=True)
        for nodeid in _skipped:
            terminalreporter.write_line(f"SKIPPED IN CI: {nodeid}")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV_WE_READ:
        monkeypatch.delenv(name, raising=False)
