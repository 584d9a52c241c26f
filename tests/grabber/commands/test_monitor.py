"""`grabber status` and `grabber report` (commands/monitor.py): exit status,
the forms a monitoring system reads, the HTML page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.views import health
from tests.grabber.commands.conftest import N2


def test_a_fresh_host_is_ok_and_shown_for_a_person(repo, grabber) -> None:
    code, out, _ = grabber("status", "--no-usage")
    assert code == errors.OK
    assert "web1" in out and N2 in out
    assert out.splitlines()[-1].startswith(f"repository {repo.root}: ")


def test_a_tighter_max_age_makes_it_stale(repo, grabber) -> None:
    code, _, _ = grabber("status", "--max-age", "30m", "--quiet", "--no-hooks")
    assert code == errors.STALE


def test_json_is_one_object_a_host(repo, grabber) -> None:
    code, out, _ = grabber("status", "--json", "web1", "db1")
    hosts = json.loads(out)
    assert [h["host"] for h in hosts] == ["web1", "db1"]
    assert code == errors.STALE  # db1 has no snapshot at all


def test_nagios_is_one_line_and_its_own_codes(repo, grabber) -> None:
    code, out, _ = grabber("status", "--nagios")
    assert code == 0 and out.count("\n") == 1 and out.startswith("PULLSNAP OK")
    code, out, _ = grabber("status", "--nagios", "--max-age", "1m")
    assert code == 2 and out.startswith("PULLSNAP CRITICAL")


def test_nagios_says_unknown_when_it_cannot_look(grabber) -> None:
    code, out, _ = grabber("status", "--nagios")
    assert code == health.NAGIOS_UNKNOWN and out.startswith("PULLSNAP UNKNOWN - repository ")


def test_an_unwritable_prometheus_file_fails_the_check_with_a_warning(
    repo, grabber, tmp_path
) -> None:
    target = tmp_path / "missing" / "pullsnap.prom"
    code, _, err = grabber("status", "--quiet", "--prometheus", str(target))
    assert code == errors.FAILED and f"cannot write {target}" in err
    good = tmp_path / "pullsnap.prom"
    assert grabber("status", "--quiet", "--prometheus", str(good))[0] == errors.OK
    assert 'host="web1"' in good.read_text()


@pytest.mark.parametrize("bad", [["--max-age", "soon"], ["../x"]])
def test_bad_arguments_are_usage_errors(repo, grabber, bad, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        grabber("status", *bad)
    assert stop.value.code == errors.USAGE


def test_report_writes_one_page(repo, grabber, tmp_path: Path) -> None:
    code, out, _ = grabber("report", "--html", "-")
    assert code == errors.OK and out.lstrip().lower().startswith("<!doctype html>")
    assert "web1" in out and "<script" not in out
    target = tmp_path / "index.html"
    assert grabber("report", "--html", str(target), "web1") == (errors.OK, "", "")
    assert "web1" in target.read_text()
