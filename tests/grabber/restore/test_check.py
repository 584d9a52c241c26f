"""The check after a restore (restore/check.py): each entry's attributes
against the snapshot's, each file's bytes against the manifest."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pullsnap.grabber.integrity import tree
from pullsnap.grabber.integrity.manifest import Entry
from pullsnap.grabber.restore import check


def _snapshot(tmp_path: Path) -> tuple[str, dict[bytes, Entry]]:
    """A snapshot's copy of the host's /srv/app, and its manifest."""
    source = tmp_path / "snap" / "srv" / "app"
    (source / "conf").mkdir(parents=True)
    (source / "conf" / "app.ini").write_bytes(b"port = 8080\n")
    (source / "run.sh").write_bytes(b"#!/bin/sh\n")
    os.chmod(source / "run.sh", 0o750)
    os.symlink("conf/app.ini", source / "current")
    entries = {}
    for rel in ("conf/app.ini", "run.sh"):
        parent = os.open(str(source / os.path.dirname(rel) or source), tree.DIRECTORY)
        digest, size, inode = tree.hash_file(parent, os.fsencode(os.path.basename(rel)))
        os.close(parent)
        key = b"srv/app/" + rel.encode()
        entries[key] = Entry(key, digest, size, inode, "S")
    return str(source), entries


def test_an_exact_copy_is_verified_against_the_manifest(tmp_path: Path) -> None:
    source, entries = _snapshot(tmp_path)
    target = tmp_path / "restored"
    shutil.copytree(source, target, symlinks=True, copy_function=shutil.copy2)
    os.chmod(target, os.stat(source).st_mode & 0o7777)
    done = check.check_local(source, str(target), b"srv/app", entries)
    assert done.problems == [] and (done.entries, done.files, done.by_manifest) == (5, 2, 2)
    assert done.line().startswith("verified 5 entries (owners, modes, times) and 2 files'")


def test_changed_bytes_modes_and_missing_files_are_named(tmp_path: Path) -> None:
    source, entries = _snapshot(tmp_path)
    target = tmp_path / "restored"
    shutil.copytree(source, target, symlinks=True, copy_function=shutil.copy2)
    os.chmod(target, os.stat(source).st_mode & 0o7777)
    stat = os.stat(target / "conf" / "app.ini")
    (target / "conf" / "app.ini").write_bytes(b"port = 8081\n")  # same size and times
    os.utime(target / "conf" / "app.ini", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.chmod(target / "run.sh", 0o755)
    os.unlink(target / "current")
    done = check.check_local(source, str(target), b"srv/app", entries)
    assert sorted(p.split(str(target))[1] for p in done.problems) == [
        "/conf/app.ini: contents differ from the manifest",
        "/current is missing",
        "/run.sh: mode differ",
    ]
    assert done.line().startswith("3 problem(s): ")


def test_the_snapshots_own_files_are_checked_before_a_copy_elsewhere(tmp_path: Path) -> None:
    source, entries = _snapshot(tmp_path)
    assert check.check_sources(source, b"srv/app", entries).problems == []
    Path(source, "run.sh").write_bytes(b"#!/bin/bash\n")
    [problem] = check.check_sources(source, b"srv/app", entries).problems
    assert problem.endswith("run.sh: contents differ from the manifest")
