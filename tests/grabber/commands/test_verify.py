"""`grabber verify` (commands/verify.py): the exit status is the verdict,
the status file is written, a bad sample fraction is a usage error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.integrity import manifest, verify
from tests.grabber.commands.conftest import N1, N2


@pytest.fixture
def manifests(repo):
    for name in (N1, N2):
        entries, _ = manifest.build(repo.tree(name), name, set(), [])
        manifest.write(repo.manifest_path(name), {"snapshot": name}, entries)
    return repo


def test_an_intact_host_verifies(manifests, grabber) -> None:
    code, out, _ = grabber("verify", "web1")
    assert code == errors.OK
    assert out.splitlines()[-1].startswith("verify web1: 5 files") and out.endswith(": ok\n")
    written = json.loads(Path(manifests.path, verify.VERIFY_FILE).read_text())
    assert written["result"] == "ok" and written["snapshot"] == "all" and written["sample"] == 1


def test_a_changed_file_fails_the_verify(manifests, grabber) -> None:
    Path(manifests.tree(N2), "etc", "motd").write_bytes(b"tampered\n")
    code, out, _ = grabber("verify", "web1", N2)
    assert code == errors.FAILED
    assert f"mismatch: web1/{N2}/etc/motd: content differs" in out
    assert json.loads(Path(manifests.path, verify.VERIFY_FILE).read_text())["snapshot"] == N2


def test_without_manifests_each_snapshot_is_a_note(repo, grabber) -> None:
    code, out, _ = grabber("verify", "web1")
    assert code == errors.OK and out.count("has no manifest") == 2


@pytest.mark.parametrize("sample", ["0", "1.5", "half"])
def test_a_bad_sample_is_refused_by_the_parser(repo, grabber, sample: str, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        grabber("verify", "web1", "--sample", sample)
    assert stop.value.code == errors.USAGE
    assert "--sample" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(repo.path, verify.VERIFY_FILE))
