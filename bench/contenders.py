"""Each contender: a fresh repository, a backup, a restore, where the restored
source tree lands.  Only the commands inside `measure.run` are timed.

Snapshot-style tools (pullsnap, rsync, rsnapshot) restore with `cp -a` of the
newest snapshot: it is a plain tree (pullsnap in --fake-super mode uses the
README's `rsync --fake-super -M--super`, which puts the real owners back);
borg and restic restore with their own extract commands.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field

from bench import measure, report
from bench.stage import Stage

RSYNC = ["rsync", "-aHAX", "--numeric-ids", "--stats"]
_RECEIVED_RE = re.compile(r"^Total bytes received: ([0-9,]+)", re.MULTILINE)
SECRET = "pullsnap-bench"  # borg/restic passphrase: throwaway repositories


def received_bytes(rsync_stdout: str) -> int | None:
    """Bytes the receiving side got, from rsync --stats (pure)."""
    match = _RECEIVED_RE.search(rsync_stdout)
    return int(match.group(1).replace(",", "")) if match else None


@dataclass
class Contender:
    name: str
    programs: tuple[str, ...] = ()
    repo: str = ""
    snapshots: int = 0
    env: dict[str, str] = field(default_factory=dict)
    # The repository on the stage's loop-mounted btrfs (Stage.btrfs), not
    # on the work directory's filesystem.
    on_btrfs: bool = False

    def unavailable(self) -> str | None:
        missing = [p for p in self.programs if shutil.which(p) is None]
        return f"not installed: {', '.join(missing)}" if missing else None

    def prepare(self, stage: Stage) -> None:
        """Once per run, before the first repetition."""

    def fresh(self, stage: Stage, rep: int) -> None:
        repos = os.path.join(stage.btrfs(), "repos") if self.on_btrfs else stage.path("repos")
        self.repo = os.path.join(repos, f"{self.name}-r{rep}")
        os.makedirs(self.repo)
        self.snapshots = 0

    def backup(self, stage: Stage) -> tuple[measure.Sample, int | None]:
        raise NotImplementedError

    def restore(self, stage: Stage, dest: str) -> measure.Sample:
        """Restore the newest backup into `dest` (which does not exist yet)."""
        return measure.run(stage.meter, ["cp", "-a", self.latest(), dest])

    def latest(self) -> str:
        return os.path.join(self.repo, str(self.snapshots))

    def restored_tree(self, stage: Stage, dest: str) -> str:
        return dest

    def finish(self, stage: Stage) -> None:
        """After a repetition: move the repository aside."""
        stage.trash(self.repo)

    def diagnostics(self) -> dict[str, float]:
        """Where the last backup's time went, when the tool says (not timed by us)."""
        return {}


@dataclass
class RsyncLocal(Contender):
    """`rsync --link-dest` on one machine: no ssh, no orchestration."""

    def backup(self, stage: Stage) -> tuple[measure.Sample, int | None]:
        prev = self.latest() if self.snapshots else None
        self.snapshots += 1
        argv = [*RSYNC, *([f"--link-dest={prev}"] if prev else []), stage.src + "/",
                self.latest() + "/"]  # fmt: skip
        sample = measure.run(stage.meter, argv)
        return sample, received_bytes(sample.stdout)


@dataclass
class RsyncSsh(RsyncLocal):
    """Our floor: the same rsync pull over ssh from the backed-up host's sshd."""

    def backup(self, stage: Stage) -> tuple[measure.Sample, int | None]:
        prev = self.latest() if self.snapshots else None
        self.snapshots += 1
        argv = [*RSYNC, *([f"--link-dest={prev}"] if prev else []),
                "-e", " ".join(stage.host_ssh()), f"root@127.0.0.1:{stage.src}/",
                self.latest() + "/"]  # fmt: skip
        sample = measure.run(stage.meter, argv)
        return sample, received_bytes(sample.stdout)


@dataclass
class RsyncSshSubvolume(RsyncLocal):
    """The btrfs floor: each backup a subvolume (empty, then a writable
    snapshot of the last one, made before the timed step), filled by the
    same rsync over ssh with --inplace --delete."""

    def backup(self, stage: Stage) -> tuple[measure.Sample, int | None]:
        prev = self.latest() if self.snapshots else None
        self.snapshots += 1
        if prev is None:
            subprocess.run(["btrfs", "subvolume", "create", self.latest()], check=True,
                           capture_output=True)  # fmt: skip
        else:
            subprocess.run(["btrfs", "subvolume", "snapshot", prev, self.latest()], check=True,
                           capture_output=True)  # fmt: skip
        argv = [*RSYNC, "--inplace", "--delete", "-e", " ".join(stage.host_ssh()),
                f"root@127.0.0.1:{stage.src}/", self.latest() + "/"]  # fmt: skip
        sample = measure.run(stage.meter, argv)
        return sample, received_bytes(sample.stdout)


