"""`grabber diff`: attribute comparison (pure), fake-super metadata, and
real trees linked the way rsync --link-dest links them."""

from __future__ import annotations

import os
import subprocess

import pytest

from pullsnap.grabber.views import treediff
from pullsnap.grabber.views.treediff import Change, Meta


def _meta(**changes) -> Meta:
    base = {"kind": "file", "mode": 0o644, "uid": 0, "gid": 0, "size": 10, "mtime_ns": 1}
    return Meta(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "reasons"),
    [
        ({}, ()),
        ({"size": 11, "mtime_ns": 2}, ("size", "mtime")),
        ({"mode": 0o4755}, ("mode",)),
        ({"gid": 5}, ("owner",)),
        ({"kind": "link", "link": b"x"}, ("type",)),
        ({"acls": (("system.posix_acl_access", b"\x02"),)}, ("acl",)),
        ({"xattrs": (("user.a", b"1"),)}, ("xattrs",)),
    ],
)
def test_differences(changes, reasons) -> None:
    assert treediff.differences(_meta(), _meta(**changes)) == reasons


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"100644 0,0 1000:1000", (0o100644, 0, 1000, 1000)),
        (b"20600 1,3 4242:0", (0o20600, os.makedev(1, 3), 4242, 0)),
        (b"garbage", None),
        (b"100644 0,0 x:1", None),
        (b"\xff", None),
    ],
)
def test_fake_super_stat(value, expected) -> None:
    assert treediff.parse_fake_stat(value) == expected


def test_fake_super_attributes_are_read_from_the_xattr(tmp_path) -> None:
    path = tmp_path / "dev"
    path.write_bytes(b"")
    # rsync --fake-super keeps a device as an empty file with its real mode here.
    os.setxattr(path, treediff.FAKE_STAT, b"20600 1,3 4242:7")
    meta = treediff.meta_of(os.fsencode(path), os.lstat(path))
    assert (meta.kind, meta.mode, meta.uid, meta.gid) == ("chr", 0o600, 4242, 7)
    assert meta.rdev == os.makedev(1, 3) and meta.xattrs == ()


def _snapshot(a: str, b: str) -> None:
    """b: a copy of a whose files are hardlinks, as --link-dest leaves them."""
    subprocess.run(["cp", "-al", a, b], check=True)


def _write(path, data: bytes = b"x") -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def test_real_trees(tmp_path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    _write(f"{a}/etc/hosts", b"one\n")
    _write(f"{a}/etc/motd")
    _write(f"{a}/old/deep/file")
    _write(f"{a}/copied", b"same")
    os.symlink("etc/hosts", f"{a}/link")
    _snapshot(a, b)
    # Changes the way rsync makes them in a new snapshot: a new inode each.
    os.unlink(f"{b}/etc/hosts")
    _write(f"{b}/etc/hosts", b"two, longer\n")
    subprocess.run(["rm", "-r", f"{b}/old"], check=True)
    _write(f"{b}/new/file")
    os.unlink(f"{b}/link")
    os.symlink("etc/motd", f"{b}/link")
    # Same attributes, another inode (a run that reused an interrupted tree).
    os.unlink(f"{b}/copied")
    _write(f"{b}/copied", b"SAME")
    os.utime(f"{b}/copied", ns=(os.lstat(f"{a}/copied").st_mtime_ns,) * 2)
    found = list(treediff.diff_trees(a, b))
    assert found == [
        Change("M", b"/etc/hosts", ("size", "mtime")),
        Change("M", b"/link", ("target",)),
        Change("+", b"/new"),
        Change("+", b"/new/file"),
        Change("-", b"/old"),
        Change("-", b"/old/deep"),
        Change("-", b"/old/deep/file"),
    ]
    assert Change("M", b"/copied", ("content",)) in treediff.diff_trees(a, b, content=True)
    assert list(treediff.diff_trees(a, a)) == []


def test_a_file_that_became_a_directory(tmp_path) -> None:
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    _write(f"{a}/x")
    _write(f"{b}/x/inner")
    assert list(treediff.diff_trees(a, b)) == [
        Change("M", b"/x", ("type",)),
        Change("+", b"/x/inner"),
    ]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"/etc/hosts", "/etc/hosts"),
        (b"/odd/new\nline", "/odd/new\\nline"),
        (b"/odd/caf\xe9", "/odd/caf\\xe9"),
        (b"/odd/back\\slash", "/odd/back\\\\slash"),
        ("/odd/ünï".encode(), "/odd/ünï"),
    ],
)
def test_paths_print_on_one_line(raw: bytes, shown: str) -> None:
    assert treediff.show(raw) == shown


@pytest.mark.security
def test_deep_trees_do_not_exhaust_the_stack(tmp_path) -> None:
    """A backed-up host chooses how deep its tree is; the walk is iterative."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    deep = "/".join(["d"] * 1500)  # deeper than Python's recursion limit
    subprocess.run(["mkdir", "-p", f"{a}/{deep}", b], check=True)
    try:
        found = list(treediff.diff_trees(a, b))
    finally:
        # pytest's own cleanup (shutil.rmtree) recurses and could not remove it.
        subprocess.run(["rm", "-rf", a], check=True)
    assert len(found) == 1500 and all(c.sign == "-" for c in found)
    assert found[-1].path == b"/" + deep.encode()


@pytest.mark.security
def test_content_comparison_never_opens_a_fifo(tmp_path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "file").write_bytes(b"")
    assert not treediff._same_bytes(os.fsencode(tmp_path / "fifo"), os.fsencode(tmp_path / "file"))


def _long_tree(top: str, last: str) -> None:
    """16 levels of 253-byte names: inside a snapshot the path is within
    rsync's 4096 bytes, below the repository it is longer than PATH_MAX."""
    os.makedirs(top)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(16):
            name = f"x{level:02d}" + "y" * 250
            os.mkdir(name, dir_fd=fd)
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        os.close(os.open(last, os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def test_a_path_longer_than_the_system_takes_is_one_line(tmp_path, capsys) -> None:
    """rsync stores such a path (it works relative to the target); diff
    cannot reach it by name and says so, without a traceback."""
    from pullsnap import errors
    from pullsnap.grabber.cli import main
    from pullsnap.grabber.store.repository import HostRepo

    host = HostRepo(str(tmp_path / "repo"), "web1")
    host.ensure()
    for name, last in (("2026-11-24T020000Z", "old"), ("2026-11-25T020000Z", "new")):
        _long_tree(host.tree(name), last)
        host.write_record(name, {"state": "complete"})
    conf = tmp_path / "grabber.toml"
    conf.write_text(f'repository = "{host.root}"\n')
    try:
        code = main(["grabber", "--config", str(conf), "diff", "web1", "2026-11-24T020000Z"])
    finally:
        subprocess.run(["rm", "-rf", host.path], check=True)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == errors.FAILED
    assert len(err) == 1 and err[0].startswith("grabber: cannot read /"), err
    assert err[0].endswith(": File name too long")
