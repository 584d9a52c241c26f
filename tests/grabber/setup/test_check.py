"""`grabber check` and the run's rsync refusal: the decisions, with fakes."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from pullsnap import errors, versions
from pullsnap.config import GrabberConfig, grabber_from_dict
from pullsnap.grabber.session import serve
from pullsnap.grabber.setup import filechecks


@pytest.mark.parametrize(
    "version, risky",
    [((3, 4, 0), False), ((3, 5, 0), False), ((4, 0), False), ((3, 3, 0), True),
     ((3, 2, 7), True), (None, True)],
)  # fmt: skip
def test_rsync_risk(version: tuple[int, ...] | None, risky: bool) -> None:
    risk = versions.rsync_risk(version)
    assert (risk is not None) == risky
    if version is not None and risky:
        assert "CVE-2024-12084..12088" in risk


def _fake_rsync(tmp_path: Path, banner: str) -> str:
    """Stands in for an old rsync binary: only its --version banner matters here."""
    path = tmp_path / "rsync"
    path.write_text(f"#!/bin/sh\necho '{banner}'\n")
    path.chmod(0o755)
    return str(path)


def test_the_run_refuses_an_old_rsync_unless_allowed(tmp_path: Path) -> None:
    old = _fake_rsync(tmp_path, "rsync  version 3.2.7  protocol version 31")
    cfg = dataclasses.replace(GrabberConfig(), rsync=old)
    probed = versions.start_probe((old, "--version"))()  # as serve.Early probes it
    with pytest.raises(errors.Refused, match=r"3\.2\.7 is older than 3\.4\.0.*allow_unsafe_rsync"):
        serve.allow_rsync(cfg, probed)
    assert serve.allow_rsync(dataclasses.replace(cfg, allow_unsafe_rsync=True), probed) == "3.2.7"


@pytest.mark.parametrize(
    "path, mount_point, fix",
    [("/srv/pullsnap", "/srv/pullsnap", "mount -o remount,nosuid,nodev /srv/pullsnap, and add"),
     ("/srv/pullsnap", "/", "mount --bind -o nosuid,nodev /srv/pullsnap /srv/pullsnap, and in "
      "/etc/fstab: /srv/pullsnap /srv/pullsnap none bind,nosuid,nodev 0 0")],
)  # fmt: skip
def test_remount_fix_touches_only_the_repository(path: str, mount_point: str, fix: str) -> None:
    assert filechecks.remount_fix(path, mount_point).startswith(fix)


def _stat(uid: int, gid: int, mode: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


@pytest.mark.parametrize(
    "uid, gid, mode, bits, allowed",
    [(7, 0, 0o700, 1, True), (0, 0, 0o700, 1, False), (0, 9, 0o750, 1, True),
     (0, 0, 0o755, 1, True), (7, 0, 0o300, 4, False), (0, 0, 0o644, 4, True),
     (0, 9, 0o604, 4, False)],
)  # fmt: skip
def test_permits_follows_owner_group_other(uid, gid, mode, bits, allowed) -> None:
    """The owner class decides for the owner even when "other" would allow more."""
    assert filechecks.permits(_stat(uid, gid, mode), 7, {7, 9}, bits) is allowed


def test_the_space_check_weighs_inodes_as_bytes(tmp_path: Path) -> None:
    roomy = grabber_from_dict({"repository": str(tmp_path), "min_free_abs": 0,
                                      "min_free_inodes": 1})  # fmt: skip
    [ok] = filechecks._check_space(roomy)
    assert ok.ok and "inodes" in ok.text and "the guard needs up to 0 B and 1 inodes" in ok.text
    starved = grabber_from_dict({"repository": str(tmp_path), "min_free_abs": 0,
                                        "min_free_inodes": 1 << 60})  # fmt: skip
    [problem] = filechecks._check_space(starved)
    assert not problem.ok and "inodes" in problem.fix
