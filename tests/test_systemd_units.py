"""The shipped units and cron file: systemd accepts them, and what they grant
is what the code expects (the e2e tests in tests/e2e/test_schedule.py then
run a backup with exactly those credentials)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pullsnap import caps
from pullsnap.config import InitiatorConfig
from tests.unitfile import (
    capability_set,
    command_words,
    parse_cron_d,
    parse_unit,
    setpriv_argv,
)

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "systemd"
INSTALLED_INITIATOR = "/opt/pullsnap/bin/initiator"  # README "Install on two hosts"


def _unit(name: str) -> dict[str, dict[str, list[str]]]:
    return parse_unit((UNITS / name).read_text())


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` loads the units as systemd would and warns
    about every unknown key, bad value and missing program; the installed
    path of the initiator is swapped for this checkout's."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: run scripts/bootstrap (Debian package systemd)"
    initiator = os.path.join(os.path.dirname(sys.executable), "initiator")
    names = sorted(p.name for p in UNITS.iterdir() if p.suffix in (".service", ".timer"))
    assert {"pullsnap-initiator.service", "pullsnap-initiator.timer"} <= set(names)
    for name in names:
        text = (UNITS / name).read_text().replace(INSTALLED_INITIATOR, initiator)
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [analyze, "verify", "--man=no", *(f"./{n}" for n in names)],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == "", "systemd-analyze warned:\n" + done.stderr


def test_service_grants_exactly_what_the_initiator_expects() -> None:
    service = _unit("pullsnap-initiator.service")["Service"]
    assert service["Type"] == ["oneshot"]
    assert service["User"] == [InitiatorConfig().user]
    assert service["ExecStart"] == [INSTALLED_INITIATOR], "scheduled runs are quiet: no --now"
    expected = frozenset(caps.INITIATOR_CAPS)
    assert capability_set(service["AmbientCapabilities"]) == expected
    assert capability_set(service["CapabilityBoundingSet"]) == expected
    assert service["NoNewPrivileges"] == ["yes"]
    for key, value in (("ProtectSystem", "strict"), ("ProtectHome", "read-only"),
                       ("PrivateTmp", "yes"), ("RuntimeDirectoryMode", "0700")):  # fmt: skip
        assert service[key] == [value], key
    assert service["RuntimeDirectory"] == ["pullsnap"]
    families = set(service["RestrictAddressFamilies"][-1].split())
    assert families == {"AF_INET", "AF_INET6", "AF_UNIX"}


def test_failure_hook_and_timer_are_wired() -> None:
    unit = _unit("pullsnap-initiator.service")["Unit"]
    [on_failure] = unit["OnFailure"]
    template = on_failure.replace("%n", "")
    assert (UNITS / template).is_file(), f"{template} is not shipped"
    timer = _unit("pullsnap-initiator.timer")
    assert timer["Timer"]["Persistent"] == ["true"]
    assert timer["Timer"]["RandomizedDelaySec"] and timer["Timer"]["OnCalendar"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]


def test_cron_job_starts_the_quiet_initiator_as_root() -> None:
    [job] = parse_cron_d((UNITS / "pullsnap.cron").read_text())
    assert job.user == "root", "root starts it; it drops to its user itself"
    assert command_words(job.command) == [INSTALLED_INITIATOR], "no --now: silent on success"
    assert job.environment.get("MAILTO")


def test_setpriv_options_follow_the_unit() -> None:
    service = parse_unit(
        "[Service]\nUser=x\nAmbientCapabilities=CAP_DAC_READ_SEARCH CAP_CHOWN\n"
        "CapabilityBoundingSet=CAP_DAC_READ_SEARCH \\\n CAP_CHOWN\nNoNewPrivileges=yes\n"
        "SecureBits=noroot-locked\n"
    )["Service"]
    assert setpriv_argv(service, 7, 8) == [
        "setpriv", "--reuid=7", "--regid=8", "--init-groups",
        "--inh-caps=+chown,+dac_read_search", "--ambient-caps=+chown,+dac_read_search",
        "--bounding-set=-all,+chown,+dac_read_search", "--no-new-privs",
        "--securebits=+noroot_locked", "--",
    ]  # fmt: skip


def test_unit_parser_resets_on_empty_assignment() -> None:
    sections = parse_unit("[Service]\n# c\nX=a\nX=b\nX=\nX=c\n; c\n")
    assert sections == {"Service": {"X": ["c"]}}
    with pytest.raises(ValueError):
        parse_unit("X=1\n")
    with pytest.raises(ValueError):
        capability_set(["~CAP_SYS_ADMIN"])
