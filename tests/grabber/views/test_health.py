"""Host status from attempts (pure): staleness, counts, Nagios lines, text."""

from __future__ import annotations

import datetime as dt

import pytest

from pullsnap.grabber.store.repository import classify, snapshot_name
from pullsnap.grabber.views import health

NOW = dt.datetime(2026, 11, 25, 12, 0, 0, tzinfo=dt.UTC)
HOUR = 3600.0


def _attempt(hours_ago: float, state: str = "complete", tree: bool = True, **record):
    name = snapshot_name(NOW - dt.timedelta(hours=hours_ago))
    body = {"state": state, "seconds": 30.0, "stats": {"transferred_size": 100}, **record}
    return classify(name, body, tree, False)


def test_fresh_host() -> None:
    attempts = [_attempt(50), _attempt(26), _attempt(2)]
    s = health.summarize("web1", attempts, now=NOW, max_age=36 * HOUR)
    assert not s.stale and s.snapshots == 3
    assert s.last_good == attempts[-1].name and s.age == 2 * HOUR
    assert s.last_state == "complete" and s.last_seconds == 30.0 and s.last_added == 100


def test_stale_when_the_newest_good_is_too_old_or_missing() -> None:
    old = [_attempt(40)]
    assert health.summarize("web1", old, now=NOW, max_age=36 * HOUR).stale
    assert not health.summarize("web1", old, now=NOW, max_age=41 * HOUR).stale
    none = health.summarize("web1", [], now=NOW, max_age=36 * HOUR)
    assert none.stale and none.last_good is None and none.age is None


def test_failed_and_suspect_runs_do_not_refresh_the_age() -> None:
    attempts = [
        _attempt(40),
        _attempt(10, suspect={"reason": "files fell"}),
        _attempt(1, state="failed", tree=False, message="rsync failed with exit 12"),
    ]
    s = health.summarize("web1", attempts, now=NOW, max_age=36 * HOUR)
    assert s.stale and s.last_good == attempts[0].name
    assert s.snapshots == 1 and s.suspect == (attempts[1].name,) and s.failed == 1
    assert s.last_state == "failed" and s.last_message == "rsync failed with exit 12"


def test_partial_counts_unless_the_policy_says_not() -> None:
    attempts = [_attempt(40), _attempt(1, state="partial")]
    assert not health.summarize("web1", attempts, now=NOW, max_age=36 * HOUR).stale
    strict = health.summarize("web1", attempts, now=NOW, max_age=36 * HOUR, partial_is_good=False)
    assert strict.stale and strict.snapshots == 1


def test_a_running_record_without_the_lock_is_interrupted() -> None:
    attempts = [_attempt(5), _attempt(0.1, state="running", tree=False)]
    del attempts[1].record["seconds"]
    unlocked = health.summarize("web1", attempts, now=NOW, max_age=HOUR * 36)
    assert unlocked.last_state == "interrupted" and unlocked.interrupted == 1
    locked = health.summarize("web1", attempts, now=NOW, max_age=HOUR * 36, locked=True)
    assert locked.last_state == "running" and locked.interrupted == 0
    assert locked.last_run == attempts[0].name  # the newest *finished* run


@pytest.mark.parametrize(
    "value",
    [None, [], "ok", {"result": "fine"}, {"time": 1}],
)
def test_malformed_verify_files_read_as_never(value) -> None:
    assert health.parse_verify(value) is None


def test_verify_file() -> None:
    body = {"time": "2026-11-25T03:00:00Z", "snapshot": "all", "result": "mismatch",
            "checked": 7, "mismatches": ["a", "b"]}  # fmt: skip
    v = health.parse_verify(body)
    assert v == health.Verify("2026-11-25T03:00:00Z", "all", "mismatch", 7, 2)
    assert health.verify_text(v).startswith("mismatch at 2026-11-25T03:00:00Z")
    assert health.verify_text(None) == "never"


