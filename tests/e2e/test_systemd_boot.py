"""The shipped units under a real systemd: PID 1 of a container the test
boots (tests/systemdbox.py), installed the way README step 6 says.

Inside the container, web1 is set up as README steps 1 and 3 leave it: the
account `pullsnap` (the lab's initiator uid), /opt/pullsnap (this checkout's
venv), /etc/pullsnap/initiator.toml with its login key and pinned
known_hosts, and the backed-up tree at /srv/www.  The units are copied
unchanged (a test that adds a drop-in says which and why); the container
shares the host's network, so the initiator reaches the lab's grabber on
127.0.0.1 and the grabber connects back.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import time
from pathlib import Path

import pytest

from pullsnap import errors, logfmt
from tests.e2e.conftest import Site
from tests.systemdbox import Account, Box, put, write_tree
from tests.trees import make_rich_tree

pytestmark = [pytest.mark.root, pytest.mark.e2e]

CHECKOUT = Path(__file__).resolve().parent.parent.parent
UNITS = CHECKOUT / "systemd"
SHIPPED = ("pullsnap-initiator.service", "pullsnap-initiator.timer", "pullsnap-failure@.service")
SERVICE, TIMER = "pullsnap-initiator.service", "pullsnap-initiator.timer"
ALERT = f"pullsnap-failure@{SERVICE}.service"  # OnFailure=pullsnap-failure@%n.service
SOURCE = "/srv/www"
STAMP = f"var/lib/systemd/timers/stamp-{TIMER}"  # Persistent= (systemd.timer(5))


def _web1(site: Site, root: str, machine_id: str) -> Box:
    """The container's tree for web1, with the shipped units in /etc/systemd/system."""
    pw = site.lab.initiator_pw()
    account = Account("pullsnap", pw.pw_uid, pw.pw_gid, "/var/lib/pullsnap")
    write_tree(root, machine_id, [account])
    venv = os.path.dirname(site.lab.venv_bin)
    os.symlink(venv, os.path.join(root, "opt/pullsnap"))
    owner = (pw.pw_uid, pw.pw_gid)
    for name, mode in (("id_ed25519", 0o600), ("known_hosts", 0o644)):
        with open(site.lab.path("initiator", name), encoding="ascii") as f:
            put(root, f"etc/pullsnap/{name}", f.read(), mode, owner)
    config = site.lab.write_initiator_config(
        [SOURCE], name=os.path.join(site.root, "initiator.toml"), user="pullsnap", runtime_dir="",
        destination={"identity_file": "/etc/pullsnap/id_ed25519",
                     "known_hosts": "/etc/pullsnap/known_hosts"},
    )  # fmt: skip
    shutil.copyfile(config, os.path.join(root, "etc/pullsnap/initiator.toml"))
    for name in SHIPPED:
        shutil.copyfile(UNITS / name, os.path.join(root, "etc/systemd/system", name))
    box = Box(root, "web1")
    # The venv's scripts and its editable install name this checkout's path.
    box.bind(str(CHECKOUT))
    if not venv.startswith(str(CHECKOUT) + "/"):
        box.bind(venv)
    box.bind(site.src, SOURCE)
    hidden = [p for p in (str(CHECKOUT), venv) if p.startswith(("/tmp/", "/var/tmp/"))]
    if hidden:
        # PrivateTmp= gives the service a /tmp of its own, without this
        # checkout in it; an installed /opt/pullsnap needs no such thing.
        put(root, f"etc/systemd/system/{SERVICE}.d/checkout.conf",
            f"[Service]\nBindReadOnlyPaths={' '.join(hidden)}\n")  # fmt: skip
    return box


def _finished(box: Box, unit: str) -> bool:
    """A oneshot unit has run and is no longer running."""
    state = box.show(unit, "ActiveState", "ExecMainExitTimestampMonotonic")
    exited = state["ExecMainExitTimestampMonotonic"] not in ("", "0")
    return exited and state["ActiveState"] in ("inactive", "failed")


def _journal(box: Box, *args: str) -> list[dict[str, str]]:
    done = box.run("journalctl", "--no-pager", "--output=json", *args)
    return [json.loads(line) for line in done.stdout.splitlines()]


