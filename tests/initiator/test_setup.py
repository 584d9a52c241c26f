"""`initiator setup` and `initiator check`, their pure parts."""

from __future__ import annotations

import os
import shlex

import pytest

from pullsnap.initiator import advice, check, setup


def test_authorize_lines_run_as_printed_with_the_default_or_another_grabber_config() -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB pullsnap@web1 extra words"
    line, hint, other = advice.grabber_authorize("web1", key, "pullsnap")
    assert line == "grabber authorize web1 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB pullsnap@web1'"
    assert "/etc/pullsnap/grabber.toml" in hint and hint.startswith("# ")
    # The other line is a comment until FILE is filled in; then it is one command.
    words = shlex.split(other.removeprefix("# ").replace("FILE", "/srv/g.toml"))
    assert words == ["grabber", "--config", "/srv/g.toml", "authorize", "--bind-config", "web1",
                     "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB pullsnap@web1"]  # fmt: skip
    line, _, other = advice.grabber_authorize("web1", key, "backup")
    assert shlex.split(line)[:5] == ["grabber", "authorize", "--user", "backup", "web1"]
    assert "authorize --bind-config --user backup web1 " in other


def test_initiator_commands_name_a_config_that_is_not_the_default() -> None:
    from pullsnap.config import InitiatorConfig

    assert advice.initiator(InitiatorConfig(path="/etc/pullsnap/initiator.toml"), "check") == (
        "initiator check"
    )
    assert advice.initiator(InitiatorConfig(path="/srv/my conf.toml"), "check", "--probe") == (
        "initiator -c '/srv/my conf.toml' check --probe"
    )


@pytest.mark.parametrize("hostname, name", [("web1", "web1"), ("Web1.Example.ORG", "web1")])
def test_default_host_name(hostname: str, name: str) -> None:
    assert setup.default_host_name(hostname) == name


def _stat(uid: int, mode: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))


@pytest.mark.parametrize(
    "uid, mode, problem",
    [(7, 0o100600, None), (7, 0o100400, None), (0, 0o100600, "not owned by the run's user"),
     (7, 0o100640, "mode 0640, not 0600"), (7, 0o100604, "mode 0604, not 0600")],
)  # fmt: skip
def test_key_file_problems_are_what_ssh_refuses(uid: int, mode: int, problem: str | None) -> None:
    assert check.key_file_problem(_stat(uid, mode), 7) == problem


def test_check_of_a_runtime_dir_for_a_missing_user_is_a_problem_line(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pullsnap.config import Destination, InitiatorConfig

    dest = Destination(name="vault", host="h", sources=("/etc",))
    cfg = InitiatorConfig(runtime_dir=str(tmp_path), user="no-such-user-here", destinations=(dest,))
    # As root the run's user is the configured one (check.run_user).
    monkeypatch.setattr(check, "run_user", lambda cfg: cfg.user)
    found = list(check.check_runtime(cfg))
    assert [f.ok for f in found] == [False]
    assert "no-such-user-here" in found[0].text
