"""Manifests and `grabber verify` with real rsync on local trees (no ssh):
what rsync's itemized output says, what is hashed and what is carried,
and what verify finds after a stray write."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.integrity import basemanifests, manifest, tree, verify
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.transfer import pull, rsyncout
from pullsnap.initiator.gate import GatePolicy, parse
from tests.trees import deep_tree

# The tests that run rsync carry the `faults` marker (the snapshot lifecycle
# under faults, issue 5); the pure ones do not.

RSYNC = shutil.which("rsync") or "/usr/bin/rsync"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
CONNECT = pull.ConnectBack("u", "192.0.2.5", 40022, "/run/x/kh", "/run/x/k.pub", "/run/x/a", 30)
ODD = b"new\nline \\#134 caf\xe9"


def local_argv(src: str, target: str, link_dests: tuple[str, ...] = ()) -> list[str]:
    """The grabber's own rsync options (pull.rsync_argv), with a local source."""
    spec = pull.PullSpec(RSYNC, "/usr/bin/ssh", CONNECT, (src,), target, link_dests)
    argv = pull.rsync_argv(spec)
    argv = argv[: argv.index("-e")]
    return [w for w in argv if not w.startswith("--super")] + ["--", src, target + "/"]


def pull_local(src: str, target: str, *link_dests: str) -> pull.PullResult:
    os.makedirs(target)
    result = pull.run_rsync(
        local_argv(src, target, link_dests), ENV, lambda p: None, lambda line: None, None, 60
    )
    assert result.exit_code == 0, result.errors
    return result


def rel(src: str, *parts: str) -> bytes:
    """A source file's path inside a snapshot (-R keeps the full path)."""
    return os.fsencode(os.path.join(src.lstrip("/"), *parts))


@pytest.fixture
def src(tmp_path: Path) -> str:
    root = tmp_path / "src"
    (root / "d").mkdir(parents=True)
    (root / "a").write_bytes(b"a" * 1000)
    (root / "b").write_bytes(b"b" * 2000)
    (root / "d" / "c").write_bytes(os.urandom(70000))
    (root / "h1").write_bytes(b"linked")
    os.link(root / "h1", root / "h2")
    with open(os.path.join(os.fsencode(root), ODD), "wb") as f:
        f.write(b"odd")
    return str(root)


def snapshot(repo: HostRepo, name: str, src: str, base: str | None = None) -> manifest.BuildStats:
    """A run's pull and manifest step, as backup.py does them."""
    links = (repo.tree(base),) if base else ()
    result = pull_local(src, repo.tree(name), *links)
    bases = [b for b in [manifest.read(repo.manifest_path(base))] if b] if base else []
    entries, stats = manifest.build(repo.tree(name), name, result.new_files, bases)
    manifest.write(repo.manifest_path(name), {"snapshot": name}, entries)
    return stats


@pytest.fixture
def repo(tmp_path: Path) -> HostRepo:
    host = HostRepo(str(tmp_path / "repo"), "web1")
    host.ensure()
    return host


N1, N2, N3 = "2026-11-23T020000Z", "2026-11-24T020000Z", "2026-11-25T020000Z"


def record(repo: HostRepo, *names: str) -> None:
    for name in names:
        repo.write_record(name, {"state": "complete"})


# --- itemized output -------------------------------------------------------------------------


@pytest.mark.faults
def test_itemized_names_exactly_the_files_stored_anew(src: str, tmp_path: Path) -> None:
    first = pull_local(src, str(tmp_path / "one"))
    assert set(first.new_files) == {rel(src, n) for n in ("a", "b", "d/c", "h1", "h2")} | {
        os.path.join(rel(src), ODD)
    }
    Path(src, "a").write_bytes(b"changed")
    os.chmod(os.path.join(src, "b"), 0o600)  # attributes differ: a local copy ("cf")
    Path(src, "new").write_bytes(b"new")
    second = pull_local(src, str(tmp_path / "two"), str(tmp_path / "one"))
    assert set(second.new_files) == {rel(src, "a"), rel(src, "b"), rel(src, "new")}
    assert second.stats["transferred_size"] == len(b"changed") + len(b"new")
    unchanged = pull_local(src, str(tmp_path / "three"), str(tmp_path / "two"))
    assert set(unchanged.new_files) == set()