def test_nagios_levels() -> None:
    fresh = health.summarize("web1", [_attempt(1)], now=NOW, max_age=36 * HOUR)
    stale = health.summarize("web2", [], now=NOW, max_age=36 * HOUR)
    odd = health.summarize("web3", [_attempt(1), _attempt(0.5, suspect={"reason": "x"})],
                           now=NOW, max_age=36 * HOUR)  # fmt: skip
    code, line = health.nagios([fresh])
    assert code == health.NAGIOS_OK and line.startswith("PULLSNAP OK - 1 hosts fresh |")
    assert "web1_age=3600s;;129600" in line
    code, line = health.nagios([fresh, stale, odd])
    assert code == health.NAGIOS_CRITICAL and "web2 (no good snapshot)" in line
    assert "web2_age=-1s" in line
    code, line = health.nagios([fresh, odd])
    assert code == health.NAGIOS_WARNING and "web3 (suspect snapshot)" in line
    assert health.nagios([])[0] == health.NAGIOS_UNKNOWN


def test_nagios_says_when_the_repository_runs_low() -> None:
    fresh = health.summarize("web1", [_attempt(1)], now=NOW, max_age=36 * HOUR)
    low = ("12 inodes free, below 5%",)
    code, line = health.nagios([fresh], low, "critical")
    assert code == health.NAGIOS_CRITICAL
    assert line.startswith("PULLSNAP CRITICAL - repository (12 inodes free, below 5%) |")
    code, line = health.nagios([fresh], ("1.0 GiB free, below 10%",), "warning")
    assert code == health.NAGIOS_WARNING and "repository (1.0 GiB free, below 10%)" in line


def test_text_and_json() -> None:
    attempts = [_attempt(40), _attempt(10, suspect={"reason": "files fell"})]
    s = health.summarize("web1", attempts, now=NOW, max_age=36 * HOUR, used=5 << 20)
    text = health.render([s, health.summarize("web22", [], now=NOW, max_age=HOUR)])
    assert text.startswith(f"web1   STALE  last good {attempts[0].name}, 40h00m ago (max 36h00m)")
    assert f"SUSPECT   {attempts[1].name}: check it, then: grabber accept web1" in text
    assert "5.0 MiB used" in text
    assert "web22  STALE  no good snapshot yet" in text
    body = health.as_json(s)
    assert body["stale"] is True and body["suspect"] == [attempts[1].name]
    assert body["used"] == 5 << 20 and body["verify"] is None
    assert set(body) >= {"host", "last_good", "age", "max_age", "snapshots", "failed"}


def test_a_partial_newest_good_snapshot_warns_unless_the_policy_says_not() -> None:
    failed = [
        {"path": "/etc/shadow", "error": "send_files failed to open: Permission denied (13)"},
        {"path": "/srv/data", "error": "link_stat failed: No such file or directory (2)"},
    ]
    attempts = [_attempt(26), _attempt(2, "partial", failed_paths=failed, failed_paths_total=2)]
    s = health.summarize("web1", attempts, now=NOW, max_age=36 * HOUR)
    assert s.warn and not s.stale
    assert s.warnings == (f"last good snapshot {attempts[1].name} is partial: "
                          "1 unreadable: /etc/shadow; 1 missing: /srv/data",)  # fmt: skip
    assert health.render([s]).startswith("web1  WARN ")
    assert f"WARN      last good snapshot {attempts[1].name} is partial" in health.render([s])
    code, line = health.nagios([s])
    assert code == health.NAGIOS_WARNING
    assert line.startswith(f"PULLSNAP WARNING - web1 ({attempts[1].name} is partial: 1 unread")
    assert health.as_json(s)["warnings"] == list(s.warnings)
    quiet = health.summarize("web1", attempts, now=NOW, max_age=36 * HOUR, warn_partial=False)
    assert not quiet.warn and health.nagios([quiet])[0] == health.NAGIOS_OK
    fixed = health.summarize("web1", [*attempts, _attempt(1)], now=NOW, max_age=36 * HOUR)
    assert not fixed.warn  # the next complete run clears it
