"""`grabber restore` and `grabber delete` (commands/snapshots.py), run in
this process on the tests' own repository."""

from __future__ import annotations

from pullsnap import errors
from pullsnap.grabber.retention import delete
from tests.grabber.commands.conftest import N1, N2


def test_delete_refuses_the_newest_good_and_names_the_forced_command(repo, grabber,
                                                                     tmp_path) -> None:  # fmt: skip
    code, _, err = grabber("delete", "web1", N2)
    assert code == errors.FAILED
    forced = f"grabber --config {tmp_path / 'grabber.toml'} delete web1 {N2} --force"
    assert err.strip().endswith(f"to delete it anyway: {forced}")
    code, out, _ = grabber("delete", "web1", N1, "--reason", "tested")
    assert code == errors.OK and out.startswith(f"grabber: deleted web1/{N1} (complete, ")
    assert [(d["snapshot"], d["reason"]) for d in delete.deletions(repo)] == [(N1, "tested")]


def test_restore_of_a_snapshot_that_is_not_there_names_the_list(repo, grabber) -> None:
    code, _, err = grabber("restore", "web1", "2020-01-01T000000Z", "/etc", "/tmp/x")
    assert code == errors.USAGE and "web1 has no snapshot '2020-01-01T000000Z'" in err
