"""`before` and `after` hooks around a destination's backup, run for real:
a "database dump" made by `before` is in the snapshot; a failing `before`
means no backup and its own exit code; `after` always runs and learns the
outcome; a hook past its deadline is stopped with everything it started."""

from __future__ import annotations

import os

import pytest

from pullsnap import errors
from pullsnap.initiator import hooks
from tests.e2e.conftest import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e]

DUMP = 'printf "%s\\n" "-- dump of $PULLSNAP_DESTINATION" "INSERT 42;" > "{path}"'


def _prepare(site: Site) -> tuple[str, str]:
    """A source tree with a directory the initiator user may write (the
    database's dump directory), and a directory for what hooks report."""
    pw = site.lab.initiator_pw()
    dump_dir = os.path.join(site.src, "var", "dump")
    out = os.path.join(site.root, "hook-out")
    for path in (dump_dir, out):
        os.makedirs(path)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    with open(os.path.join(site.src, "var", "data"), "w") as f:
        f.write("live data\n")
    return dump_dir, out


def _env_hook(out: str) -> list[str]:
    """An after hook given as an argv list (no shell): write its environment."""
    return ["/usr/bin/sh", "-c", f'env -0 > "{out}/after.env"']


def _read_env(out: str) -> dict[str, str]:
    with open(os.path.join(out, "after.env"), "rb") as f:
        pairs = [item.decode().split("=", 1) for item in f.read().split(b"\0") if item]
    return dict(pairs)


def _run(site: Site, *args: str):
    env = {"PATH": "/usr/bin:/bin", "PULLSNAP_SECRET_OF_THE_CALLER": "do not pass on"}
    return site.run(*args, env=env)


def test_before_hook_dump_is_in_the_snapshot_and_after_learns_it(site: Site) -> None:
    dump_dir, out = _prepare(site)
    dump = os.path.join(dump_dir, "db.sql")
    site.configure(destination={"before": DUMP.format(path=dump), "after": _env_hook(out)})
    done = _run(site)
    assert done.returncode == errors.OK, done.stderr
    [name] = site.snapshots()
    with open(os.path.join(site.in_snapshot(name), "var", "dump", "db.sql")) as f:
        assert f.read() == "-- dump of lab\nINSERT 42;\n"
    env = _read_env(out)
    assert env["PULLSNAP_PHASE"] == "after" and env["PULLSNAP_DESTINATION"] == "lab"
    assert (env["PULLSNAP_EXIT"], env["PULLSNAP_RESULT"]) == ("0", "ok")
    assert (env["PULLSNAP_SNAPSHOT"], env["PULLSNAP_HOST"]) == (name, "web1")
    assert env["PULLSNAP_SOURCES"] == site.src and env["PULLSNAP_BACKUP_HOST"] == "127.0.0.1"
    assert env["USER"] == site.lab.initiator_user and env["PATH"] == hooks.ENVIRONMENT["PATH"]
    documented = {k for key in hooks.ENVIRONMENT for k in key.split(", ")}
    assert set(env) - documented <= {"PWD"}, "nothing but the documented environment"


def test_failing_before_hook_means_no_backup_and_its_own_exit_code(site: Site) -> None:
    _, out = _prepare(site)
    failing = 'echo "pg_dump: connection to server failed" >&2; exit 3'
    site.configure(destination={"before": failing, "after": _env_hook(out)})
    before = site.repo_state()
    done = _run(site)
    assert done.returncode == errors.HOOK_FAILED == 12
    assert "lab: hook-failed: before hook failed with exit 3: pg_dump: connection to server " \
        "failed: no backup was made" in done.stderr  # fmt: skip
    assert site.repo_state() == before, "the backup host was not even called"
    env = _read_env(out)
    outcome = (env["PULLSNAP_EXIT"], env["PULLSNAP_RESULT"], env["PULLSNAP_SNAPSHOT"])
    assert outcome == ("12", "hook-failed", "")


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_hook_past_its_deadline_is_stopped_with_all_it_started(site: Site) -> None:
    """The hook ignores SIGTERM and leaves a background child: SIGKILL to
    the whole process group after the grace period ends both."""
    _prepare(site)
    stubborn = "trap '' TERM; sleep 3187 & sleep 3188; echo never"
    site.configure(destination={"before": stubborn, "before_timeout": 1})
    done = _run(site)
    assert done.returncode == errors.HOOK_FAILED
    assert "before hook took longer than 1 s and was stopped" in done.stderr
    assert _processes_with("sleep 318") == []
    assert site.snapshots() == []


def test_after_hook_failure_is_reported_and_the_snapshot_stays(site: Site) -> None:
    _prepare(site)
    site.configure(destination={"after": "echo 'unfreeze failed' >&2; exit 4"})
    done = _run(site)
    assert done.returncode == errors.HOOK_FAILED
    [name] = site.snapshots()
    assert f"lab: ok, snapshot web1/{name}" in done.stdout
    assert "lab: hook-failed: after hook failed with exit 4: unfreeze failed" in done.stderr


def test_probes_run_no_hooks(site: Site) -> None:
    dump_dir, _ = _prepare(site)
    marker = os.path.join(dump_dir, "ran")
    site.configure(destination={"before": f"touch {marker}", "after": f"touch {marker}"})
    done = _run(site, "--dry-run")
    assert done.returncode == errors.OK, done.stderr
    assert not os.path.exists(marker)