@pytest.mark.faults
def test_item_lines_stay_out_of_the_log_and_progress_still_flows(src, tmp_path) -> None:
    logged: list[str] = []
    progress: list[object] = []
    target = str(tmp_path / "t")
    os.makedirs(target)
    result = pull.run_rsync(local_argv(src, target), ENV, progress.append, logged.append, None, 60)
    assert result.exit_code == 0
    assert progress and not any(rsyncout.ITEM_MARKER in line for line in logged)
    assert result.stats["files"] > 5


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("pullsnap-item >f+++++++++ 0 etc/hosts", (">f+++++++++", b"etc/hosts")),
        ("pullsnap-item cf...p..... 0 a b", ("cf...p.....", b"a b")),
        ("pullsnap-item >f+++++++++ 0 new\\#012line\\#134#", (">f+++++++++", b"new\nline\\#")),
        ("pullsnap-item >f+++++++++ 0 caf\\#351", (">f+++++++++", b"caf\xe9")),
        ("pullsnap-item", None),
        ("pullsnap-item >f", None),
        ("Number of files: 3", None),
    ],
)
def test_parse_item(line: str, expected) -> None:
    assert rsyncout.parse_item(line) == expected


@pytest.mark.faults
def test_the_gate_accepts_the_command_line_with_itemized_output(tmp_path: Path) -> None:
    """--out-format stays on our side: the sender's command line is the same."""
    fake = tmp_path / "fake-ssh"
    fake.write_text('#!/bin/sh\nwhile [ "$1" != rsync ]; do shift; done\necho "$*" > "$0.out"\n')
    fake.chmod(0o755)
    spec = pull.PullSpec(RSYNC, str(fake), CONNECT, ("/etc", "/srv/a b"), str(tmp_path / "t"))
    argv = pull.rsync_argv(spec)
    assert f"--out-format={rsyncout.ITEM_MARKER}%i %b %n" in argv
    at = argv.index("-e")
    argv[at + 1] = str(fake)
    subprocess.run(argv, env=ENV, capture_output=True, timeout=30, check=False)
    line = (tmp_path / "fake-ssh.out").read_text().strip()
    without = [w for w in argv if not w.startswith("--out-format")]
    subprocess.run(without, env=ENV, capture_output=True, timeout=30, check=False)
    assert (tmp_path / "fake-ssh.out").read_text().strip() == line
    accepted = parse(line, GatePolicy(roots=("/etc", "/srv")))
    assert accepted[-2:] == ["/etc", "/srv/a b"]


# --- failing paths and a full disk ------------------------------------------------------------


def test_failed_paths_from_rsync_error_lines() -> None:
    lines = [
        'rsync: [sender] send_files failed to open "/etc/shadow": Permission denied (13)',
        'rsync: [sender] opendir "/root/.ssh" failed: Permission denied (13)',
        "rsync error: some files/attrs were not transferred (see previous errors) (code 23)",
        'file has vanished: "/tmp/x"',
    ]
    assert [rsyncout.failed_path(line) for line in lines] == [
        {"path": "/etc/shadow", "error": "send_files failed to open: Permission denied (13)"},
        {"path": "/root/.ssh", "error": "opendir: Permission denied (13)"},
        None,
        None,
    ]


def test_a_full_receiver_is_no_space_not_partial() -> None:
    full = pull.PullResult(
        23, errors=['rsync: [receiver] write failed on "x": No space left on device (28)']
    )
    assert pull.judge(full)[:2] == ("failed", errors.NO_SPACE)
    claimed = pull.PullResult(23, errors=['rsync: [sender] read "x": No space left on device'])
    assert pull.judge(claimed)[:2] == ("partial", errors.PARTIAL)


@pytest.mark.parametrize(
    "line",
    [
        # rsync 3.4 on an ext4 repository, a 6,000-byte user xattr from a tmpfs
        # source: ext4 keeps all of an inode's xattrs in one block (ENOSPC).
        'rsync: [receiver] rsync_xal_set: fsetxattr("/srv/pullsnap/web1/2026-11-25T021700Z'
        '.incomplete/srv/.f.k1m01y","user.big") failed: No space left on device (28)',
        "rsync: [receiver] set_acl: sys_acl_set_file(srv/f, ACL_TYPE_ACCESS): "
        "No space left on device (28)",
    ],
)
def test_an_xattr_too_large_for_the_repository_is_not_a_full_disk(line: str) -> None:
    """Judged a full disk, the run's tree would be removed, the operator told to
    make room, and the host never backed up while the file has that xattr."""
    result = pull.PullResult(23, errors=[line])
    assert pull.judge(result)[:2] == ("partial", errors.PARTIAL)


# --- building manifests -------------------------------------------------------------------------


@pytest.mark.faults
def test_only_new_files_are_hashed_and_the_rest_carried(src: str, repo: HostRepo) -> None:
    first = snapshot(repo, N1, src)
    assert (first.files, first.hashed, first.carried) == (6, 5, 0)  # h1/h2: one inode
    Path(src, "a").write_bytes(b"changed")
    second = snapshot(repo, N2, src, N1)
    assert (second.files, second.hashed, second.carried, second.unlisted) == (6, 1, 5, 0)
    third = snapshot(repo, N3, src, N2)
    assert (third.hashed, third.hashed_bytes, third.carried) == (0, 0, 6)
    entries = manifest.read(repo.manifest_path(N3))
    assert entries is not None
    assert entries[rel(src, "a")].origin == N2 and entries[rel(src, "b")].origin == N1
    assert entries[os.path.join(rel(src), ODD)].size == 3


