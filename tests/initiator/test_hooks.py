"""Hooks as data: the config keys, the documented environment, the failure text."""

from __future__ import annotations

import pwd

import pytest

from pullsnap import errors
from pullsnap.config import initiator_from_dict
from pullsnap.errors import ConfigError
from pullsnap.initiator import children, hooks, run


def _cfg(**dest):
    return initiator_from_dict(
        {"destination": [{"name": "vault", "host": "vault.example.org", "sources": ["/etc", "/srv"],
                          **dest}]}, "/etc/pullsnap/initiator.toml",
    )  # fmt: skip


def test_hook_config_forms() -> None:
    dest = _cfg(before="pg_dumpall > /var/backups/db.sql", after=["/usr/bin/logger", "done"],
                before_timeout="90s").destinations[0]  # fmt: skip
    assert dest.before == ("/bin/sh", "-c", "pg_dumpall > /var/backups/db.sql")
    assert dest.after == ("/usr/bin/logger", "done")
    assert (dest.before_timeout, dest.after_timeout) == (90, 600)
    assert _cfg(before="  ").destinations[0].before == ()


@pytest.mark.parametrize("value", [3, [""], ["a", 1], "a\nb", {"x": 1}])
def test_bad_hooks_name_the_key(value: object) -> None:
    with pytest.raises(ConfigError, match=r"destination\[0\]\.before"):
        _cfg(before=value)


def test_timeouts_must_be_finite_and_positive() -> None:
    for value in (0, "inf", -1):
        with pytest.raises(ConfigError, match="after_timeout"):
            _cfg(after_timeout=value)


def _user() -> pwd.struct_passwd:
    return pwd.struct_passwd(("backup", "x", 34, 34, "", "/var/backups", "/bin/sh"))


def test_before_environment_is_exactly_the_documented_one() -> None:
    cfg = _cfg()
    env = hooks.hook_env(cfg, cfg.destinations[0], "before", _user())
    assert env == {
        "PATH": children.CHILD_PATH, "LC_ALL": "C", "HOME": "/var/backups", "USER": "backup",
        "LOGNAME": "backup", "PULLSNAP_PHASE": "before", "PULLSNAP_DESTINATION": "vault",
        "PULLSNAP_BACKUP_HOST": "vault.example.org", "PULLSNAP_SOURCES": "/etc\n/srv",
        "PULLSNAP_CONFIG": "/etc/pullsnap/initiator.toml",
    }  # fmt: skip
    documented = {k for key in hooks.ENVIRONMENT for k in key.split(", ")}
    assert set(env) <= documented


@pytest.mark.parametrize(
    "code, snapshot",
    [(errors.OK, "2026-11-25T021700Z"), (errors.PARTIAL, "2026-11-25T021700Z"),
     (errors.REFUSED, ""), (errors.HOOK_FAILED, "")],
)  # fmt: skip
def test_after_environment_carries_the_outcome(code: int, snapshot: str) -> None:
    cfg = _cfg()
    outcome = run.Outcome("vault", code, "one\nline  message",
                          result={"snapshot": "2026-11-25T021700Z", "host": "web1"})  # fmt: skip
    env = hooks.hook_env(cfg, cfg.destinations[0], "after", _user(), outcome)
    assert env["PULLSNAP_EXIT"] == str(code)
    assert env["PULLSNAP_RESULT"] == errors.EXIT_NAMES[code]
    assert env["PULLSNAP_SNAPSHOT"] == snapshot
    assert env["PULLSNAP_HOST"] == ("web1" if snapshot else "")
    assert env["PULLSNAP_MESSAGE"] == "one line message"


def test_failure_text() -> None:
    done = children.Finished(("x",), 3, None, b"out1\nout2\n", b"")
    assert hooks.failure_text(done) == "failed with exit 3: out2"
    killed = children.Finished(("x",), None, 9, b"", b"err\n")
    assert hooks.failure_text(killed) == "was killed by signal 9: err"
    failed = errors.HookFailed("before", "failed with exit 1")
    assert str(failed) == "before hook failed with exit 1"
    assert errors.HookFailed.exit_code == errors.HOOK_FAILED == 12
