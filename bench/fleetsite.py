"""The fleet bench's machines: one vault, N backed-up hosts, each its own.

    base/
      vault/                 the lab: grabber account, its sshd on the bridge address
      repo/                  the repository (0700, the grabber's)
      hosts/web<i>/          one backed-up host: its account's home, login key,
        src/                 known_hosts, run directory, config and seeded tree
        initiator.toml

Each host's login key is bound to its name *and* its address
(`grabber authorize --from`), so sshd refuses it from anywhere else.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.fleetnet import Fleetnet
from lab import Lab, Sshd, chown_tree, make_user, remove_user, write


@dataclass(frozen=True)
class TreeSpec:
    files: int = 2000
    mean_size: int = 4096  # bytes; sizes are uniform in 0 .. 2 * mean_size


@dataclass
class Host:
    index: int
    name: str
    user: str
    address: str
    root: str

    @property
    def src(self) -> str:
        return os.path.join(self.root, "src")

    @property
    def config(self) -> str:
        return os.path.join(self.root, "initiator.toml")

    @property
    def key(self) -> str:
        return os.path.join(self.root, "id_ed25519")


def seed_tree(root: str, name: str, spec: TreeSpec, seed: int) -> int:
    """A deterministic tree with the host's name in etc/hostname; its bytes."""
    rng = random.Random(seed)
    total = 0
    os.makedirs(os.path.join(root, "etc"))
    write(os.path.join(root, "etc", "hostname"), f"{name}\n")
    for i in range(spec.files):
        directory = os.path.join(root, "data", f"d{i % 50:02d}")
        os.makedirs(directory, exist_ok=True)
        size = rng.randint(0, 2 * spec.mean_size)
        with open(os.path.join(directory, f"f{i:06d}.bin"), "wb") as f:
            f.write(rng.randbytes(size))
        total += size
    return total


def change_files(root: str, fraction: float, seed: int) -> int:
    """Rewrite `fraction` of a seeded tree's files (a night's change); how many."""
    rng = random.Random(seed)
    walked = os.walk(os.path.join(root, "data"))
    paths = sorted(os.path.join(d, name) for d, _, names in walked for name in names)
    chosen = rng.sample(paths, round(len(paths) * fraction))
    for path in chosen:
        with open(path, "ab") as f:
            f.write(rng.randbytes(64))
    return len(chosen)


