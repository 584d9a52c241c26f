"""The run's verdict for the initiator (backup.verdict, pure)."""

from __future__ import annotations

from pullsnap import errors
from pullsnap.grabber.run import backup
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.transfer import pull


def test_the_verdict_tells_bytes_over_the_wire_from_bytes_added() -> None:
    """README "Log lines": `transferred` is what was sent, `added` the new or
    changed files; a delta-transferred change sends less than it adds."""
    run = backup.Run(cfg=None, host=HostRepo("/nonexistent", "web1"), connect=None,
                     handoff=None, fingerprint="", mode="fake-super", held=(), out=None,
                     now=None, name="2026-11-25T021700Z", state="complete",
                     code=errors.OK)  # fmt: skip
    run.result = pull.PullResult(
        0, stats={"files": 3, "transferred_size": 1000, "bytes_received": 250, "total_size": 5000}
    )
    verdict = backup.verdict(run)
    assert (verdict["transferred"], verdict["added"], verdict["total"]) == (250, 1000, 5000)