@dataclass
class Rsnapshot(Contender):
    """rsnapshot in its fastest form: `cp -al` of the last snapshot, then rsync."""

    over_ssh: bool = False
    config: str = ""

    def fresh(self, stage: Stage, rep: int) -> None:
        super().fresh(stage, rep)
        source = f"root@127.0.0.1:{stage.src}/" if self.over_ssh else f"{stage.src}/"
        lines = [
            ("config_version", "1.2"),
            ("snapshot_root", self.repo + "/"),
            ("cmd_cp", "/bin/cp"),
            ("cmd_rm", "/bin/rm"),
            ("cmd_rsync", "/usr/bin/rsync"),
            ("link_dest", "0"),
            ("sync_first", "0"),
            ("verbose", "1"),
            ("loglevel", "1"),
            ("lockfile", os.path.join(self.repo, "rsnapshot.pid")),
            ("rsync_short_args", "-aHAX"),
            ("rsync_long_args", "--delete --numeric-ids --relative --delete-excluded"),
            ("retain", "alpha\t99"),
        ]
        if self.over_ssh:  # rsnapshot reads cmd_ssh before it accepts a remote backup line
            ssh = stage.host_ssh()
            lines += [("cmd_ssh", shutil.which(ssh[0]) or ssh[0]), ("ssh_args", " ".join(ssh[1:]))]
        lines.append(("backup", f"{source}\thost/"))
        self.config = os.path.join(self.repo, "rsnapshot.conf")
        with open(self.config, "w", encoding="utf-8") as f:
            f.write("".join(f"{key}\t{value}\n" for key, value in lines))

    def backup(self, stage: Stage) -> tuple[measure.Sample, int | None]:
        self.snapshots += 1
        return measure.run(stage.meter, ["rsnapshot", "-c", self.config, "alpha"]), None

    def latest(self) -> str:
        return os.path.join(self.repo, "alpha.0")

    def restored_tree(self, stage: Stage, dest: str) -> str:
        return dest + "/host" + stage.src


