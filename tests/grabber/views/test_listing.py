"""`grabber list` (views/listing.py): one row per attempt, states as an
operator should read them."""

from __future__ import annotations

from pathlib import Path

from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.views import listing


def test_rows_and_the_table(tmp_path: Path) -> None:
    host = HostRepo(str(tmp_path), "web1")
    host.ensure()
    Path(host.tree("2026-11-24T021700Z")).mkdir()
    host.write_record("2026-11-24T021700Z", {"state": "complete", "seconds": 125, "mode": "super",
                      "stats": {"files": 48211, "transferred_size": 1 << 30}})  # fmt: skip
    Path(host.incomplete("2026-11-25T021700Z")).mkdir()
    host.write_record("2026-11-25T021700Z", {"state": "partial", "failed_paths_total": 2,
                      "failed_paths": [{"path": "/etc/shadow"}]})  # fmt: skip
    host.write_record("2026-11-26T021700Z", {"state": "running"})
    rows = listing.rows(str(tmp_path))
    assert rows[0] == ["web1", "2026-11-24T021700Z", "complete", "super", "48,211 files",
                       "+1.0 GiB", "2m05s", ""]  # fmt: skip
    assert rows[1][2:] == ["unpublished", "-", "", "", "", "2 unreadable, e.g. /etc/shadow"]
    assert rows[2][2] == "interrupted"  # running, but its host is not locked
    text = listing.render(str(tmp_path))
    assert text.splitlines()[0].split() == ["HOST", "SNAPSHOT", "STATE", "MODE", "FILES",
                                            "ADDED", "TIME", "NOTE"]  # fmt: skip
    assert listing.render(str(tmp_path), ["web9"]) == f"no snapshots in {tmp_path}\n"
