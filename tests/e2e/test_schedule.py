"""Scheduled runs, as systemd and cron start them, through a real backup.

The systemd case runs the initiator under setpriv with the credentials the
shipped unit asks for (parsed from the file, not repeated here), with the
unit's runtime directory and a journal-like output stream.  The cron case
runs the shipped cron line the way cron does: as root, through /bin/sh,
with cron's small environment and nothing on a terminal, except that the
line's per-host delay is recorded rather than waited.  The shipped units
under a real systemd: tests/e2e/test_systemd_boot.py.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lab import free_port
from pullsnap import caps, errors, logfmt
from tests.e2e.conftest import Site
from tests.trees import make_rich_tree
from tests.unitfile import cron_shell_command, parse_cron_d, parse_unit, setpriv_argv

pytestmark = [pytest.mark.root, pytest.mark.e2e]

UNITS = Path(__file__).resolve().parent.parent.parent / "systemd"
INSTALLED_INITIATOR = "/opt/pullsnap/bin/initiator"
# systemd's default PATH for services (systemd.exec(5), ENVIRONMENT).
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What Debian's cron gives a job (crontab(5)): SHELL, PATH, HOME, LOGNAME.
CRON_ENV = {"SHELL": "/bin/sh", "PATH": "/usr/bin:/bin", "HOME": "/root", "LOGNAME": "root"}


def _private_dir(site: Site, name: str) -> str:
    """A 0700 directory of the initiator user's, as RuntimeDirectory= makes one."""
    path = os.path.join(site.root, name)
    os.makedirs(path, mode=0o700)
    pw = site.lab.initiator_pw()
    os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


def _status_hook(out: str) -> str:
    """A before hook recording its parent's (the initiator's) and its own credentials."""
    return (
        f"cat /proc/$PPID/status > {out}/initiator.status && "
        f"cat /proc/self/status > {out}/hook.status"
    )


def _status(out: str, name: str) -> tuple[set[int], caps.CapState]:
    """(real, effective, saved, fs uids; capability sets) from a saved /proc status."""
    with open(os.path.join(out, name), encoding="ascii") as f:
        text = f.read()
    uids = {int(u) for u in caps.status_fields(text)["Uid"].split()}
    return uids, caps.parse_proc_status(text)


def _assert_dropped_to_user_with_only_dac_read_search(site: Site, out: str) -> None:
    uid = site.lab.initiator_pw().pw_uid
    uids, initiator = _status(out, "initiator.status")
    assert uids == {uid}
    only = frozenset(caps.INITIATOR_CAPS)
    assert initiator.permitted == only and initiator.inheritable == only
    assert initiator.effective == frozenset() and initiator.ambient == frozenset()
    assert initiator.bounding == only and initiator.no_new_privs
    uids, hook = _status(out, "hook.status")
    assert uids == {uid}
    assert not (hook.permitted | hook.effective | hook.ambient), "hooks hold no capability"


def test_backup_under_the_units_credentials(site: Site) -> None:
    """User=, AmbientCapabilities=, CapabilityBoundingSet=, NoNewPrivileges=,
    SecureBits=, RuntimeDirectory= and UMask= of the shipped unit: the
    root-only files arrive, the initiator holds CAP_DAC_READ_SEARCH and
    nothing else, and the journal gets one key=value line with a priority."""
    make_rich_tree(site.src)
    service = parse_unit((UNITS / "pullsnap-initiator.service").read_text())["Service"]
    assert service["ExecStart"] == [INSTALLED_INITIATOR]
    pw = site.lab.initiator_pw()
    runtime = _private_dir(site, "run-systemd")
    out = _private_dir(site, "hook-out")
    site.configure(runtime_dir="", destination={"before": _status_hook(out)})
    journal = os.path.join(site.root, "journal")
    env = {"PATH": SYSTEMD_PATH, "HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name,
           "SHELL": pw.pw_shell, "RUNTIME_DIRECTORY": runtime}  # fmt: skip
    initiator = os.path.join(site.lab.venv_bin, "initiator")
    with open(journal, "w+b") as stream:
        st = os.fstat(stream.fileno())
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        done = subprocess.run(
            [*setpriv_argv(service, pw.pw_uid, pw.pw_gid), initiator, "-c", site.initiator_config],
            env=env, stdin=subprocess.DEVNULL, stdout=stream, stderr=stream, check=False,
            umask=int(service["UMask"][0], 8), timeout=300,
        )  # fmt: skip
    with open(journal, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert done.returncode == errors.OK, lines
    [name] = site.snapshots()
    with open(os.path.join(site.in_snapshot(name), "etc", "shadow"), "rb") as f:
        assert f.read().startswith(b"root:"), "the root-only file came through"
    [line] = lines
    assert line.startswith("<6>"), "info priority for journald (sd-daemon(3))"
    verdict = logfmt.parse(line[3:])
    assert verdict["result"] == "ok" and verdict["snapshot"] == f"web1/{name}"
    assert os.listdir(runtime) == [], "the run directory under $RUNTIME_DIRECTORY is gone"
    _assert_dropped_to_user_with_only_dac_read_search(site, out)


def _cron_job(site: Site) -> list[str]:
    """The shipped job's command as cron hands it to /bin/sh, but for its
    delay: a `sleep` function stands in for sleep(1) and writes down the
    seconds instead of waiting them (up to an hour; see _slept)."""
    [job] = parse_cron_d((UNITS / "pullsnap.cron").read_text())
    assert job.user == "root"
    command, _ = cron_shell_command(job.command)
    command = command.replace(INSTALLED_INITIATOR, os.path.join(site.lab.venv_bin, "initiator"))
    record = f'sleep() {{ echo "$@" > {os.path.join(site.root, "slept")}; }}'
    return ["/bin/sh", "-c", f"{record}; {command} -c {site.initiator_config}"]


def _slept(site: Site) -> int:
    """The delay the job would have waited before the initiator started."""
    with open(os.path.join(site.root, "slept"), encoding="ascii") as f:
        [seconds] = f.read().split()
    return int(seconds)


def test_cron_line_is_quiet_on_success_and_drops_to_the_user(site: Site) -> None:
    make_rich_tree(site.src)
    out = _private_dir(site, "hook-out")
    site.configure(destination={"before": _status_hook(out)})
    done = subprocess.run(_cron_job(site), env=CRON_ENV, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == errors.OK, done.stderr
    assert (done.stdout, done.stderr) == ("", ""), "nothing for cron to mail"
    assert 0 <= _slept(site) < 3600, "the host's own delay came first"
    [name] = site.snapshots()
    assert os.path.exists(os.path.join(site.in_snapshot(name), "etc", "shadow"))
    _assert_dropped_to_user_with_only_dac_read_search(site, out)


def test_cron_line_mails_one_line_per_failure(site: Site) -> None:
    os.makedirs(site.src)
    site.configure(destination={"port": free_port()})
    done = subprocess.run(_cron_job(site), env=CRON_ENV, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == errors.UNREACHABLE
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    verdict = logfmt.parse(line)
    assert (verdict["dest"], verdict["result"], verdict["exit"]) == ("lab", "unreachable", "7")
    assert "Connection refused" in verdict["message"]
