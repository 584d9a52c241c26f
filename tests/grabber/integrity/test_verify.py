"""`grabber verify` (integrity/verify.py) on trees written here, with
manifests built without rsync: each inode read once, damage reported once
with every snapshot that shares it, missing and extra files found."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.integrity import manifest, verify
from pullsnap.grabber.store.repository import HostRepo

N1, N2 = "2026-11-24T020000Z", "2026-11-25T020000Z"
NOW = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


def _snapshot(host: HostRepo, name: str, files: dict[str, bytes], base: str | None = None):
    top = Path(host.tree(name))
    top.mkdir()
    for rel, data in files.items():
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        old = Path(host.tree(base), rel) if base else None
        if old is not None and old.exists() and old.read_bytes() == data:
            os.link(old, path)  # what --link-dest does for an unchanged file
        else:
            path.write_bytes(data)
    entries, _ = manifest.build(str(top), name, set(), [])
    manifest.write(host.manifest_path(name), {"snapshot": name}, entries)
    host.write_record(name, {"state": "complete", "host": host.host})


@pytest.fixture
def host(tmp_path: Path) -> HostRepo:
    repo = HostRepo(str(tmp_path), "web1")
    repo.ensure()
    files = {"etc/hosts": b"127.0.0.1 localhost\n", "etc/motd": b"hello\n"}
    _snapshot(repo, N1, files)
    _snapshot(repo, N2, {**files, "etc/motd": b"changed\n"}, base=N1)
    return repo


def test_an_intact_repository_verifies_and_shared_inodes_are_read_once(host: HostRepo) -> None:
    outcome = verify.verify_host(host, None, 1.0)
    assert outcome.mismatches == [] and outcome.snapshots == [N1, N2]
    assert outcome.checked == 4  # two files in each snapshot...
    # ...but etc/hosts is one inode in both: read once.
    assert outcome.checked_bytes == len(b"127.0.0.1 localhost\n") + len(b"hello\n") + len(
        b"changed\n"
    )
    assert verify.report(host, outcome, host.attempts()) == []
    assert verify.summary(host, outcome).endswith("in 2 snapshot(s): ok")


def test_a_flipped_byte_is_one_line_naming_every_snapshot_that_shares_it(
    host: HostRepo,
) -> None:
    shared = Path(host.tree(N2), "etc", "hosts")
    data = bytearray(shared.read_bytes())
    data[0] ^= 1
    with open(shared, "r+b") as f:  # in place: the inode stays shared
        f.write(data)
    outcome = verify.verify_host(host, None, 1.0)
    assert {(m.snapshot, m.path) for m in outcome.mismatches} == {
        (N1, b"etc/hosts"), (N2, b"etc/hosts")
    }  # fmt: skip
    lines = verify.report(host, outcome, host.attempts())
    assert lines == [
        f"mismatch: web1/{N1}/etc/hosts: content differs from the manifest "
        f"(stored by the {N1} run); the same file is in snapshots {N1}, {N2}"
    ]
    assert verify.summary(host, outcome).endswith("2 mismatch(es)")


def test_missing_and_unlisted_files_are_mismatches(host: HostRepo) -> None:
    os.unlink(Path(host.tree(N2), "etc", "motd"))
    Path(host.tree(N2), "planted").write_bytes(b"x")
    outcome = verify.verify_host(host, N2, 1.0)
    whys = {(m.path, m.why) for m in outcome.mismatches}
    assert whys == {(b"planted", "not in the manifest"), (b"etc/motd", "missing from the tree")}
    assert outcome.snapshots == [N2]


def test_a_sample_of_nothing_reads_nothing_but_still_finds_extra_files(host: HostRepo) -> None:
    Path(host.tree(N1), "planted").write_bytes(b"x")
    outcome = verify.verify_host(host, None, 0.0, random.Random(1))
    assert outcome.checked == 0 and outcome.checked_bytes == 0
    assert [m.path for m in outcome.mismatches] == [b"planted"]


def test_a_snapshot_without_a_manifest_is_a_note(host: HostRepo) -> None:
    os.unlink(host.manifest_path(N1))
    outcome = verify.verify_host(host, None, 1.0)
    assert outcome.without_manifest == [N1] and outcome.snapshots == [N2]
    assert verify.report(host, outcome, host.attempts()) == [
        f"note: web1/{N1} has no manifest (made before manifests): skipped"
    ]


def test_an_unknown_snapshot_is_a_usage_error(host: HostRepo) -> None:
    with pytest.raises(errors.NoSuchSnapshot, match="web1 has no snapshot 'nope'"):
        verify.verify_host(host, "nope", 1.0)


def test_remember_writes_the_status_file(host: HostRepo) -> None:
    outcome = verify.verify_host(host, None, 0.5, random.Random(0))
    outcome.mismatches.append(verify.Mismatch(N1, b"etc/x", "missing from the tree"))
    verify.remember(host, outcome, None, 0.5, NOW)
    written = json.loads(Path(host.path, verify.VERIFY_FILE).read_text())
    assert written == {"time": "2026-11-26T00:00:00Z", "snapshot": "all", "result": "mismatch",
                       "checked": outcome.checked, "mismatches": [f"{N1}/etc/x"],
                       "sample": 0.5, "unreadable": 0}  # fmt: skip


def test_a_verify_that_could_not_read_everything_keeps_the_saved_result(host: HostRepo) -> None:
    whole = verify.verify_host(host, None, 1.0)
    assert verify.remember(host, whole, None, 1.0, NOW)
    saved = Path(host.path, verify.VERIFY_FILE).read_text()
    partial = verify.Outcome(checked=1, unreadable=[f"{N1}/etc/shadow"])
    assert not verify.remember(host, partial, None, 1.0, NOW)
    assert Path(host.path, verify.VERIFY_FILE).read_text() == saved
    partial.mismatches.append(verify.Mismatch(N1, b"etc/motd", "content differs"))
    assert verify.remember(host, partial, None, 1.0, NOW)  # what it read and found wrong is news
    written = json.loads(Path(host.path, verify.VERIFY_FILE).read_text())
    assert written["result"] == "mismatch" and written["unreadable"] == 1


def test_odd_names_print_on_one_line() -> None:
    m = verify.Mismatch(N1, b"etc/a\nb\xff", "x")
    assert "\n" not in m.shown() and m.where() == f"{N1}/" + os.fsdecode(b"etc/a\nb\xff")


def test_unreadable_files_alone_say_to_run_as_root() -> None:
    outcome = verify.Outcome(unreadable=[f"{N1}/etc/shadow"])
    with pytest.raises(errors.RunFailed, match="the last saved verify stays: run as root: "):
        verify.require_all_readable(outcome)
    outcome.mismatches.append(verify.Mismatch(N1, b"x", "y"))
    verify.require_all_readable(outcome)  # the mismatch is the bigger news
    verify.require_all_readable(verify.Outcome())
