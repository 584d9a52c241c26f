"""The receiver's own /etc (etcview.py), and why it needs one."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

import pullsnap
from pullsnap.grabber.confine import etcview

pytestmark = pytest.mark.security

REPO = str(Path(pullsnap.__file__).resolve().parents[1])


def test_passwd_and_group_lines_name_only_the_given_accounts() -> None:
    text = etcview.passwd_text([("root", 0, 0, "/root"), ("pullsnap", 990, 985, "/var/lib/ps"),
                                ("root", 0, 0, "/root")])  # fmt: skip
    assert text.splitlines() == [
        "root:x:0:0::/root:/usr/sbin/nologin",
        "pullsnap:x:990:985::/var/lib/ps:/usr/sbin/nologin",
    ]
    assert etcview.group_text([("root", 0), ("pullsnap", 985), ("pullsnap", 985)]) == (
        "root:x:0:\npullsnap:x:985:\n"
    )


def test_write_etc_holds_the_callers_entry_and_no_secret(tmp_path: Path) -> None:
    etc = etcview.write_etc(str(tmp_path))
    assert sorted(os.listdir(etc)) == sorted(
        ["passwd", "group", "nsswitch.conf"]
        + (["ld.so.cache"] * os.path.exists("/etc/ld.so.cache"))
    )
    me = pwd.getpwuid(os.getuid())
    lines = Path(etc, "passwd").read_text().splitlines()
    assert f"{me.pw_name}:x:{me.pw_uid}:{me.pw_gid}::{me.pw_dir}:/usr/sbin/nologin" in lines
    assert all(line.split(":")[1] == "x" for line in lines)
    assert Path(etc, "nsswitch.conf").read_text().splitlines()[0] == "passwd: files"
    etcview.write_etc(str(tmp_path))  # a second call rewrites it


_RULE_ON_A_FILE = """
import os, sys
from pullsnap import landlock
path, fresh = sys.argv[1:3]
prepared = landlock.prepare(landlock.Confinement(read_only=(path,), read_write=()))
os.rename(fresh, path)  # as useradd replaces /etc/passwd
landlock.enforce(prepared)
try:
    open(path).read()
    print("readable")
except PermissionError:
    print("denied")
"""


def test_a_landlock_rule_on_a_file_does_not_survive_its_replacement(tmp_path: Path) -> None:
    """Why the receiver does not get rules on the backup host's /etc files."""
    (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (tmp_path / "passwd.new").write_text("root:x:0:0::/root:/bin/sh\n")
    argv = [
        sys.executable,
        "-c",
        _RULE_ON_A_FILE,
        *(str(tmp_path / n) for n in ("passwd", "passwd.new")),
    ]
    done = subprocess.run(argv, env={"PYTHONPATH": REPO, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "denied"


@pytest.mark.parametrize("missing", [True, False])
def test_write_etc_copies_ld_so_cache_when_there_is_one(
    tmp_path: Path, monkeypatch, missing: bool
) -> None:
    cache = tmp_path / "ld.so.cache"
    if not missing:
        cache.write_bytes(b"glibc-ld.so.cache1.1")
    monkeypatch.setattr(etcview, "LD_SO_CACHE", str(cache))
    (tmp_path / "private").mkdir()
    etc = etcview.write_etc(str(tmp_path / "private"))
    assert os.path.exists(os.path.join(etc, "ld.so.cache")) is not missing
