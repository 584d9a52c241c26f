"""Fixtures: the lab (users, a loopback sshd for the backup host) and per-test sites."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from lab import Lab, btrfs_mount, chown_tree, remove_btrfs_tree


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root (runs in CI as root)")
    # Not under pytest's tmp dir: the lab's users must be able to reach it.
    base = tempfile.mkdtemp(prefix="pullsnap-lab-")
    os.chmod(base, 0o755)
    lab = Lab(base=os.path.join(base, "lab"))
    try:
        lab.setup()
        yield lab
    finally:
        lab.close()
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Site:
    """One test's source tree, repository and configs inside the lab."""

    lab: Lab
    root: str
    src: str
    repo: str
    grabber_config: str
    initiator_config: str = ""

    @property
    def runtime(self) -> str:
        """The initiator's runtime base for this test: empty again after each run."""
        return os.path.join(self.root, "run")

    def configure(self, sources: list[str] | None = None, excludes: tuple[str, ...] = (),
                  destination: dict | None = None, **values) -> str:  # fmt: skip
        values.setdefault("runtime_dir", self.runtime)
        self.initiator_config = self.lab.write_initiator_config(
            sources or [self.src], excludes, name=os.path.join(self.root, "initiator.toml"),
            destination=destination, **values,
        )  # fmt: skip
        return self.initiator_config

    def regrab(self, policy: dict | None = None, **values) -> str:
        self.grabber_config = self.lab.write_grabber_config(
            name=os.path.join(self.root, "grabber.toml"), repository=self.repo, policy=policy,
            **values,
        )  # fmt: skip
        return self.grabber_config

    def run(self, *args: str, **kwargs):
        if not self.initiator_config:
            self.configure()
        # Human verdict lines, as on a terminal (elsewhere: key=value lines).
        return self.lab.initiator(
            "-c", self.initiator_config, "--now", "--format", "text", *args, **kwargs
        )

    @contextlib.contextmanager
    def super_mode(self, nosuid: bool = True) -> Iterator[Site]:
        """The grabber through its capability launcher (rsync --super), with the
        repository bind-mounted nosuid,nodev as README asks (unless `nosuid`
        is False, to see what happens on a plain mount)."""
        self.lab.use_launcher(True)
        try:
            with self.lab.nosuid_mount(self.repo) if nosuid else contextlib.nullcontext():
                yield self
        finally:
            self.lab.use_launcher(False)

    def host_dir(self, host: str = "web1") -> str:
        return os.path.join(self.repo, host)

    def repo_state(self) -> list[tuple[str, int, int]]:
        """Every path in the repository with its size and mtime: to show nothing changed.

        The host's `.lock` is left out: every run that gets as far as the lock
        writes its pid there, refused or not; it holds no snapshot data.  So
        are the session places (`.sessions/`), which every login takes, and
        the pull slots and their queue (`.pull-slots/`), which every pull
        and probe takes."""
        found = []
        for dirpath, dirs, files in os.walk(self.repo):
            if dirpath == self.repo:
                dirs[:] = [d for d in dirs if d not in (".sessions", ".pull-slots")]
            for name in sorted(dirs + files):
                if name == ".lock":
                    continue
                st = os.lstat(os.path.join(dirpath, name))
                found.append((os.path.join(dirpath, name), st.st_size, st.st_mtime_ns))
        return sorted(found)

    def snapshots(self, host: str = "web1") -> list[str]:
        from pullsnap.grabber.store.repository import HostRepo

        return [a.name for a in HostRepo(self.repo, host).good()]

    def in_snapshot(self, name: str, host: str = "web1") -> str:
        """The source tree's copy inside a snapshot (-R keeps the full path)."""
        return os.path.join(self.repo, host, name) + self.src


@pytest.fixture
def super_site(site: Site) -> Iterator[Site]:
    """`site` with the grabber in --super mode (Site.super_mode)."""
    with site.super_mode() as s:
        yield s


@pytest.fixture(scope="session")
def btrfs() -> Iterator[str]:
    """A loop-mounted btrfs filesystem for the whole session (3 GiB, sparse,
    mounted user_subvol_rm_allowed), reachable by the lab's users; unmounted
    and removed at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root (runs in CI as root)")
    base = tempfile.mkdtemp(prefix="pullsnap-btrfs-")
    os.chmod(base, 0o755)
    try:
        with btrfs_mount(os.path.join(base, "btrfs.img"), os.path.join(base, "mnt")) as point:
            yield point
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def btrfs_dir(btrfs: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh directory of this test's own on the session's btrfs (root's,
    0755), removed with every subvolume in it afterwards."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:60]
    path = os.path.join(btrfs, f"unit-{name}")
    remove_btrfs_tree(path)
    os.makedirs(path, mode=0o755)
    yield path
    remove_btrfs_tree(path)


@pytest.fixture
def site(lab: Lab, request: pytest.FixtureRequest) -> Iterator[Site]:
    yield from _site(lab, request, "")


@pytest.fixture
def btrfs_site(lab: Lab, btrfs: str, request: pytest.FixtureRequest) -> Iterator[Site]:
    """`site` with its repository on btrfs (the btrfs store)."""
    yield from _site(lab, request, btrfs)


def _site(lab: Lab, request: pytest.FixtureRequest, repo_parent: str) -> Iterator[Site]:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:60]
    root = lab.path("t", name)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    for d in (lab.path("t"), root):
        os.chmod(d, 0o755)
    src = os.path.join(root, "src")
    repo = os.path.join(repo_parent or root, "repo" if not repo_parent else f"repo-{name}")
    if repo_parent:
        remove_btrfs_tree(repo)
    os.makedirs(repo, mode=0o700)
    g = lab.grabber_pw()
    chown_tree(repo, g.pw_uid, g.pw_gid)
    os.makedirs(os.path.join(root, "run"), mode=0o700)
    i = lab.initiator_pw()
    os.chown(os.path.join(root, "run"), i.pw_uid, i.pw_gid)
    site = Site(lab, root, src, repo, "")
    site.regrab()
    lab.authorize([("web1", site.grabber_config)])
    yield site
    shutil.rmtree(root, ignore_errors=True)
    if repo_parent:
        remove_btrfs_tree(repo)


def read_terminal(primary: int) -> bytes:
    """Everything written to a pty's other end until its last writer is
    gone (Linux reports that as EIO)."""
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    return seen
