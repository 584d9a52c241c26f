"""The initiator's command line (initiator/cli.py): which part each form
starts, with what, and how a configuration error ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from pullsnap import caps, errors
from pullsnap.initiator import check, cli, console, gateentry

CONFIG = """
[[destination]]
name = "vault"
host = "vault.example"
sources = ["/etc"]

[[destination]]
name = "offsite"
host = "offsite.example"
sources = ["/srv"]
"""


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "initiator.toml"
    path.write_text(CONFIG)
    return str(path)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """console.run_all recorded, privileges left alone."""
    calls: list[dict] = []

    def run_all(cfg, destinations, **kwargs):
        calls.append({"dests": [d.name for d in destinations], **kwargs})
        return 0

    monkeypatch.setattr(console, "run_all", run_all)
    monkeypatch.setattr(cli, "take_privileges", lambda cfg, warn: None)
    return calls


def test_a_plain_run_is_every_destination_quietly(config: str, started) -> None:
    assert cli.main(["-c", config]) == 0
    assert started == [{"dests": ["vault", "offsite"], "now": False, "verbose": False,
                        "probe": False, "style": "auto"}]  # fmt: skip


def test_now_dest_dry_run_and_format_reach_the_run(config: str, started) -> None:
    cli.main(["-c", config, "--now", "--dest", "offsite", "--dry-run", "-v", "--format", "logfmt"])
    assert started == [{"dests": ["offsite"], "now": True, "verbose": True, "probe": True,
                        "style": "logfmt"}]  # fmt: skip


def test_an_unknown_destination_is_a_usage_error(config: str, started, capsys) -> None:
    assert cli.main(["-c", config, "--dest", "nas"]) == errors.USAGE
    assert capsys.readouterr().err == f"initiator: no destination named 'nas' in {config}\n"
    assert started == []


def test_a_missing_configuration_is_one_line(tmp_path: Path, started, capsys) -> None:
    assert cli.main(["-c", str(tmp_path / "none.toml")]) == errors.USAGE
    err = capsys.readouterr().err
    assert err.startswith("initiator: ") and err.count("\n") == 1 and started == []


def test_check_without_probe_runs_no_backup(config: str, started, monkeypatch) -> None:
    monkeypatch.setattr(check, "run", lambda cfg, probe: 1)
    assert cli.main(["check", "-c", config]) == 1
    assert started == []


def test_check_with_probe_probes_each_destination(config, started, monkeypatch) -> None:
    monkeypatch.setattr(check, "run", lambda cfg, probe: 0)
    assert cli.main(["check", "-c", config, "--probe", "--dest", "vault"]) == 0
    assert started == [{"dests": ["vault"], "now": True, "verbose": False, "probe": True,
                        "style": "text"}]  # fmt: skip


def test_gate_goes_to_the_gate_with_the_rest_of_the_words(monkeypatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(gateentry, "main", lambda argv: seen.append(argv) or 7)
    assert cli.main(["gate", "--dry-run", "--root", "/etc"]) == 7
    assert seen == [["--dry-run", "--root", "/etc"]]


def test_the_description_lists_every_exit_code() -> None:
    text = cli.build_parser().description
    assert all(f"{code} {name}" in text for code, name in errors.EXIT_NAMES.items())


def test_privileges_root_drops_others_hold_or_are_warned(config, monkeypatch) -> None:
    from pullsnap.config import load_initiator

    cfg = load_initiator(config)
    did: list[object] = []
    monkeypatch.setattr(caps, "drop_to_user", lambda user, wanted: did.append(("drop", user)))
    monkeypatch.setattr(caps, "hold_quietly", lambda wanted: did.append("hold"))
    monkeypatch.setattr(cli.os, "geteuid", lambda: 0)
    cli.take_privileges(cfg, did.append)
    assert did == [("drop", cfg.user)]
    monkeypatch.setattr(cli.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(caps, "have", lambda wanted: True)
    did.clear()
    cli.take_privileges(cfg, did.append)
    assert did == ["hold"]
    monkeypatch.setattr(caps, "have", lambda wanted: False)
    did.clear()
    cli.take_privileges(cfg, did.append)
    [warning] = did
    assert isinstance(warning, str) and warning.startswith("warning: CAP_DAC_READ_SEARCH")
    assert f"initiator -c {config}" in warning
