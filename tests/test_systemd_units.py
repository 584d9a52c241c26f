"""The shipped units and cron file: systemd accepts them, and what they grant
is what the code expects (the e2e tests in tests/e2e/test_schedule.py then
run a backup with exactly those credentials, and tests/e2e/test_systemd_boot.py
runs the units under a real systemd)."""

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
    cron_delay,
    cron_shell_command,
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
    assert timer["Timer"]["OnCalendar"] == ["*-*-* 02:00:00"]
    # Spread over the hour, each host at its own offset every night (README step 6).
    assert timer["Timer"]["RandomizedDelaySec"] == ["1h"]
    assert timer["Timer"]["FixedRandomDelay"] == ["true"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]


def test_cron_job_starts_the_quiet_initiator_as_root_after_its_delay() -> None:
    [job] = parse_cron_d((UNITS / "pullsnap.cron").read_text())
    assert job.user == "root", "root starts it; it drops to its user itself"
    assert job.schedule == ("0", "2", "*", "*", "*"), "02:00, the timer's OnCalendar="
    command, stdin = cron_shell_command(job.command)
    assert stdin == "", "every % of the command is escaped"
    _, rest = cron_delay(command)
    assert command_words(rest) == [INSTALLED_INITIATOR], "no --now: silent on success"
    assert job.environment.get("MAILTO")


def _cron_delays(shell: str, hosts: list[str]) -> list[int]:
    """The shipped job's delay on each of `hosts`, evaluated by `shell`; a
    `uname` function stands in for uname(1) with the host's name."""
    [job] = parse_cron_d((UNITS / "pullsnap.cron").read_text())
    expression, _ = cron_delay(cron_shell_command(job.command)[0])
    script = f'uname() {{ echo "$HOST"; }}; for HOST in "$@"; do echo {expression}; done'
    done = subprocess.run([shell, "-c", script, shell, *hosts], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}, check=True)  # fmt: skip
    return [int(word) for word in done.stdout.split()]


def test_cron_delay_is_fixed_per_host_and_spreads_the_fleet() -> None:
    """What the timer's FixedRandomDelay= does, in POSIX sh: under an hour,
    the same for a host every night, and hosts spread over the hour (by 5
    minutes, no slot gets more than twice its share)."""
    hosts = [f"web{i}" for i in range(1, 201)] + ["db1.example.org", "vault"]
    delays = _cron_delays("/bin/sh", hosts)
    assert len(delays) == len(hosts)
    assert all(0 <= d < 3600 for d in delays), "under an hour"
    assert _cron_delays("/bin/sh", hosts) == delays, "the same every night"
    if shutil.which("bash"):
        assert _cron_delays("bash", hosts) == delays, "the same under bash"
    slots = [sum(1 for d in delays if d // 300 == slot) for slot in range(12)]
    assert min(slots) > 0 and max(slots) <= 2 * len(hosts) / 12, slots


def test_cron_command_follows_crontab_percent_rules() -> None:
    assert cron_shell_command(r"echo $((7 \% 3))") == ("echo $((7 % 3))", "")
    assert cron_shell_command("mail -s hi root%one%two") == ("mail -s hi root", "one\ntwo")
    with pytest.raises(ValueError):
        cron_delay("/opt/pullsnap/bin/initiator")


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
