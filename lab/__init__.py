"""Both roles on one machine over loopback: the demo's and the tests' setup.

    base/                       0755, everything the lab makes
      sshd/                     the backup host's sshd (root, 127.0.0.1:PORT)
      home-g/.ssh/authorized_keys   the grabber user's bound keys
      home-i/                   the initiator user's home
      initiator/                login key + known_hosts of the initiator user
      repo/                     the repository, 0700, grabber user's
      initiator.toml grabber.toml

Needs root (it creates two system users and runs sshd).  `Lab.close()`
stops sshd and removes the users; `remove_base` also removes the files.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SSHD = "/usr/sbin/sshd"


def _run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), check=True, capture_output=True, **kwargs)


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def make_user(name: str, home: str, shell: str) -> pwd.struct_passwd:
    """A system user with its own group, no password ("*": locked for passwords
    but not for keys; "!" would make sshd refuse the account)."""
    _run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", home,
          "--shell", shell, "--password", "*", name])  # fmt: skip
    return pwd.getpwnam(name)


def remove_user(name: str) -> None:
    # userdel refuses while a process of the user lives; killed ones take a moment.
    for _ in range(50):
        done = subprocess.run(["userdel", name], capture_output=True, check=False)
        if done.returncode != 8:  # 8: user currently logged in (useradd(8) EXIT VALUES)
            break
        time.sleep(0.1)
    subprocess.run(["groupdel", name], capture_output=True, check=False)


def chown_tree(path: str, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for entry in dirs + files:
            os.lchown(os.path.join(root, entry), uid, gid)


def write(path: str, text: str, mode: int = 0o644, owner: tuple[int, int] | None = None) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, *owner)
    return path


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def toml_table(values: Mapping[str, Any]) -> str:
    return "".join(f"{key} = {toml_value(value)}\n" for key, value in values.items())


@dataclass
class Sshd:
    """The backup host's sshd: root, loopback only, our own config."""

    directory: str
    allow_users: Sequence[str]
    port: int = 0
    process: subprocess.Popen | None = None
    host_public: str = ""
    # The benchmark's stand-in for a backed-up host's own sshd: root may log
    # in with a key from a file the bench owns (never root's own ~/.ssh).
    permit_root: bool = False
    authorized_keys: str = ".ssh/authorized_keys"
    address: str = "127.0.0.1"  # the fleet bench listens on its bridge's address

    def start(self) -> None:
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
        key = os.path.join(self.directory, "host_key")
        if not os.path.exists(key):
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
        with open(key + ".pub", encoding="ascii") as f:
            self.host_public = " ".join(f.read().split()[:2])
        self.port = self.port or free_port(self.address)
        config = write(os.path.join(self.directory, "sshd_config"), "\n".join([
            f"ListenAddress {self.address}:{self.port}",
            f"HostKey {key}",
            "PidFile none",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            f"PermitRootLogin {'prohibit-password' if self.permit_root else 'no'}",
            f"AllowUsers {' '.join(self.allow_users)}",
            "StrictModes yes",
            "LogLevel VERBOSE",
            "MaxStartups 64:30:128",
            "",
        ]))  # fmt: skip
        log = open(os.path.join(self.directory, "sshd.log"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", config], stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited; see {self.directory}/sshd.log")
            with socket.socket() as s:
                if s.connect_ex((self.address, self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def known_hosts_line(self) -> str:
        return f"[{self.address}]:{self.port} {self.host_public}\n"


@dataclass
class Lab:
    base: str
    venv_bin: str = field(default_factory=lambda: os.path.dirname(sys.executable))
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    grabber_shell: str = ""
    initiator_user: str = ""
    grabber_user: str = ""
    plain_user: str = ""  # a /bin/sh account on the backup sshd, for stand-ins
    sshd: Sshd | None = None
    users: list[str] = field(default_factory=list)

    def path(self, *parts: str) -> str:
        return os.path.join(self.base, *parts)

    # setup

    def setup(self, grabber_shell: str | None = None) -> Lab:
        """Start clean: whatever an earlier lab left in `base` goes."""
        shutil.rmtree(self.base, ignore_errors=True)
        os.makedirs(self.base)
        os.chmod(self.base, 0o755)
        self.initiator_user = self.initiator_user or f"psi-{self.tag}"
        self.grabber_user = self.grabber_user or f"psg-{self.tag}"
        self.plain_user = self.plain_user or f"psx-{self.tag}"
        self.grabber_shell = grabber_shell or os.path.join(self.venv_bin, "grabber")
        for d in ("home-i", "home-g", "home-g/.ssh", "home-x", "home-x/.ssh", "initiator"):
            os.makedirs(self.path(d), mode=0o755, exist_ok=True)
        ini = make_user(self.initiator_user, self.path("home-i"), "/bin/sh")
        self.users.append(self.initiator_user)
        grb = make_user(self.grabber_user, self.path("home-g"), self.grabber_shell)
        self.users.append(self.grabber_user)
        make_user(self.plain_user, self.path("home-x"), "/bin/sh")
        self.users.append(self.plain_user)
        os.chown(self.path("home-i"), ini.pw_uid, ini.pw_gid)
        os.chmod(self.path("initiator"), 0o700)
        os.chown(self.path("initiator"), ini.pw_uid, ini.pw_gid)
        key = self.path("initiator", "id_ed25519")
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pullsnap-login", "-f", key])
        os.chown(key, ini.pw_uid, ini.pw_gid)
        os.chown(key + ".pub", ini.pw_uid, ini.pw_gid)
        os.makedirs(self.path("repo"), mode=0o700, exist_ok=True)
        os.chown(self.path("repo"), grb.pw_uid, grb.pw_gid)
        self.sshd = Sshd(self.path("sshd"), [self.grabber_user, self.plain_user])
        self.sshd.start()
        write(self.path("initiator", "known_hosts"), self.sshd.known_hosts_line(), 0o644,
              (ini.pw_uid, ini.pw_gid))  # fmt: skip
        return self

    def use_launcher(self, enabled: bool = True) -> str:
        """Make the grabber's login shell the capability launcher (--super) or not."""
        shell = os.path.join(self.venv_bin, "grabber")
        if enabled:
            from pullsnap import caps
            from pullsnap.grabber.setup.launcher import install_launcher

            shell = self.path("libexec", "grabber-launcher")
            if not os.path.exists(shell):
                os.makedirs(self.path("libexec"), mode=0o755, exist_ok=True)
                install_launcher(shell, self.grabber_user, os.path.join(self.venv_bin, "python3"),
                                 caps.GRABBER_LAUNCHER_CAPS)  # fmt: skip
        _run(["usermod", "--shell", shell, self.grabber_user])
        self.grabber_shell = shell
        return shell

    @contextlib.contextmanager
    def nosuid_mount(self, path: str) -> Iterator[None]:
        """Bind-mount `path` onto itself with nosuid,nodev, as a repository for
        --super should be (README), and undo it afterwards."""
        _run(["mount", "--bind", path, path])
        try:
            _run(["mount", "-o", "remount,bind,nosuid,nodev", path])
            yield
        finally:
            subprocess.run(["umount", path], capture_output=True, check=False)

    def initiator_pw(self) -> pwd.struct_passwd:
        return pwd.getpwnam(self.initiator_user)

    def grabber_pw(self) -> pwd.struct_passwd:
        return pwd.getpwnam(self.grabber_user)

    def login_public_key(self) -> str:
        with open(self.path("initiator", "id_ed25519.pub"), encoding="ascii") as f:
            return f.read().strip()

    # configuration

    def write_grabber_config(
        self, name: str = "grabber.toml", policy: Mapping[str, Any] | None = None, **values: Any
    ) -> str:
        """The lab runs backups back to back: no minimum interval unless asked."""
        settings = {"repository": self.path("repo"), "min_free_abs": "1M", **values}
        rules = {"min_interval": 0, **(policy or {})}
        return write(self.path(name), toml_table(settings) + "\n[policy]\n" + toml_table(rules))

    def authorize(self, lines: Iterable[tuple[str, str]]) -> None:
        """Replace authorized_keys with bound lines: (host, grabber config path)."""
        from pullsnap.grabber.session.binding import authorized_keys_line

        text = "".join(authorized_keys_line(h, self.login_public_key(), c) for h, c in lines)
        pw = self.grabber_pw()
        write(self.path("home-g", ".ssh", "authorized_keys"), text, 0o600, (pw.pw_uid, pw.pw_gid))

    def write_raw_authorized_keys(self, text: str, user: str | None = None) -> None:
        pw = pwd.getpwnam(user or self.grabber_user)
        home = "home-x" if pw.pw_name == self.plain_user else "home-g"
        write(self.path(home, ".ssh", "authorized_keys"), text, 0o600, (pw.pw_uid, pw.pw_gid))

    def ssh_to_backup_host(
        self, stdin: bytes, command: str = "pullsnap", user: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        """What the initiator's ssh call does, with any stdin: for hostile handoffs."""
        assert self.sshd is not None
        argv = ["ssh", "-F", "/dev/null", "-T", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-i", self.path("initiator", "id_ed25519"),
                "-o", f"UserKnownHostsFile={self.path('initiator', 'known_hosts')}",
                "-o", "StrictHostKeyChecking=yes", "-p", str(self.sshd.port),
                "-l", user or self.grabber_user, "127.0.0.1", command]  # fmt: skip
        return subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout, check=False)

    def write_initiator_config(
        self,
        sources: Sequence[str],
        excludes: Sequence[str] = (),
        name: str = "initiator.toml",
        destination: Mapping[str, Any] | None = None,
        **values: Any,
    ) -> str:
        assert self.sshd is not None
        top = {"user": self.initiator_user, "listen_address": "127.0.0.1",
               "keygen_timeout": 20, "connect_back_timeout": 30, **values}  # fmt: skip
        dest = {
            "name": "lab",
            "host": "127.0.0.1",
            "port": self.sshd.port,
            "user": self.grabber_user,
            "identity_file": self.path("initiator", "id_ed25519"),
            "known_hosts": self.path("initiator", "known_hosts"),
            "allow_from": ["127.0.0.1"],
            "sources": list(sources),
            "excludes": list(excludes),
            **(destination or {}),
        }
        return write(self.path(name), toml_table(top) + "\n[[destination]]\n" + toml_table(dest))

    def initiator(self, *args: str, timeout: float = 300, env: Mapping[str, str] | None = None,
                  prefix: Sequence[str] = ()) -> subprocess.CompletedProcess:  # fmt: skip
        argv = [*prefix, os.path.join(self.venv_bin, "initiator"), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=dict(env) if env is not None else None, check=False)  # fmt: skip

    def initiator_background(self, *args: str) -> subprocess.Popen:
        argv = [os.path.join(self.venv_bin, "initiator"), *args]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def grabber(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        argv = [os.path.join(self.venv_bin, "grabber"), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)

    # teardown

    def close(self) -> None:
        if self.sshd is not None:
            self.sshd.stop()
        for name in self.users:
            # Whatever still runs as a lab user was started by the lab's tests
            # (a stand-in's sleep, a session sshd has not reaped yet).
            subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True, check=False)
            remove_user(name)
        self.users.clear()

    def remove_base(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def make_sample_tree(root: str, files: int = 1500, seed: int = 2010) -> None:
    """A small, deterministic tree with the metadata a real host has: nested
    directories, text and binary files, a root-only file, another owner, an
    ACL, a user xattr, a hardlink, symlinks, a FIFO and an odd file name."""
    import random

    rng = random.Random(seed)
    os.makedirs(root)
    for i in range(files):
        directory = os.path.join(root, "data", f"d{i % 37:02d}", f"e{i % 5}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"file{i:05d}.txt"), "wb") as f:
            f.write(rng.randbytes(rng.randint(0, 8192)))
    os.makedirs(os.path.join(root, "etc"))
    write(os.path.join(root, "etc", "shadow"), "root:*:19000:0:99999:7:::\n", 0o600)
    write(os.path.join(root, "etc", "motd"), "welcome\n")
    with open(os.path.join(root, "disk.img"), "wb") as f:
        f.write(rng.randbytes(4 * 1024 * 1024))
    owned = write(os.path.join(root, "alice.txt"), "owned by uid 4242\n", 0o640)
    os.chown(owned, 4242, 4242)
    acl = write(os.path.join(root, "shared.txt"), "ACL: uid 4242 may write\n")
    subprocess.run(["setfacl", "-m", "u:4242:rw", acl], check=False)
    os.setxattr(owned, "user.origin", b"pullsnap demo")
    os.link(os.path.join(root, "etc", "motd"), os.path.join(root, "motd.hardlink"))
    os.symlink("etc/motd", os.path.join(root, "motd.symlink"))
    os.mkfifo(os.path.join(root, "a.fifo"))
    write(os.path.join(root, "name with spaces; and $ymbols.txt"), "odd name\n")


@contextlib.contextmanager
def btrfs_mount(image: str, mountpoint: str, size: str = "3G") -> Iterator[str]:
    """A btrfs filesystem in a sparse file, loop-mounted at `mountpoint`
    (root only: mount(8) -o loop), unmounted and removed afterwards."""
    _run(["truncate", "-s", size, image])
    try:
        _run(["mkfs.btrfs", "-q", "-f", image])
        os.makedirs(mountpoint, exist_ok=True)
        _run(["mount", "-o", "loop,user_subvol_rm_allowed", image, mountpoint])
        try:
            os.chmod(mountpoint, 0o755)
            yield mountpoint
        finally:
            # A test's process still in it (a killed run's children) must not
            # keep the loop device: lazily, then the image goes.
            subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(image)


def remove_btrfs_tree(path: str) -> None:
    """Remove a directory holding subvolumes (read-only ones too), as root."""
    if not os.path.lexists(path):
        return
    for dirpath, dirs, _files in os.walk(path, topdown=False):
        for d in dirs:
            sub = os.path.join(dirpath, d)
            st = os.lstat(sub)
            if stat.S_ISDIR(st.st_mode) and st.st_ino == 256:  # a subvolume's top
                subprocess.run(["btrfs", "property", "set", "-ts", sub, "ro", "false"],
                               capture_output=True, check=False)  # fmt: skip
                subprocess.run(["btrfs", "subvolume", "delete", sub], capture_output=True,
                               check=False)  # fmt: skip
    shutil.rmtree(path, ignore_errors=True)
