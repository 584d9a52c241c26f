"""The benchmark's repository sizes on btrfs: each data extent once, however
many snapshots or hardlinks share it, and the metadata a step grew."""

from __future__ import annotations

import os
import subprocess

import pytest

from bench import btrfsspace, report
from bench.btrfsspace import RepoSpace
from bench.measure import disk_usage

MIB = 1 << 20

# btrfs-progs 6.2, as run by btrfsspace.measure.
DU = """\
     Total   Exclusive  Set shared  Filename
 948682752       12288   316227584  /b/repos/rsync-ssh-btrfs-r0
"""
DF = """\
Data, single: total=880803840, used=316227584
System, DUP: total=8388608, used=16384
Metadata, DUP: total=268435456, used=45236224
GlobalReserve, single: total=5767168, used=0
"""


def test_du_data_is_exclusive_plus_set_shared_not_total() -> None:
    assert btrfsspace.du_data(DU, "/b/repos/rsync-ssh-btrfs-r0") == 12288 + 316227584


def test_du_data_reads_only_the_row_of_the_path_asked_for() -> None:
    rows = DU + "    4096        4096           -  /b/repos/rsync-ssh-btrfs-r0 two\n"
    assert btrfsspace.du_data(rows, "/b/repos/rsync-ssh-btrfs-r0 two") == 4096
    with pytest.raises(btrfsspace.SpaceError, match="no line for /b/repos/other"):
        btrfsspace.du_data(DU, "/b/repos/other")
    with pytest.raises(btrfsspace.SpaceError):
        btrfsspace.du_data("     Total   Exclusive  Set shared  Filename\n", "Filename")
    with pytest.raises(btrfsspace.SpaceError, match="no byte counts"):  # not --raw
        btrfsspace.du_data(" 948682752    12.00KiB   301.58MiB  /r\n", "/r")


def test_df_metadata_is_the_metadata_used_not_data_or_system() -> None:
    assert btrfsspace.df_metadata(DF) == 45236224
    # Between two profiles (a balance converting DUP to single): both lines count.
    both = DF + "Metadata, single: total=1073741824, used=1000\n"
    assert btrfsspace.df_metadata(both) == 45236224 + 1000


def test_df_metadata_without_a_metadata_line_is_an_error() -> None:
    for text in ("", DF.replace("Metadata", "Meta"), "Metadata, DUP: total=1, used=?\n"):
        with pytest.raises(btrfsspace.SpaceError):
            btrfsspace.df_metadata(text)


def test_fields_count_the_metadata_grown_since_the_repository_was_made() -> None:
    made = RepoSpace(data=0, metadata=1000 * MIB)  # older repositories in the trash
    full = RepoSpace(data=300 * MIB, metadata=1040 * MIB)
    same = RepoSpace(data=300 * MIB, metadata=1040 * MIB + 64 * 1024)
    row = btrfsspace.fields(made, full, same)
    assert row["repo_bytes"] == 340 * MIB + 64 * 1024
    assert (row["added_bytes"], row["added_data_bytes"], row["added_metadata_bytes"]) == (
        64 * 1024, 0, 64 * 1024)  # fmt: skip
    assert btrfsspace.fields(made, made, full)["added_bytes"] == 340 * MIB


def _details(steps: list[dict]) -> dict:
    meta = {"date": "d", "machine": {}, "versions": {}, "dataset": "x", "reps": 1}
    return {"meta": meta, "steps": steps}


def test_the_report_says_how_the_btrfs_rows_were_measured() -> None:
    step = {"scenario": "nochange", "rep": 0, "wall": 1.0, "repo_bytes": MIB, "added_bytes": 4096}
    steps = [{**step, "tool": "rsync-ssh"}, {**step, "tool": "rsync-ssh-btrfs", "space": "btrfs"}]
    text = report.markdown(_details(steps))
    note = next(line for line in text.splitlines() if line.startswith("Repository sizes of"))
    assert "rsync-ssh-btrfs:" in note and "Exclusive + Set shared" in note
    assert "rsync-ssh," not in note
    # Results measured before (du on every row) get no such note.
    assert "Repository sizes of" not in report.markdown(_details(steps[:1]))


def _btrfs(*args: str) -> None:
    subprocess.run(["btrfs", *args], check=True, capture_output=True)


@pytest.mark.root
def test_snapshots_and_hardlinks_hold_their_data_once(btrfs: str, btrfs_dir: str) -> None:
    repo = os.path.join(btrfs_dir, "repo")
    os.makedirs(repo)
    meter = btrfsspace.RepoMeter(repo, btrfs)
    meter.before()
    first = os.path.join(repo, "1")
    _btrfs("subvolume", "create", first)
    with open(os.path.join(first, "f"), "wb") as f:
        f.write(os.urandom(4 * MIB))
    os.link(os.path.join(first, "f"), os.path.join(first, "g"))
    full = meter.after()
    assert full["added_data_bytes"] == full["repo_bytes"] - full["added_metadata_bytes"] == 4 * MIB
    assert full["added_metadata_bytes"] > 0  # the subvolume, two names, the checksums
    for name in ("2", "3"):  # no change: a snapshot of the last
        _btrfs("subvolume", "snapshot", first, os.path.join(repo, name))
        same = meter.after()
        assert same["added_data_bytes"] == 0
        assert 0 <= same["added_metadata_bytes"] < MIB, same
    assert disk_usage(repo) >= 12 * MIB  # what du says: each snapshot's copy again
    with open(os.path.join(repo, "3", "f"), "r+b") as f:
        f.seek(MIB)
        f.write(os.urandom(MIB))
    changed = meter.after()
    assert changed["added_data_bytes"] == MIB
    assert changed["repo_bytes"] < 6 * MIB
