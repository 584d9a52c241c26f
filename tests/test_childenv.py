"""A child's environment (childenv.py): fixed, never ours."""

from __future__ import annotations

from pullsnap import childenv


def test_the_environment_is_fixed_plus_what_is_asked(monkeypatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/theirs")
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    assert childenv.child_env() == {"PATH": childenv.PATH, "LC_ALL": "C"}
    env = childenv.child_env(HOME="/var/lib/pullsnap")
    assert env == {"PATH": childenv.PATH, "LC_ALL": "C", "HOME": "/var/lib/pullsnap"}
    assert all(not d.startswith("/tmp") for d in childenv.PATH.split(":"))
