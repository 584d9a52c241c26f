"""Hooks: the environment they get, deadlines, and once-per-spell alerts."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from pullsnap import errors
from pullsnap.config import grabber_from_dict
from pullsnap.grabber.run import hooks
from pullsnap.grabber.views import health

NOW = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.UTC)


def _stale(host: str, last_good: str | None = None) -> health.HostStatus:
    return health.HostStatus(host=host, max_age=60, stale=True, last_good=last_good)


def _fresh(host: str) -> health.HostStatus:
    return health.HostStatus(host=host, max_age=60, stale=False, last_good="x")


def test_alerts_once_per_stale_spell() -> None:
    due, remember = hooks.due_alerts([_stale("web1", "s1"), _stale("web2")], {})
    assert [s.host for s in due] == ["web1", "web2"]
    remember.update({"web1": "s1", "web2": ""})  # what alert_stale records after firing
    due, again = hooks.due_alerts([_stale("web1", "s1"), _stale("web2")], remember)
    assert due == [] and again == remember
    # web1 got a snapshot and went stale again later: a new spell.
    due, _ = hooks.due_alerts([_stale("web1", "s2"), _stale("web2")], remember)
    assert [s.host for s in due] == ["web1"]
    # web2 is fresh now: forgotten, so its next spell alerts again.
    due, forgot = hooks.due_alerts([_fresh("web2")], remember)
    assert due == [] and forgot == {"web1": "s1"}


@pytest.mark.security
def test_environment_is_only_what_is_documented(monkeypatch) -> None:
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.1 5000 10.0.0.2 22")
    monkeypatch.setenv("SECRET_TOKEN", "x")
    env = hooks.environment("success", {"host": "web1", "log_tail": "a\0b\nc"})
    assert env["PULLSNAP_EVENT"] == "success" and env["PULLSNAP_HOST"] == "web1"
    assert env["PULLSNAP_LOG_TAIL"] == "ab\nc"  # execve cannot carry NUL
    assert set(env) == {"PATH", "LC_ALL", "HOME", "USER", "LOGNAME", "PULLSNAP_EVENT",
                        "PULLSNAP_HOST", "PULLSNAP_LOG_TAIL"}  # fmt: skip


def _script(tmp_path, body: str) -> str:
    path = tmp_path / "hook"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.mark.security
def test_hook_sees_its_environment_and_client_text_stays_data(tmp_path) -> None:
    out = tmp_path / "out"
    script = _script(tmp_path, f'printf %s "$PULLSNAP_LOG_TAIL" > {out}\n')
    hostile = "rsync: file '$(touch /tmp/pwned)`id`;rm -rf x' vanished"
    done = hooks.run_hook([script], hooks.environment("failure", {"log_tail": hostile}), 10)
    assert done.code == 0
    assert out.read_text() == hostile


def test_hook_deadline_kills_its_process_group(tmp_path) -> None:
    pids = tmp_path / "pids"
    script = _script(tmp_path, f"sleep 600 & echo $! > {pids}\nsleep 600\n")
    done = hooks.run_hook([script], hooks.environment("success", {}), 0.5)
    assert done.code is None
    child = int(pids.read_text())
    # The background sleep got the SIGKILL too: it ends (a zombie until init
    # reaps it, or gone).  Dying takes the kernel a moment; wait for it.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _state(child) not in ("Z", "X", None):
        time.sleep(0.01)
    assert _state(child) in ("Z", "X", None)


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return None


def test_fire_reports_a_failing_hook(tmp_path) -> None:
    cfg = grabber_from_dict({"repository": str(tmp_path), "on_success": "echo no pager; exit 4",
                             "on_failure": ["/nonexistent/hook"]})  # fmt: skip
    with pytest.raises(errors.RunFailed, match="on_success hook /bin/sh exited with 4: no pager"):
        hooks.fire(cfg, "success", {})
    with pytest.raises(errors.RunFailed, match="on_failure hook /nonexistent/hook exited with 127"):
        hooks.fire(cfg, "failure", {})
    hooks.fire(cfg, "stale", {})  # none configured: nothing happens
    slow = grabber_from_dict({"on_stale": "sleep 30", "hook_timeout": 0.3})
    with pytest.raises(errors.RunFailed, match=r"was stopped after hook_timeout \(0.3 s\)"):
        hooks.fire(slow, "stale", {})


def test_alert_stale_remembers_in_the_repository(tmp_path) -> None:
    out = tmp_path / "fired"
    script = _script(tmp_path, f'echo "$PULLSNAP_HOST" >> {out}\n')
    cfg = grabber_from_dict({"repository": str(tmp_path), "on_stale": [script]})
    warnings: list[str] = []
    assert hooks.alert_stale(cfg, [_stale("web1"), _fresh("web2")], warnings.append) == ["web1"]
    assert hooks.alert_stale(cfg, [_stale("web1")], warnings.append) == []
    assert out.read_text() == "web1\n" and warnings == []
    assert os.path.exists(tmp_path / hooks.ALERTED)


def test_hook_and_prometheus_keys_in_the_config() -> None:
    cfg = grabber_from_dict({"on_success": "exit 0", "on_stale": ["/bin/true", "--flag"],
                             "hook_timeout": "2m", "prometheus_file": "/srv/x.prom"})  # fmt: skip
    assert cfg.on_success == ("/bin/sh", "-c", "exit 0")
    assert cfg.on_stale == ("/bin/true", "--flag") and cfg.on_failure == ()
    assert cfg.hook_timeout == 120 and cfg.prometheus_file == "/srv/x.prom"
    for bad in ({"hook_timeout": 0}, {"prometheus_file": "x.prom"}, {"on_failure": 3}):
        with pytest.raises(errors.ConfigError):
            grabber_from_dict(bad)