@pytest.mark.faults
def test_a_new_inode_rsync_did_not_name_is_hashed(src: str, repo: HostRepo) -> None:
    """rsync copies instead of linking at the link-count limit (EMLINK) and
    says nothing: the inode check catches it."""
    snapshot(repo, N1, src)
    result = pull_local(src, repo.tree(N2), repo.tree(N1))
    copied = os.path.join(repo.tree(N2), os.fsdecode(rel(src, "d/c")))
    shutil.copy2(copied, copied + ".tmp")
    os.rename(copied + ".tmp", copied)
    _, stats = manifest.build(
        repo.tree(N2), N2, result.new_files, [manifest.read(repo.manifest_path(N1))]
    )
    assert (stats.hashed, stats.unlisted) == (1, 1)


# --- verify ------------------------------------------------------------------------------------


def flip_byte(path: str) -> None:
    with open(path, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0x01]))


@pytest.mark.faults
def test_verify_names_a_flipped_byte_in_every_snapshot_sharing_it(src, repo) -> None:
    snapshot(repo, N1, src)
    Path(src, "a").write_bytes(b"changed")
    snapshot(repo, N2, src, N1)
    snapshot(repo, N3, src, N2)
    record(repo, N1, N2, N3)
    clean = verify.verify_host(repo, None, 1.0)
    assert clean.mismatches == [] and clean.checked == 18 and len(clean.snapshots) == 3
    flip_byte(os.path.join(repo.tree(N2), os.fsdecode(rel(src, "d/c"))))
    found = verify.verify_host(repo, None, 1.0)
    assert {m.snapshot for m in found.mismatches} == {N1, N2, N3}
    trees = [a for a in repo.attempts() if a.has_tree]
    lines = verify.report(repo, found, trees)
    assert lines == [
        f"mismatch: web1/{N1}/{os.fsdecode(rel(src, 'd/c'))}: content differs from the "
        f"manifest (stored by the {N1} run); the same file is in snapshots {N1}, {N2}, {N3}"
    ]
    # One snapshot alone still names all three.
    only = verify.verify_host(repo, N3, 1.0)
    assert [m.snapshot for m in only.mismatches] == [N3]
    assert verify.sharing(repo, trees, only.mismatches[0]) == [N1, N2, N3]


@pytest.mark.faults
def test_verify_reports_missing_and_extra_files(src, repo) -> None:
    snapshot(repo, N1, src)
    record(repo, N1)
    os.unlink(os.path.join(repo.tree(N1), os.fsdecode(rel(src, "b"))))
    Path(repo.tree(N1), "stray").write_text("x")
    found = verify.verify_host(repo, N1, 1.0)
    assert sorted((m.path, m.why) for m in found.mismatches) == [
        (b"stray", "not in the manifest"),
        (rel(src, "b"), "missing from the tree"),
    ]


@pytest.mark.faults
def test_verify_command_writes_the_status_file(src, repo, tmp_path, capsys) -> None:
    from pullsnap.grabber.cli import main

    snapshot(repo, N1, src)
    record(repo, N1)
    conf = tmp_path / "grabber.toml"
    conf.write_text(f'repository = "{repo.root}"\n')
    assert main(["grabber", "--config", str(conf), "verify", "web1", "--sample", "0.5"]) == 0
    status = json.loads(Path(repo.path, verify.VERIFY_FILE).read_text())
    assert status["result"] == "ok" and status["snapshot"] == "all" and status["sample"] == 0.5
    assert 0 <= status["checked"] <= 6
    flip_byte(os.path.join(repo.tree(N1), os.fsdecode(rel(src, "d/c"))))
    assert main(["grabber", "--config", str(conf), "verify", "web1", N1]) == errors.FAILED
    status = json.loads(Path(repo.path, verify.VERIFY_FILE).read_text())
    assert status["result"] == "mismatch" and status["snapshot"] == N1
    assert status["mismatches"] == [f"{N1}/{os.fsdecode(rel(src, 'd/c'))}"]
    assert "mismatch: web1/" in capsys.readouterr().out


def test_manifest_lines_round_trip_odd_names() -> None:
    entry = manifest.Entry(b"a/" + ODD + b"\xff", "00" * 32, 5, 7, "2026-11-25T020000Z")
    assert manifest.parse_line(entry.line()) == entry
    assert manifest.parse_line('["x", "y"]') is None
    assert dataclasses.asdict(entry)["size"] == 5


