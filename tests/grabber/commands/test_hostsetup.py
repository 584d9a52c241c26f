"""`grabber authorize`, `deauthorize` and `check` (commands/hostsetup.py),
for an account whose home is the test's own."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.setup import authorize
from tests.grabber.setup.test_keyfile import _key

ME = pwd.getpwuid(os.getuid())


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The account "pullsnap" is this user, living in tmp_path/home."""
    home = tmp_path / "home"
    home.mkdir()
    account = pwd.struct_passwd(("pullsnap", "x", ME.pw_uid, ME.pw_gid, "", str(home), "/bin/sh"))

    def getpwnam(name: str) -> pwd.struct_passwd:
        if name == "pullsnap":
            return account
        raise KeyError(name)

    monkeypatch.setattr(authorize.pwd, "getpwnam", getpwnam)
    return home


def test_authorize_binds_the_key_and_replaces_an_earlier_line(home, grabber) -> None:
    code, out, _ = grabber("authorize", "web1", _key())
    keys = home / ".ssh" / "authorized_keys"
    assert code == errors.OK and out.startswith(f"grabber: {keys}: restrict,")
    assert keys.read_text().count("pullsnap-grabber host=web1") == 1
    assert keys.stat().st_mode & 0o777 == 0o600 and (home / ".ssh").stat().st_mode & 0o777 == 0o700
    grabber("authorize", "web1", _key(seed=b"n"))
    grabber("authorize", "db1", _key(seed=b"d"))
    lines = keys.read_text().splitlines()
    assert len(lines) == 2 and _key(seed=b"n") in lines[0] and "host=db1" in lines[1]


def test_bind_config_names_this_configuration(home, grabber, tmp_path: Path) -> None:
    grabber("authorize", "--bind-config", "web1", _key())
    line = (home / ".ssh" / "authorized_keys").read_text()
    assert f"config={tmp_path / 'grabber.toml'}" in line


def test_deauthorize_removes_only_that_hosts_lines(home, grabber) -> None:
    grabber("authorize", "web1", _key())
    grabber("authorize", "db1", _key(seed=b"d"))
    assert grabber("deauthorize", "web1") == (errors.OK, "grabber: web1: removed\n", "")
    assert grabber("deauthorize", "web1") == (errors.OK, "grabber: web1: had no lines\n", "")
    assert "host=db1" in (home / ".ssh" / "authorized_keys").read_text()


def test_a_key_that_is_not_one_is_refused(home, grabber) -> None:
    code, _, err = grabber("authorize", "web1", "ssh-ed25519 not-base64!")
    assert code != errors.OK and err.startswith("grabber: ")
    assert not (home / ".ssh" / "authorized_keys").exists()


def test_an_unknown_account_says_to_create_it(home, grabber) -> None:
    code, _, err = grabber("authorize", "--user", "nobody-here", "web1", _key())
    assert code == errors.USAGE and "no user 'nobody-here': create the grabber user" in err
    code, _, err = grabber("check", "--user", "nobody-here")
    assert code == errors.USAGE and "or pass --user" in err
