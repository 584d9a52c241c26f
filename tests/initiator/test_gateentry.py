"""`initiator gate` (initiator/gateentry.py): roots from the command line,
or else from the configuration's destinations."""

from __future__ import annotations

from pathlib import Path

import pytest

from pullsnap.initiator import gatecmd, gateentry

CONFIG = """
rsync = "/opt/rsync/bin/rsync"
[[destination]]
name = "vault"
host = "vault.example"
sources = ["/etc", "/srv"]
[[destination]]
name = "offsite"
host = "offsite.example"
sources = ["/srv", "/home"]
"""


@pytest.fixture
def handed(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """What reaches gatecmd.main."""
    seen: list[list[str]] = []
    monkeypatch.setattr(gatecmd, "main", lambda argv: seen.append(argv) or 0)
    return seen


@pytest.mark.parametrize(
    "argv, config, rest",
    [(["-c", "/x.toml", "--dry-run"], "/x.toml", ["--dry-run"]),
     (["--config=/y.toml", "--root", "/etc"], "/y.toml", ["--root", "/etc"]),
     (["--dry-run", "--config", "/z.toml"], "/z.toml", ["--dry-run"]),
     (["--root", "/etc"], None, ["--root", "/etc"]), (["-c"], None, [])],
)  # fmt: skip
def test_the_config_option_is_taken_out(argv, config, rest) -> None:
    assert gateentry._pop_config(argv) == (config, rest)


def test_without_roots_the_sources_of_every_destination_are_used(tmp_path: Path, handed) -> None:
    path = tmp_path / "initiator.toml"
    path.write_text(CONFIG)
    assert gateentry.main(["-c", str(path), "--dry-run"]) == 0
    assert handed == [["--rsync", "/opt/rsync/bin/rsync", "--dry-run", "--root", "/etc",
                       "--root", "/srv", "--root", "/home"]]  # fmt: skip


@pytest.mark.parametrize("given", [["--root", "/etc"], ["--root=/etc"], ["--help"], ["-h"]])
def test_given_roots_or_help_need_no_configuration(handed, given) -> None:
    assert gateentry.main(["-c", "/nonexistent.toml", *given]) == 0
    assert handed == [given]


def test_no_roots_and_no_configuration_is_one_gate_error(tmp_path: Path, handed, capsys) -> None:
    assert gateentry.main(["-c", str(tmp_path / "none.toml"), "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gate error: no --root given and ") and err.count("\n") == 1
    assert handed == []
