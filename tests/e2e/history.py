"""A repository with a past, made by real runs through the lab.

    web1  rich tree (tests/trees.py)        run 1
          edits (CHANGES below)             run 2
          /etc/hosts again                  run 3
          a handoff with a wrong host key   failed attempt
          most files gone                   suspect snapshot (kept, not good)
    web2  a small tree, its own login key   run 1

Built once per test module (a few seconds) and only read afterwards: the
monitoring and restore-tool tests look at the same history.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

from lab import Lab, chown_tree
from pullsnap import errors, handoff
from pullsnap.grabber.session.binding import authorized_keys_line
from tests.btrfsview import btrfs_du
from tests.labfixtures import Site, remove_btrfs_tree
from tests.trees import OTHER_GID, OTHER_UID, make_rich_tree

# What run 2 sees changed, path (inside the source) -> the reasons `grabber diff` gives.
CHANGES = {
    "etc/hosts": {"size", "mtime"},
    "home/alice/notes.txt": {"owner"},
    "private/key": {"mode"},
    "xattr.txt": {"xattrs"},
}
ADDED = ("added.txt", "grown.bin")
REMOVED = ("etc/conf.d/a.conf",)
GROWN = 2 * 1024 * 1024  # bytes of grown.bin, new in run 2


@dataclass
class History:
    lab: Lab
    root: str
    repo: str
    web1: Site
    web2: Site
    # snapshot names in order; the hosts file's content at each run of web1
    runs: list[str] = field(default_factory=list)
    hosts_content: dict[str, bytes] = field(default_factory=dict)
    hosts_stat: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    suspect: str = ""
    failed: str = ""
    store: str = ""  # what the runs made: "hardlink" trees or "btrfs" subvolumes

    def host_dir(self, host: str) -> str:
        return os.path.join(self.repo, host)

    def grabber(self, *args: str):
        return self.lab.grabber("--config", self.web1.grabber_config, *args)


def _new_key(lab: Lab, directory: str) -> str:
    os.makedirs(directory, mode=0o700)
    pw = lab.initiator_pw()
    os.chown(directory, pw.pw_uid, pw.pw_gid)
    key = os.path.join(directory, "id_ed25519")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    for path in (key, key + ".pub"):
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return key


def _side(lab: Lab, root: str, repo: str, name: str) -> Site:
    """One backed-up host's half: its own directory, source and run dir."""
    side = os.path.join(root, name)
    os.makedirs(os.path.join(side, "run"), mode=0o700)
    os.chmod(side, 0o755)
    pw = lab.initiator_pw()
    os.chown(os.path.join(side, "run"), pw.pw_uid, pw.pw_gid)
    return Site(lab, side, os.path.join(side, "src"), repo, "")


def _newest(repo: str, host: str) -> str:
    from pullsnap.grabber.store.repository import HostRepo

    return HostRepo(repo, host).attempts()[-1].name