@dataclass
class Borg(Contender):
    encryption: str = "none"

    def fresh(self, stage: Stage, rep: int) -> None:
        super().fresh(stage, rep)
        home = self.repo + ".home"
        self.env = {**os.environ, "BORG_BASE_DIR": home, "BORG_PASSPHRASE": SECRET,
                    "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
                    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes"}  # fmt: skip
        os.rmdir(self.repo)
        subprocess.run(["borg", "init", "-e", self.encryption, self.repo], env=self.env,
                       check=True, capture_output=True)  # fmt: skip

    def backup(self, stage: Stage) -> tuple[measure.Sample, int | None]:
        self.snapshots += 1
        argv = ["borg", "create", "--numeric-ids", f"{self.repo}::b{self.snapshots}", stage.src]
        return measure.run(stage.meter, argv, env=self.env), None

    def restore(self, stage: Stage, dest: str) -> measure.Sample:
        os.makedirs(dest)
        argv = ["borg", "extract", "--numeric-ids", f"{self.repo}::b{self.snapshots}"]
        return measure.run(stage.meter, argv, env=self.env, cwd=dest)

    def restored_tree(self, stage: Stage, dest: str) -> str:
        return dest + stage.src

    def finish(self, stage: Stage) -> None:
        super().finish(stage)
        stage.trash(self.repo + ".home")


@dataclass
class Restic(Contender):
    def fresh(self, stage: Stage, rep: int) -> None:
        super().fresh(stage, rep)
        self.env = {**os.environ, "RESTIC_REPOSITORY": self.repo, "RESTIC_PASSWORD": SECRET,
                    "RESTIC_CACHE_DIR": self.repo + ".cache"}  # fmt: skip
        os.rmdir(self.repo)
        subprocess.run(["restic", "init"], env=self.env, check=True, capture_output=True)

    def backup(self, stage: Stage) -> tuple[measure.Sample, int | None]:
        self.snapshots += 1
        return measure.run(stage.meter, ["restic", "backup", "--quiet", stage.src],
                           env=self.env), None  # fmt: skip

    def restore(self, stage: Stage, dest: str) -> measure.Sample:
        argv = ["restic", "restore", "latest", "--target", dest]
        return measure.run(stage.meter, argv, env=self.env)

    def restored_tree(self, stage: Stage, dest: str) -> str:
        return dest + stage.src

    def finish(self, stage: Stage) -> None:
        super().finish(stage)
        stage.trash(self.repo + ".cache")


@dataclass
class Pullsnap(Contender):
    """End to end as in production: `initiator` (cron mode) opens the one-shot
    door, the lab's sshd runs `grabber` (through the capability launcher, so
    --super on a nosuid,nodev repository) which pulls through the gate."""

    sources: tuple[str, ...] = ()
    initiator_config: str = ""
    mounted: bool = False
    store: str = "hardlink"  # grabber.toml's store

    def prepare(self, stage: Stage) -> None:
        lab = stage.lab
        assert lab is not None
        run_dir = lab.path(f"run-{self.name}")
        os.makedirs(run_dir, mode=0o700, exist_ok=True)
        pw = lab.initiator_pw()
        os.chown(run_dir, pw.pw_uid, pw.pw_gid)
        self.initiator_config = lab.write_initiator_config(
            list(self.sources or (stage.src,)), name=f"initiator-{self.name}.toml",
            runtime_dir=run_dir,
        )  # fmt: skip

    def fresh(self, stage: Stage, rep: int) -> None:
        super().fresh(stage, rep)
        lab = stage.lab
        assert lab is not None
        os.chmod(self.repo, 0o700)
        pw = lab.grabber_pw()
        os.chown(self.repo, pw.pw_uid, pw.pw_gid)
        if lab.grabber_shell.endswith("grabber-launcher"):
            # --super wants a nosuid,nodev repository (README); a bind mount gives one.
            subprocess.run(["mount", "--bind", self.repo, self.repo], check=True)
            subprocess.run(["mount", "-o", "remount,bind,nosuid,nodev", self.repo], check=True)
            self.mounted = True
        config = lab.write_grabber_config(name=f"grabber-{self.name}.toml", repository=self.repo,
                                          store=self.store)  # fmt: skip
        lab.authorize([("web1", config)])

    def backup(self, stage: Stage) -> tuple[measure.Sample, int | None]:
        assert stage.lab is not None
        argv = [os.path.join(stage.lab.venv_bin, "initiator"), "-c", self.initiator_config]
        sample = measure.run(stage.meter, argv)
        self.snapshots += 1
        record = self.record()
        return sample, record.get("stats", {}).get("bytes_received")

    def record(self) -> dict:
        with open(self.latest() + ".json", encoding="utf-8") as f:
            return json.load(f)

    def latest(self) -> str:
        host = os.path.join(self.repo, "web1")
        return os.path.join(host, os.readlink(os.path.join(host, "latest")))

    def restore(self, stage: Stage, dest: str) -> measure.Sample:
        if self.record().get("mode") != "fake-super":
            return super().restore(stage, dest)
        argv = ["rsync", "-aHAX", "--numeric-ids", "--fake-super", "-M--super",
                self.latest() + "/", dest + "/"]  # fmt: skip
        return measure.run(stage.meter, argv)

    def restored_tree(self, stage: Stage, dest: str) -> str:
        return dest + (self.sources[0] if self.sources else stage.src)

    def mode(self) -> str:
        return str(self.record().get("mode", "?")) if self.snapshots else "?"

    def diagnostics(self) -> dict[str, float]:
        record = self.record()
        found = {"rsync_s": record.get("seconds")}
        for key, value in record.items():
            if isinstance(value, dict) and isinstance(value.get("seconds"), int | float):
                found[f"{key}_s"] = value["seconds"]  # after-success steps that time themselves
        phases = record.get("phases")
        for key, value in (phases if isinstance(phases, dict) else {}).items():
            found[f"{report.PHASE}{key}"] = value  # the grabber's own timing of each phase
        return {k: float(v) for k, v in found.items() if isinstance(v, int | float)}

    def finish(self, stage: Stage) -> None:
        if self.mounted:
            unmount(self.repo, stage.notes)
            self.mounted = False
        super().finish(stage)


def unmount(path: str, notes: list[str]) -> None:
    """Unmount the repository's bind mount; if something still uses it, say
    what (in the results' notes), wait a little, and detach it lazily last."""
    for attempt in range(20):
        done = subprocess.run(["umount", path], capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return
        if attempt == 0:
            users = sorted(_users_of(path))
            notes.append(f"{path} was still in use when a repetition ended: "
                         f"{'; '.join(users) or 'no process found'}")  # fmt: skip
        time.sleep(0.2)
    subprocess.run(["umount", "-l", path], check=False)


def _users_of(path: str) -> set[str]:
    """Processes with their working directory or an open file below `path`."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            places = [os.readlink(f"/proc/{pid}/cwd")]
            places += [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")[:80]
        except OSError:
            continue
        if any(p == path or p.startswith(path + "/") for p in places):
            found.add(f"{pid} {command.strip()}")
    return found


def all_contenders() -> list[Contender]:
    return [
        Pullsnap("pullsnap"),
        Pullsnap("pullsnap-btrfs", ("btrfs", "mkfs.btrfs"), on_btrfs=True, store="btrfs"),
        RsyncSsh("rsync-ssh", ("rsync", "ssh", "sshd")),
        RsyncSshSubvolume("rsync-ssh-btrfs", ("rsync", "ssh", "sshd", "btrfs"), on_btrfs=True),
        RsyncLocal("rsync-local", ("rsync",)),
        Rsnapshot("rsnapshot", ("rsnapshot", "rsync")),
        Rsnapshot("rsnapshot-ssh", ("rsnapshot", "rsync", "ssh"), over_ssh=True),
        Rsnapshot("rsnapshot-btrfs", ("rsnapshot", "rsync", "btrfs"), on_btrfs=True),
        Borg("borg-none", ("borg",), encryption="none"),
        Borg("borg-repokey", ("borg",), encryption="repokey"),
        Restic("restic", ("restic",)),
    ]


def leftover_mounts(work: str) -> list[str]:
    """Bind mounts a crashed run left under `work` (to undo before deleting)."""
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [line.split()[4] for line in f]
    # Innermost first: a repository's bind mount inside the stage's btrfs.
    return [p for p in points if p.startswith(work.rstrip("/") + "/")][::-1]
