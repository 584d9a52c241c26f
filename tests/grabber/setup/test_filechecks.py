"""`grabber check`'s file checks (setup/filechecks.py): the repository and
authorized_keys, each problem with its fix."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from pullsnap.config import grabber_from_dict
from pullsnap.grabber.session.binding import authorized_keys_line
from pullsnap.grabber.setup import filechecks
from tests.grabber.setup.test_keyfile import _key

ME = pwd.getpwuid(os.getuid())


def _user(home: Path) -> pwd.struct_passwd:
    return pwd.struct_passwd((ME.pw_name, "x", ME.pw_uid, ME.pw_gid, "", str(home), "/bin/sh"))


def test_the_remount_fix_for_a_filesystem_of_its_own_and_for_a_directory() -> None:
    own = filechecks.remount_fix("/srv/pullsnap", "/srv/pullsnap/")
    assert own.startswith("mount -o remount,nosuid,nodev /srv/pullsnap")
    inside = filechecks.remount_fix("/srv/pullsnap", "/")
    assert inside.startswith("mount --bind -o nosuid,nodev /srv/pullsnap /srv/pullsnap")
    assert "/srv/pullsnap /srv/pullsnap none bind,nosuid,nodev 0 0" in inside
    assert filechecks.remount_fix("/srv/pullsnap", None) == inside


def _st(mode: int, uid: int, gid: int) -> os.stat_result:
    return os.stat_result((stat.S_IFDIR | mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


@pytest.mark.parametrize(
    "mode, uid, gid, bits, granted",
    [(0o700, 5, 9, 4, True), (0o070, 5, 9, 4, False),  # the owner class decides for the owner
     (0o070, 6, 9, 4, True), (0o707, 6, 9, 1, False),  # the group class for a member
     (0o001, 6, 8, 1, True), (0o004, 6, 8, 5, False)],  # others; all bits asked must be there
)  # fmt: skip
def test_permits_follows_the_mode_classes(mode, uid, gid, bits, granted) -> None:
    assert filechecks.permits(_st(mode, uid, gid), 5 if uid == 5 else 7, {9}, bits) is granted


def test_a_missing_repository_says_how_to_make_it(tmp_path: Path) -> None:
    cfg = grabber_from_dict({"repository": str(tmp_path / "repo")})
    [found] = filechecks.check_repository(cfg, _user(tmp_path), launcher=True)
    assert not found.ok and found.fix.startswith(f"install -d -o {ME.pw_name}")
    assert found.fix.endswith(f"-m 0700 {tmp_path / 'repo'}")


def test_a_good_repository_passes_with_hardlinks_and_space(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir(mode=0o700)
    cfg = grabber_from_dict({"repository": str(repo), "min_free_abs": 0, "min_free_inodes": 0,
                             "min_free_avg": 0})  # fmt: skip
    found = list(filechecks.check_repository(cfg, _user(tmp_path), launcher=True))
    problems = [f.text for f in found if not f.ok]
    assert problems == []
    texts = " | ".join(f.text for f in found)
    assert f"repository {repo} ({ME.pw_name}'s, 0700)" in texts
    assert "hardlinks work" in texts and "free space" in texts
    assert os.listdir(repo) == []  # the probe is gone


def test_a_repository_open_to_others_is_a_problem_with_the_fix(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    repo.chmod(0o755)
    cfg = grabber_from_dict({"repository": str(repo)})
    first = next(iter(filechecks.check_repository(cfg, _user(tmp_path), launcher=True)))
    assert not first.ok and "mode 0755" in first.text
    assert first.fix == f"chown {ME.pw_name}:{_group()} {repo} && chmod 0700 {repo}"


def test_too_little_space_for_the_guard_is_a_problem(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir(mode=0o700)
    cfg = grabber_from_dict({"repository": str(repo), "min_free_abs": "1P"})
    found = list(filechecks.check_repository(cfg, _user(tmp_path), launcher=True))
    [space] = [f for f in found if f.text.startswith("free space")]
    assert not space.ok and "lower min_free_abs" in space.fix


def _group() -> str:
    import grp

    return grp.getgrgid(ME.pw_gid).gr_name


def _keys(home: Path, text: str) -> Path:
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    path = ssh / "authorized_keys"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_no_authorized_keys_yet_is_a_note(tmp_path: Path) -> None:
    [found] = filechecks.check_authorized_keys(_user(tmp_path))
    assert found.ok and found.note and "no host authorized yet" in found.text
    _keys(tmp_path, "# nothing\n")
    [found] = filechecks.check_authorized_keys(_user(tmp_path))
    assert found.ok and found.note


def test_bound_and_unbound_lines(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    path = _keys(tmp_path, authorized_keys_line("web1", _key()) + _key(seed=b"z") + "\n")
    found = list(filechecks.check_authorized_keys(_user(tmp_path)))
    assert found[0].ok and found[0].text.startswith("authorized: web1 (ssh-ed25519 SHA256:")
    assert not found[1].ok and found[1].text.startswith(f"{path} line 2: ")
    assert len(found) == 2


def test_a_group_writable_ssh_directory_makes_sshd_ignore_the_keys(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    path = _keys(tmp_path, authorized_keys_line("web1", _key()))
    path.parent.chmod(0o770)
    found = list(filechecks.check_authorized_keys(_user(tmp_path)))
    [problem] = [f for f in found if not f.ok]
    assert problem.text == f"{path.parent}: owner or mode makes sshd ignore the keys (StrictModes)"
    assert problem.fix == f"chown {ME.pw_name} {path.parent} && chmod go-w {path.parent}"
