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


def _ssh_with_config(tmp_path, text: str) -> str:
    """The real ssh, reading `text` as its ssh_config."""
    config = tmp_path / "ssh_config"
    config.write_text(text)
    wrapper = tmp_path / "ssh"
    wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {config} "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_the_login_goes_through_connectfd_unless_ssh_config_routes_the_host(tmp_path) -> None:
    from pullsnap.config import Destination, InitiatorConfig
    from pullsnap.initiator import wiring

    dest = Destination(name="vault", host="vault.example", port=2222, sources=("/etc",))
    cases = [
        ("", False),
        ("Host vault.example\n    ProxyJump bastion.example\n", True),
        ("Host *\n    ProxyCommand nc %h %p\n", True),
        ("Host other.example\n    ProxyJump bastion.example\n", False),
    ]
    for text, expected in cases:
        cfg = InitiatorConfig(ssh=_ssh_with_config(tmp_path, text))
        assert wiring.own_proxy(cfg, dest) is expected, text
    argv = wiring.ssh_argv(InitiatorConfig(), dest, 30)
    proxy = next(w for w in argv if w.startswith("ProxyCommand="))
    assert proxy.endswith(" vault.example 2222 30") and "ProxyUseFdpass=yes" in argv
    assert not any("Proxy" in w for w in wiring.ssh_argv(InitiatorConfig(), dest, 30, False))


def test_when_ssh_cannot_say_the_operators_setup_is_left_alone(tmp_path) -> None:
    from pullsnap.config import Destination, InitiatorConfig
    from pullsnap.initiator import wiring

    dest = Destination(name="vault", host="vault.example", sources=("/etc",))
    broken = _ssh_with_config(tmp_path, "NoSuchOption yes\n")
    assert wiring.own_proxy(InitiatorConfig(ssh=broken), dest) is True
    assert wiring.own_proxy(InitiatorConfig(ssh=str(tmp_path / "absent")), dest) is True
