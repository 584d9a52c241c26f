"""The refusal of a gate older than the btrfs store, recognized, and the
line that replaces it (grabber/transfer/oldgate.py; the gate's side:
tests/initiator/test_gate_inplace.py; a real run: tests/faults/test_old_initiator.py)."""

from __future__ import annotations

import pytest

from pullsnap import errors
from pullsnap.config import DEFAULT_GRABBER_CONFIG
from pullsnap.grabber.transfer import oldgate

RSYNC_AFTER = [
    "rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]",
    "rsync error: error in rsync protocol data stream (code 12) at io.c(285) [Receiver=3.5.0]",
]


def test_the_gates_line_among_rsyncs_is_recognized() -> None:
    assert oldgate.refused_inplace(["gate error: unknown option --inplace", *RSYNC_AFTER])
    assert oldgate.refused_inplace(["gate error: unknown option --inplace\r"])


@pytest.mark.parametrize(
    "line",
    [
        "gate error: unknown option --info",
        "gate error: unknown option --inplacex",
        "gate error: option --inplace is not allowed",
        'rsync: [sender] link_stat "/srv/gate error: unknown option --inplace" failed',
        "",
    ],
)
def test_other_lines_are_not(line: str) -> None:
    assert not oldgate.refused_inplace([line, *RSYNC_AFTER])


def test_a_host_without_snapshots_may_also_switch_to_hardlink() -> None:
    text = oldgate.advice("web1", False, "/etc/backup/grabber.toml")
    assert "\n" not in text
    assert text.startswith("web1's pullsnap is older than this backup host's btrfs store needs")
    assert text.endswith(
        'upgrade pullsnap on web1, or set store = "hardlink" in /etc/backup/grabber.toml until then'
    )
    # A configuration from no file (tests, grabber_from_dict) names the default.
    assert f"in {DEFAULT_GRABBER_CONFIG} until" in oldgate.advice("web1", False, "<config>")


def test_a_host_with_btrfs_snapshots_can_only_upgrade() -> None:
    text = oldgate.advice("db2", True, "/etc/pullsnap/grabber.toml")
    assert "\n" not in text and "upgrade pullsnap on db2 (" in text
    assert ", or set" not in text and "/etc/pullsnap" not in text


def test_the_verdict_is_a_refusal_with_the_advice_and_asks_about_snapshots_only_then() -> None:
    asked: list[bool] = []

    def has_snapshots() -> bool:
        asked.append(True)
        return True

    rsync_lines = ["rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]"]
    assert oldgate.verdict(rsync_lines, "web1", has_snapshots, "/etc/g.toml") is None
    assert asked == []
    found = oldgate.verdict([oldgate.REFUSAL, *rsync_lines], "web1", has_snapshots, "/etc/g.toml")
    assert found == ("failed", errors.REFUSED, oldgate.advice("web1", True, "/etc/g.toml"))
    assert asked == [True]