@dataclass
class Fleet:
    base: str
    hosts_wanted: int
    trees: Mapping[int, TreeSpec] = field(default_factory=dict)  # per host; else default
    default_tree: TreeSpec = field(default_factory=TreeSpec)
    net: Fleetnet | None = None
    lab: Lab | None = None
    hosts: list[Host] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    source_bytes: dict[str, int] = field(default_factory=dict)

    @property
    def repo(self) -> str:
        return os.path.join(self.base, "repo")

    def setup(self) -> Fleet:
        shutil.rmtree(self.base, ignore_errors=True)
        os.makedirs(self.base, mode=0o755)
        self.lab = Lab(base=os.path.join(self.base, "vault"))
        tag = self.lab.tag
        self.net = Fleetnet(tag).open(self.hosts_wanted)
        # The lab's sshd, on the bridge address only.
        where = self.net.vault_address
        self.lab.sshd = Sshd(os.path.join(self.lab.base, "sshd"), [], address=where)
        _setup_vault(self.lab)
        grabber = self.lab.grabber_pw()
        os.makedirs(self.repo, mode=0o700)
        os.chown(self.repo, grabber.pw_uid, grabber.pw_gid)
        for i in range(self.hosts_wanted):
            self.hosts.append(self._add_host(i, tag))
        self.bind_keys()
        return self

    def _add_host(self, index: int, tag: str) -> Host:
        assert self.net is not None and self.lab is not None and self.lab.sshd is not None
        name = f"web{index}"
        root = os.path.join(self.base, "hosts", name)
        os.makedirs(os.path.join(root, "home"), mode=0o755)
        user = f"pf{index}-{tag}"
        pw = make_user(user, os.path.join(root, "home"), "/bin/sh")
        self.users.append(user)
        host = Host(index, name, user, self.net.address(index), root)
        spec = self.trees.get(index, self.default_tree)
        self.source_bytes[name] = seed_tree(host.src, name, spec, seed=1000 + index)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pullsnap@{name}",
                        "-f", host.key], check=True, capture_output=True)  # fmt: skip
        run_dir = os.path.join(root, "run")
        os.makedirs(run_dir, mode=0o700)
        known_hosts = write(os.path.join(root, "known_hosts"), self.lab.sshd.known_hosts_line())
        for path in (os.path.join(root, "home"), run_dir, host.key, host.key + ".pub", known_hosts):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        self.lab.write_initiator_config(
            [host.src], name=host.config, user=user, listen_address=host.address,
            runtime_dir=run_dir, keygen_timeout=60, connect_back_timeout=120,
            destination={"name": "vault", "host": self.net.vault_address,
                         "identity_file": host.key, "known_hosts": known_hosts,
                         "allow_from": [self.net.vault_address]},
        )  # fmt: skip
        return host

    def bind_keys(self) -> None:
        """authorized_keys: each host's key bound to its name and its address."""
        from pullsnap.grabber.session.binding import authorized_keys_line

        assert self.lab is not None
        lines = []
        for host in self.hosts:
            with open(host.key + ".pub", encoding="ascii") as f:
                public = f.read().strip()
            lines.append(authorized_keys_line(host.name, public, self.grabber_config,
                                              sources=[host.address]))  # fmt: skip
        self.lab.write_raw_authorized_keys("".join(lines))

    @property
    def grabber_config(self) -> str:
        assert self.lab is not None
        return self.lab.path("grabber.toml")

    def configure_vault(self, policy: Mapping[str, Any] | None = None, **values: Any) -> str:
        assert self.lab is not None
        rules = {"min_interval": 0, "keep_within": "30d", "suspect_drop": 0, **(policy or {})}
        return self.lab.write_grabber_config(name=self.grabber_config, policy=rules,
                                             repository=self.repo, **values)  # fmt: skip

    def initiator_argv(self, host: Host, ns_of: Host | None = None) -> list[str]:
        """Host's initiator, run in the network namespace of `ns_of` (itself by default)."""
        assert self.net is not None and self.lab is not None
        program = os.path.join(self.lab.venv_bin, "initiator")
        return [*self.net.run_in((ns_of or host).index), program,
                "-c", host.config, "--now", "-v", "--format", "text"]  # fmt: skip

    def empty_repo(self) -> None:
        """A first night again: the repository keeps only its own directory."""
        for name in os.listdir(self.repo):
            path = os.path.join(self.repo, name)
            if os.path.isdir(path) and not os.path.islink(path):
                subprocess.run(["rm", "-rf", "--one-file-system", path], check=True)
            else:
                os.unlink(path)

    def close(self) -> None:
        if self.lab is not None:
            self.lab.close()
        for user in self.users:
            subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True, check=False)
            remove_user(user)
        self.users.clear()
        if self.net is not None:
            self.net.close()


def _setup_vault(lab: Lab) -> None:
    """The lab's grabber account and sshd, without its loopback initiator."""
    os.makedirs(lab.base, mode=0o755)
    lab.grabber_user = f"psg-{lab.tag}"
    lab.grabber_shell = os.path.join(lab.venv_bin, "grabber")
    os.makedirs(lab.path("home-g", ".ssh"), mode=0o755)
    grabber = make_user(lab.grabber_user, lab.path("home-g"), lab.grabber_shell)
    lab.users.append(lab.grabber_user)
    chown_tree(lab.path("home-g"), grabber.pw_uid, grabber.pw_gid)
    os.chmod(lab.path("home-g", ".ssh"), 0o700)
    assert lab.sshd is not None
    lab.sshd.allow_users = [lab.grabber_user]
    lab.sshd.start()