def _append(path: str, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def _attributes(path: str) -> tuple[int, int, int, int]:
    st = os.lstat(path)
    return st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def wrong_host_key_attempt(lab: Lab, root: str, paths: tuple[str, ...]):
    """A handoff (over the lab's real sshd, bound to web1) naming a host key
    the connect-back peer does not have: the grabber's pull fails, refused."""
    keys = os.path.join(root, "wrong-keys")
    private = _new_key(lab, keys)
    with open(private, encoding="ascii") as f:
        client_key = f.read()
    with open(_new_key(lab, os.path.join(keys, "other")) + ".pub", encoding="ascii") as f:
        wrong_host_key = " ".join(f.read().split()[:2])
    shutil.rmtree(keys)
    assert lab.sshd is not None
    message = handoff.encode(
        handoff.Handoff(client_key=client_key, host_key=wrong_host_key, port=lab.sshd.port,
                        user=lab.plain_user, paths=paths)
    )  # fmt: skip
    return lab.ssh_to_backup_host(message)


def build(lab: Lab, name: str, repo_parent: str = "") -> History:
    """`repo_parent`: where the repository goes (a btrfs mount: the btrfs
    store), else beside the sources."""
    root = lab.path("t", name)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    for d in (lab.path("t"), root):
        os.chmod(d, 0o755)
    repo = os.path.join(repo_parent, f"repo-{name}") if repo_parent else os.path.join(root, "repo")
    remove_btrfs_tree(repo)
    os.makedirs(repo, mode=0o700)
    g = lab.grabber_pw()
    chown_tree(repo, g.pw_uid, g.pw_gid)
    web1, web2 = _side(lab, root, repo, "web1"), _side(lab, root, repo, "web2")
    config = web1.regrab()
    web2.grabber_config = config
    key2 = _new_key(lab, os.path.join(root, "key2"))
    with open(key2 + ".pub", encoding="ascii") as f:
        public2 = f.read()
    lab.write_raw_authorized_keys(
        authorized_keys_line("web1", lab.login_public_key(), config)
        + authorized_keys_line("web2", public2, config)
    )
    web1.configure()
    web2.configure(destination={"identity_file": key2})
    h = History(lab, root, repo, web1, web2)

    def run(site: Site, host: str, expect: int = errors.OK) -> str:
        done = site.run()
        assert done.returncode == expect, done.stdout + done.stderr
        return _newest(repo, host)

    hosts_file = os.path.join(web1.src, "etc", "hosts")
    make_rich_tree(web1.src)
    h.runs.append(run(web1, "web1"))
    h.hosts_content[h.runs[-1]] = _read(hosts_file)
    h.hosts_stat[h.runs[-1]] = _attributes(hosts_file)
    # A subvolume's top directory is inode 256 (btrfs); a plain tree's is not.
    top = os.lstat(os.path.join(repo, "web1", h.runs[-1])).st_ino
    h.store = "btrfs" if top == 256 else "hardlink"

    s = web1.src
    _append(hosts_file, b"10.0.0.2 two\n")
    os.lchown(os.path.join(s, "home", "alice", "notes.txt"), OTHER_UID + 1, OTHER_GID)
    os.chmod(os.path.join(s, "private", "key"), 0o600)
    os.setxattr(os.path.join(s, "xattr.txt"), "user.pullsnap.test", b"changed")
    with open(os.path.join(s, "added.txt"), "wb") as f:
        f.write(b"a" * 5000)
    with open(os.path.join(s, "grown.bin"), "wb") as f:
        f.write(os.urandom(GROWN))
    for rel in REMOVED:
        os.unlink(os.path.join(s, rel))
    h.runs.append(run(web1, "web1"))
    h.hosts_content[h.runs[-1]] = _read(hosts_file)
    h.hosts_stat[h.runs[-1]] = _attributes(hosts_file)

    _append(hosts_file, b"10.0.0.3 three\n")
    h.runs.append(run(web1, "web1"))
    h.hosts_content[h.runs[-1]] = _read(hosts_file)
    h.hosts_stat[h.runs[-1]] = _attributes(hosts_file)

    # A peer whose host key is not the one in the handoff: a failed attempt.
    done = wrong_host_key_attempt(lab, root, (s,))
    assert done.returncode == errors.REFUSED, done.stderr
    h.failed = _newest(repo, "web1")

    # Most of the tree gone: kept, but suspect.
    for entry in os.listdir(s):
        if entry not in ("etc",):
            path = os.path.join(s, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    h.suspect = run(web1, "web1", expect=errors.SUSPECT)

    os.makedirs(os.path.join(web2.src, "etc"))
    with open(os.path.join(web2.src, "etc", "motd"), "w") as f:
        f.write("web2\n")
    run(web2, "web2")
    return h


def btrfs_trees_once(h: History, host: str) -> int:
    """The extents of the host's trees, each once: the host's directory's
    (exclusive + set shared) less those of the files beside the trees
    (records, manifests: they share nothing)."""
    path = h.host_dir(host)
    beside = [os.path.join(path, e) for e in os.listdir(path)
              if not os.path.isdir(os.path.join(path, e))]  # fmt: skip
    figures = {p: own + shared for p, (_, own, shared) in btrfs_du([path, *beside]).items()}
    return figures[path] - sum(figures[b] for b in beside)


def remove(h: History) -> None:
    shutil.rmtree(h.root, ignore_errors=True)
    remove_btrfs_tree(h.repo)
