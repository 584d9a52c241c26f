"""Where the contenders run: pullsnap's lab and a backed-up host's own sshd.

    <work>/lab/         pullsnap's two roles (lab/): users, the backup
                        host's sshd, the capability launcher (--super)
    <work>/hostsshd/    a root sshd on 127.0.0.1, key login only: what plain
                        rsync over ssh and rsnapshot-ssh pull through
    <work>/src/         the dataset
    <work>/repos/       one repository per contender and repetition
    <work>/trash/       old repositories and restores, deleted at the end

Both sshds join the CPU meter's cgroup, so the sessions they fork are billed
to the step that caused them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import dataset
from bench.measure import CpuMeter
from lab import Lab, Sshd, remove_btrfs_tree, write
from pullsnap.errors import PullsnapError


def ssh_options(key: str, known_hosts: str, port: int) -> list[str]:
    """ssh as an operator would configure it for a backup pull: key, pinned host key."""
    return ["-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-p", str(port)]  # fmt: skip


@dataclass
class Stage:
    work: str
    meter: CpuMeter
    lab: Lab | None = None
    host_sshd: Sshd | None = None
    _trash_count: int = 0
    notes: list[str] = field(default_factory=list)
    btrfs_mount: str = ""

    def path(self, *parts: str) -> str:
        return os.path.join(self.work, *parts)

    @property
    def src(self) -> str:
        return self.path("src")

    def make_source(self, spec: dataset.Spec, say: Callable[[str], None]) -> None:
        """<work>/src made from `spec`, or kept while its stamp names the same spec."""
        if not (os.path.isdir(self.src) and self._stamp() == _stamp_text(spec)):
            self.trash(self.src)
            say(f"generating the dataset: {spec.describe()}")
            dataset.generate(self.src, spec)
            self.mark_source(spec)

    def mark_source(self, spec: dataset.Spec | None) -> None:
        """Stamp <work>/src as made from `spec`; None: it is not (being changed)."""
        stamp = self.path("src.spec")
        if spec is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(stamp)
            return
        with open(stamp, "w", encoding="utf-8") as f:
            f.write(_stamp_text(spec))

    def _stamp(self) -> str:
        with (
            contextlib.suppress(FileNotFoundError),
            open(self.path("src.spec"), encoding="utf-8") as f,
        ):
            return f.read()
        return ""

    def start_host_sshd(self) -> Sshd:
        """The backed-up host's sshd for the plain-rsync contenders."""
        directory = self.path("hostsshd")
        os.makedirs(directory, mode=0o755, exist_ok=True)
        key = os.path.join(directory, "id_ed25519")
        if not os.path.exists(key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        authorized = os.path.join(directory, "authorized_keys")
        with open(key + ".pub", encoding="ascii") as f:
            write(authorized, f.read(), 0o600)
        sshd = Sshd(directory, ["root"], permit_root=True, authorized_keys=authorized)
        sshd.start()
        assert sshd.process is not None
        self.meter.join(sshd.process.pid)
        write(os.path.join(directory, "known_hosts"), sshd.known_hosts_line(), 0o644)
        self.host_sshd = sshd
        return sshd

    def host_ssh(self) -> list[str]:
        """`ssh` plus options for the backed-up host (as rsync -e takes it)."""
        assert self.host_sshd is not None
        d = self.path("hostsshd")
        return ["ssh", *ssh_options(os.path.join(d, "id_ed25519"), os.path.join(d, "known_hosts"),
                                    self.host_sshd.port)]  # fmt: skip

    def start_lab(self) -> Lab:
        lab = Lab(base=self.path("lab"))
        lab.setup()
        assert lab.sshd is not None and lab.sshd.process is not None
        self.meter.join(lab.sshd.process.pid)
        try:
            lab.use_launcher(True)
        except (PullsnapError, OSError, subprocess.CalledProcessError) as e:
            self.notes.append(f"pullsnap ran with --fake-super: the launcher failed ({e})")
        self.lab = lab
        return lab

    def btrfs(self) -> str:
        """<work>/btrfs: a btrfs filesystem in a sparse 16 GiB file on the work
        directory's disk, loop-mounted (made on first use, gone at close)."""
        if not self.btrfs_mount:
            image, point = self.path("btrfs.img"), self.path("btrfs")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(image)
            subprocess.run(["truncate", "-s", "16G", image], check=True)
            subprocess.run(["mkfs.btrfs", "-q", "-f", image], check=True, capture_output=True)
            os.makedirs(point, exist_ok=True)
            subprocess.run(["mount", "-o", "loop,user_subvol_rm_allowed", image, point],
                           check=True)  # fmt: skip
            os.chmod(point, 0o755)
            self.btrfs_mount = point
        return self.btrfs_mount

    def trash(self, path: str) -> None:
        """Move a tree aside; deleting tens of thousands of inodes right before a
        timed step would slow it (ext4 without a journal skips recently freed
        inodes when allocating), so deletion waits for `empty_trash`."""
        if not os.path.lexists(path):
            return
        # Beside it on its own filesystem: a rename cannot leave it.
        on_btrfs = bool(self.btrfs_mount) and path.startswith(self.btrfs_mount + "/")
        trash = os.path.join(self.btrfs_mount, "trash") if on_btrfs else self.path("trash")
        os.makedirs(trash, exist_ok=True)
        while True:  # an earlier run's leftovers may hold the next number
            self._trash_count += 1
            aside = os.path.join(trash, f"{self._trash_count:04d}-{os.path.basename(path)}")
            if not os.path.lexists(aside):
                break
        os.rename(path, aside)

    def empty_trash(self) -> None:
        shutil.rmtree(self.path("trash"), ignore_errors=True)
        if self.btrfs_mount:
            remove_btrfs_tree(os.path.join(self.btrfs_mount, "trash"))
            # btrfs frees a deleted subvolume's extents and metadata in the
            # background; wait, or the next repository's metadata growth
            # (btrfsspace.py) would shrink by what is freed meanwhile.
            subprocess.run(["btrfs", "subvolume", "sync", self.btrfs_mount],
                           capture_output=True, check=False)  # fmt: skip

    def drop_btrfs(self) -> None:
        """Unmount the stage's btrfs (its bind mounts first) and remove its image."""
        if not self.btrfs_mount:
            return
        subprocess.run(["umount", "-R", self.btrfs_mount], capture_output=True, check=False)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path("btrfs.img"))
        self.btrfs_mount = ""

    def close(self) -> None:
        if self.lab is not None:
            self.lab.close()
        if self.host_sshd is not None:
            self.host_sshd.stop()


def _stamp_text(spec: dataset.Spec) -> str:
    return json.dumps(spec.__dict__, sort_keys=True)