def test_a_tree_deeper_than_the_recursion_limit_gets_a_manifest_and_a_verify(repo) -> None:
    """rsync sends trees about 1024 levels deep; the backed-up host picks the depth."""
    deepest = os.fsencode(deep_tree(repo.tree(N1), 1100))
    try:
        entries, stats = manifest.build(repo.tree(N1), N1, set(), [])
        assert [e.path for e in entries] == [deepest] and stats.problems == []
        manifest.write(repo.manifest_path(N1), {"snapshot": N1}, entries)
        record(repo, N1)
        found = verify.verify_host(repo, N1, 1.0)
        assert (found.checked, found.mismatches) == (1, [])
    finally:
        subprocess.run(["rm", "-rf", repo.tree(N1)], check=True)


@pytest.mark.faults
def test_verify_prints_odd_names_escaped_on_one_line(src, repo, tmp_path, capsys) -> None:
    """A name with a newline or bytes that are not UTF-8 is one printable line,
    whatever the terminal's encoding (a lone surrogate would not encode)."""
    from pullsnap.grabber.cli import main

    snapshot(repo, N1, src)
    record(repo, N1)
    conf = tmp_path / "grabber.toml"
    conf.write_text(f'repository = "{repo.root}"\n')
    with open(os.path.join(os.fsencode(repo.tree(N1)), rel(src), ODD), "ab") as f:
        f.write(b"!")
    assert main(["grabber", "--config", str(conf), "verify", "web1", N1]) == errors.FAILED
    out = capsys.readouterr().out
    shown = [line for line in out.splitlines() if line.startswith("mismatch: ")]
    assert len(shown) == 1 and "new\\nline \\\\#134 caf\\xe9" in shown[0], out
    out.encode("ascii")


def test_a_base_read_whole_is_written_back_line_for_line_and_bad_lines_drop_alone(
    tmp_path: Path,
) -> None:
    entries = [manifest.Entry(f"d/f{i}".encode(), f"{i:064x}", i, 100 + i, "2026-11-25T020000Z")
               for i in range(5)]  # fmt: skip
    base = tmp_path / "base.manifest"
    manifest.write(str(base), {"snapshot": "2026-11-25T020000Z"}, entries)
    read = manifest.read(str(base))
    assert read is not None and list(read.values()) == entries
    manifest.write(str(tmp_path / "next.manifest"), {"snapshot": "n"}, list(read.values()))
    body = base.read_text().split("\n", 1)[1]
    assert (tmp_path / "next.manifest").read_text().split("\n", 1)[1] == body
    lines = base.read_text().split("\n")
    lines[2] = '["d/f1", "not closed'  # one torn line: the others still count
    base.write_text("\n".join(lines))
    read = manifest.read(str(base))
    assert read is not None and sorted(read) == [b"d/f0", b"d/f2", b"d/f3", b"d/f4"]


def test_hash_file_digests_every_byte_across_its_read_buffer(tmp_path: Path) -> None:
    sizes = {b"empty": 0, b"one": 1, b"edge": 1 << 18, b"long": (1 << 18) * 2 + 12345}
    for name, size in sizes.items():
        (tmp_path / os.fsdecode(name)).write_bytes(os.urandom(size))
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name, size in sizes.items():
            data = (tmp_path / os.fsdecode(name)).read_bytes()
            digest, got_size, inode = tree.hash_file(fd, name)
            assert digest == hashlib.blake2b(data, digest_size=32).hexdigest()
            assert (got_size, inode) == (size, os.stat(tmp_path / os.fsdecode(name)).st_ino)
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(OSError, match="not a regular file"):
            tree.hash_file(fd, b"fifo")
    finally:
        os.close(fd)


def test_base_manifests_are_read_in_a_thread_in_order_and_unreadable_ones_skipped(
    tmp_path: Path,
) -> None:
    paths = []
    for n in range(2):
        entries = [manifest.Entry(f"s{n}/f{i}".encode(), f"{i:064x}", i, 10 * n + i, f"snap{n}")
                   for i in range(3)]  # fmt: skip
        paths.append(str(tmp_path / f"snap{n}.manifest"))
        manifest.write(paths[-1], {"snapshot": f"snap{n}"}, entries)
    os.mkfifo(tmp_path / "planted.manifest")  # never opened for reading (open_regular)
    reader = basemanifests.BaseReader(
        [paths[1], str(tmp_path / "gone.manifest"), str(tmp_path / "planted.manifest"), paths[0]]
    )
    assert reader.join() is None  # not started: the manifest step reads them itself
    reader.start()
    found = reader.join()
    assert found is not None
    assert [sorted(base) for base in found] == [
        [b"s1/f0", b"s1/f1", b"s1/f2"],
        [b"s0/f0", b"s0/f1", b"s0/f2"],
    ]