def _printed(entries: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(priority, message) of what the service's own processes wrote to the journal."""
    return [(e["PRIORITY"], e["MESSAGE"]) for e in entries if e.get("_TRANSPORT") == "stdout"]


def test_timer_runs_a_missed_night_and_a_failure_reaches_the_alert_unit(site: Site) -> None:
    """(1) The timer fires a real backup: web1 was off at its last 02:00,
    so Persistent=true runs the missed night when the timer starts.
    (2) A second run the same night is refused (min_interval, exit 9), the
    service fails and OnFailure= runs the failure unit, which logs the
    unit's last lines at err.  (3) The journal has the initiator's lines
    with their priorities: the good run's at info, the refusal at err.

    Overridden for the test, and only this: the timer's random delay
    (RandomizedDelaySec=0 in a drop-in), which would start the catch-up run
    up to an hour after boot at this host's fixed offset; the next test
    runs the timer as shipped.  (And, only for a checkout under /tmp, a
    drop-in that shows it to the service through its private /tmp.)"""
    make_rich_tree(site.src)
    site.regrab(policy={"min_interval": "4h"})  # the default
    box = _web1(site, os.path.join(site.root, "web1"), secrets.token_hex(16))
    put(box.root, f"etc/systemd/system/{TIMER}.d/test.conf", "[Timer]\nRandomizedDelaySec=0\n")
    stamp = put(box.root, STAMP, "")
    two_days_ago = time.time() - 2 * 86400
    os.utime(stamp, (two_days_ago, two_days_ago))
    with box.booted():
        box.run("systemctl", "daemon-reload")
        box.run("systemctl", "enable", "--now", TIMER)
        box.wait_for("the timer's run", lambda: _finished(box, SERVICE))
        assert box.show(SERVICE, "Result", "ExecMainStatus") == {
            "Result": "success", "ExecMainStatus": "0"}  # fmt: skip
        assert os.stat(stamp).st_mtime > two_days_ago + 86400, "the timer fired: a new stamp"
        [name] = site.snapshots()
        shadow = os.path.join(site.repo, "web1", name) + SOURCE + "/etc/shadow"
        with open(shadow, "rb") as f:
            assert f.read().startswith(b"root:"), "the root-only file came through"

        second = int(time.time() * 1e6)
        refused = box.run("systemctl", "start", SERVICE, check=False)
        assert refused.returncode != 0, "systemctl start reports the failed run"
        assert box.show(SERVICE, "Result", "ExecMainStatus") == {
            "Result": "exit-code", "ExecMainStatus": str(errors.TOO_SOON)}  # fmt: skip
        box.wait_for("the failure unit", lambda: _finished(box, ALERT), timeout=30)
        assert box.show(ALERT, "Result", "ExecMainStatus") == {
            "Result": "success", "ExecMainStatus": "0"}  # fmt: skip

        [(ok_priority, ok_line), (err_priority, err_line)] = _printed(
            _journal(box, "-u", "pullsnap-initiator"))  # fmt: skip
        assert ok_priority == "6" and logfmt.parse(ok_line)["result"] == "ok"
        assert logfmt.parse(ok_line)["snapshot"] == f"web1/{name}"
        assert err_priority == "3" and logfmt.parse(err_line)["result"] == "too-soon"
        errors_only = _journal(box, "-u", "pullsnap-initiator", "-p", "err")
        assert _printed(errors_only) == [("3", err_line)]
        assert all(int(e["__REALTIME_TIMESTAMP"]) >= second for e in errors_only), (
            "nothing of the good run is at err"
        )
        alert = _journal(box, "-t", "pullsnap-failure")
        assert alert and {e["PRIORITY"] for e in alert} == {"3"}
        assert err_line in [e["MESSAGE"] for e in alert], "the alert carries the failure line"


def _next_run(tmp: str, machine_id: str, reload: bool = False) -> int:
    """When the shipped timer, just enabled on a host with this machine id,
    next starts the service (seconds since the epoch)."""
    root = os.path.join(tmp, secrets.token_hex(4))
    write_tree(root, machine_id)
    for name in SHIPPED:
        shutil.copyfile(UNITS / name, os.path.join(root, "etc/systemd/system", name))
    with Box(root, "web1").booted() as box:
        box.run("systemctl", "enable", "--now", TIMER)
        if reload:
            box.run("systemctl", "daemon-reload")
        # With the random delay; "Tue 2026-12-08 02:44:10 UTC" whatever --timestamp= says.
        elapse = box.show(TIMER, "NextElapseUSecRealtime")["NextElapseUSecRealtime"]
    when = datetime.datetime.strptime(elapse, "%a %Y-%m-%d %H:%M:%S UTC")
    return int(when.replace(tzinfo=datetime.UTC).timestamp())


def test_timer_gives_each_host_its_own_fixed_time_in_the_hour(tmp_path: Path) -> None:
    """RandomizedDelaySec=1h with FixedRandomDelay=true, as shipped: each
    host runs at 02:00 plus an offset of under an hour that depends on its
    machine id, the same after a reload and a reboot (so its runs stay a
    day apart), and another host gets another offset.  The container has
    no /etc/localtime: its 02:00 is UTC."""
    first, second = "5d1f0a3c2b7e4f6a8c9d0e1f2a3b4c5d", "0f9e8d7c6b5a49382716a5b4c3d2e1f0"
    runs = [_next_run(str(tmp_path), first), _next_run(str(tmp_path), first, reload=True),
            _next_run(str(tmp_path), second)]  # fmt: skip
    offsets = [(run - 2 * 3600) % 86400 for run in runs]
    assert all(0 <= offset < 3600 for offset in offsets), offsets
    assert offsets[0] == offsets[1], "one host keeps its offset"
    assert offsets[0] != offsets[2], "another host gets another"
