"""The pure parts of one run (run.py)."""

from __future__ import annotations

from pullsnap.initiator.run import login_key_problem

DENIED = "pullsnap@vault: Permission denied (publickey).\n"


def test_a_key_ssh_could_not_load_is_named() -> None:
    stderr = 'Load key "/etc/pullsnap/id_ed25519": bad permissions\n' + DENIED
    assert login_key_problem(stderr, readable=True) == "bad permissions"
    assert login_key_problem('Load key "/k": invalid format\n' + DENIED, True) == "invalid format"


def test_a_missing_key_is_named_and_a_refused_one_is_not() -> None:
    assert login_key_problem(DENIED, readable=False) == "missing, or not readable by this user"
    assert login_key_problem(DENIED, readable=True) == ""


def test_a_configured_runtime_dir_is_used_or_named_never_replaced(tmp_path) -> None:
    import pytest

    from pullsnap import errors
    from pullsnap.config import InitiatorConfig
    from pullsnap.initiator import wiring

    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    assert wiring.runtime_base(InitiatorConfig(runtime_dir=str(tmp_path)), env) == str(tmp_path)
    assert wiring.runtime_base(InitiatorConfig(), env) == str(tmp_path)
    missing = str(tmp_path / "missing")
    with pytest.raises(errors.RunFailed, match=f"runtime_dir {missing} "):
        wiring.runtime_base(InitiatorConfig(runtime_dir=missing), env)
