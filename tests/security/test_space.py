"""One backed-up host cannot take another host's space (issue 15, items 1-3).

Two hosts share a small repository filesystem (a tmpfs the test mounts):
web1, the attacker, bound to the lab's login key, and web2, the victim,
bound to a key of its own.  Real runs through the lab's sshd and rsync.

    bytes    web1 floods: its runs are refused, or stopped while they pull,
             with the no-space code naming web1; web2 keeps every snapshot
             and its next run still fits
    inodes   web1 sends thousands of empty files: stopped the same way;
             with the inodes gone (something else took them) web2's run is
             a clean no-space refusal, even with a killed run to recover,
             `grabber status` says so, Prometheus has the gauge, and once
             there is room again web2's next run recovers and succeeds
    added    a file whose mode alone changed is stored again (--super):
             "added" says what the disk lost, not what rsync transferred
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from dataclasses import dataclass

import pytest

from pullsnap import errors
from pullsnap.grabber.session.binding import authorized_keys_line
from pullsnap.grabber.store.repository import HostRepo
from tests.faults.conftest import (
    MIB,
    fabricate,
    new_login_key,
    public_key,
    record,
    tmpfs_repository,
    write_random,
)
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.security]


@dataclass
class Victim:
    """web2: its own source, login key, binding and initiator configuration."""

    site: Site
    src: str
    config: str

    def run(self, *args: str):
        return self.site.lab.initiator("-c", self.config, "--now", "--format", "text", *args)

    def snapshots(self) -> list[str]:
        return [a.name for a in HostRepo(self.site.repo, "web2").attempts() if a.has_tree]


def victim(site: Site) -> Victim:
    side = os.path.join(site.root, "web2")
    src = os.path.join(side, "src")
    os.makedirs(src)
    key = new_login_key(site.lab, os.path.join(side, "key"))
    run_dir = os.path.join(side, "run")
    os.makedirs(run_dir, mode=0o700)
    pw = site.lab.initiator_pw()
    os.chown(run_dir, pw.pw_uid, pw.pw_gid)
    config = site.lab.write_initiator_config(
        [src], name=os.path.join(side, "initiator.toml"), runtime_dir=run_dir,
        destination={"identity_file": key},
    )  # fmt: skip
    site.lab.write_raw_authorized_keys(
        authorized_keys_line("web1", site.lab.login_public_key(), site.grabber_config)
        + authorized_keys_line("web2", public_key(key), site.grabber_config)
    )
    return Victim(site, src, config)


def days_of_history(site: Site, count: int) -> list[str]:
    """web2's daily snapshots of the last `count` days (kept by keep_daily = 7)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return [fabricate(site, now - dt.timedelta(days=d), host="web2") for d in range(count, 0, -1)]


def last_line(done) -> str:
    return done.stderr.strip().splitlines()[-1]


def test_a_flooding_host_is_refused_and_cannot_prune_another_hosts_history(site: Site) -> None:
    """Issue 15's reproduction, at a smaller scale: web2 has six daily
    snapshots; web1 sends 24 MiB twice into a 64 MiB filesystem.  Before,
    web1's second run deleted three of web2's days and failed anyway."""
    with tmpfs_repository(site, "64m"):
        site.regrab(min_free_abs="4M", min_keep=3, min_free_inodes=50)
        web2 = victim(site)
        history = days_of_history(site, 6)
        with open(os.path.join(web2.src, "notes"), "w") as f:
            f.write("web2's own data\n")
        assert web2.run().returncode == errors.OK
        kept = web2.snapshots()
        assert kept[:6] == history and len(kept) == 7

        os.makedirs(site.src)
        write_random(os.path.join(site.src, "a.bin"), 24 * MIB)
        first = site.run()
        assert first.returncode == errors.OK, first.stderr
        [flood] = site.snapshots()

        os.unlink(os.path.join(site.src, "a.bin"))
        write_random(os.path.join(site.src, "b.bin"), 24 * MIB)
        for _ in range(2):  # refused, and refused again: nothing changes in between
            refused = site.run()
            assert web2.snapshots() == kept
            assert site.snapshots() == [flood]
            assert refused.returncode == errors.NO_SPACE, refused.stderr
            line = last_line(refused)
            assert line.startswith("lab: no-space: web1: a run needs 48.")
            assert "web1 is growing" in line, line
            assert os.listdir(os.path.join(site.host_dir(), ".trash")) == []

        # web2's next run still finds its room.
        with open(os.path.join(web2.src, "notes"), "a") as f:
            f.write("more\n")
        done = web2.run()
        assert done.returncode == errors.OK, done.stderr
        assert web2.snapshots()[:7] == kept and len(web2.snapshots()) == 8
        # What web1's reservation came from: what its first run took on disk.
        assert record(site, flood)["added"]["bytes"] >= 24 * MIB


def test_one_run_cannot_grow_into_what_is_kept_for_another_hosts_next_run(site: Site) -> None:
    """web1 has no history to be judged by and sends nearly all the free
    space at once: it is stopped while it pulls, before it takes what web2's
    next run needs (twice what web2's runs add), and its tree is removed."""
    with tmpfs_repository(site, "64m"):
        site.regrab(min_free_abs="1M", min_free_inodes=50)
        web2 = victim(site)
        write_random(os.path.join(web2.src, "data.bin"), 4 * MIB)
        assert web2.run().returncode == errors.OK
        [theirs] = web2.snapshots()

        os.makedirs(site.src)
        free = shutil.disk_usage(site.repo).free
        write_random(os.path.join(site.src, "flood.bin"), free - 3 * MIB)
        stopped = site.run()
        assert stopped.returncode == errors.NO_SPACE, stopped.stderr
        line = last_line(stopped)
        assert line.startswith("lab: no-space: web1 "), line
        assert site.snapshots() == []
        [attempt] = HostRepo(site.repo, "web1").attempts()
        assert not attempt.has_incomplete and record(site, attempt.name)["tree"] == "removed"
        assert shutil.disk_usage(site.repo).free >= free - MIB  # the space is back
        # What was kept: twice what web2's run took on disk.
        kept_for_web2 = 2 * record(site, theirs, host="web2")["added"]["bytes"]
        assert kept_for_web2 >= 8 * MIB and f"{kept_for_web2 / MIB:.1f} MiB" in line

        os.unlink(os.path.join(web2.src, "data.bin"))
        write_random(os.path.join(web2.src, "new.bin"), 4 * MIB)
        done = web2.run()
        assert done.returncode == errors.OK, done.stderr
        assert web2.snapshots()[0] == theirs and len(web2.snapshots()) == 2


def _fill_inodes(directory: str) -> int:
    """Take every free inode (something else on the backup host did); how many."""
    os.makedirs(directory)
    taken = 0
    while True:
        try:
            os.close(os.open(os.path.join(directory, str(taken)), os.O_CREAT | os.O_WRONLY))
        except OSError:
            return taken
        taken += 1


def test_inodes_run_out_gracefully(site: Site, tmp_path) -> None:
    with tmpfs_repository(site, "64m", inodes=1500):
        site.regrab(min_free_abs="1M", min_free_inodes=20)
        web2 = victim(site)
        for d in range(10):
            os.makedirs(os.path.join(web2.src, f"d{d}"))
            for f in range(5):
                with open(os.path.join(web2.src, f"d{d}", f"f{f}"), "w") as out:
                    out.write(f"{d}/{f}\n")
        for _ in range(2):
            first = web2.run()
            assert first.returncode == errors.OK, first.stdout + first.stderr
        kept = web2.snapshots()

        # web1 sends empty files: as many as would leave web2 too few inodes.
        os.makedirs(site.src)
        room = os.statvfs(site.repo).f_favail
        for i in range(room - 30):
            open(os.path.join(site.src, f"e{i}"), "w").close()
        stopped = site.run()
        assert stopped.returncode == errors.NO_SPACE, stopped.stderr
        # The watch stops web1 ("web1 is growing ..."), or, when rsync makes
        # its empty files faster than the watch looks, the full disk does
        # ("web1: the repository filled up ..."): either way web1's outcome,
        # named for web1, and nothing of web2's goes.
        assert re.match(r"lab: no-space: web1[ :]", last_line(stopped)), stopped.stderr
        assert site.snapshots() == []
        assert web2.snapshots() == kept
        assert web2.run().returncode == errors.OK
        kept = web2.snapshots()
        # What is kept for web2: twice its runs' inodes, directories included.
        growth = [record(site, n, host="web2")["added"]["inodes"] for n in kept]
        assert growth[0] > 60 and 10 < growth[1] < growth[0]

        # Something else takes every inode, while a killed run of web2 waits
        # to be marked interrupted.
        name = "2020-01-01T000000Z"
        HostRepo(site.repo, "web2").write_record(name, {"state": "running", "pid": 1})
        filler = os.path.join(site.repo, ".filler")
        assert _fill_inodes(filler) > 0 and os.statvfs(site.repo).f_favail == 0
        prom = tmp_path / "pullsnap.prom"
        status = site.lab.grabber("--config", site.grabber_config, "status", "--no-hooks",
                                  "--prometheus", str(prom))  # fmt: skip
        assert status.returncode in (errors.STALE, errors.NO_SPACE), status.stderr
        assert f"repository {site.repo}: CRITICAL: " in status.stdout
        assert "0 inodes free, below 5%" in status.stdout
        assert re.search(r"^pullsnap_repository_free_inodes\{repository=\"[^\"]+\"\} 0$",
                         prom.read_text(), re.M)  # fmt: skip
        wedged = web2.run()
        assert wedged.returncode == errors.NO_SPACE, wedged.stderr
        assert "Traceback" not in wedged.stderr
        assert last_line(wedged).startswith("lab: no-space: web2: ")
        assert web2.snapshots() == kept
        assert record(site, name, host="web2")["state"] == "running"

        # Room again: the next run recovers and succeeds (retention then
        # removes the old interrupted attempt).
        shutil.rmtree(filler)
        done = web2.run("-v")
        assert done.returncode == errors.OK, done.stderr
        assert f"marked {name} interrupted" in done.stderr
        assert web2.snapshots()[: len(kept)] == kept and len(web2.snapshots()) == len(kept) + 1


def test_a_metadata_only_change_is_counted_in_added(super_site: Site) -> None:
    """--super: a file whose mode alone changed is stored again, because the
    old snapshot's inode must keep its metadata; rsync transfers nothing."""
    site = super_site
    os.makedirs(os.path.join(site.src, "etc"))
    big = os.path.join(site.src, "big.bin")
    write_random(big, 8 * MIB)
    os.chmod(big, 0o644)
    assert site.run().returncode == errors.OK
    os.chmod(big, 0o600)
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    first, second = site.snapshots()
    assert os.stat(site.in_snapshot(first) + "/big.bin").st_mode & 0o777 == 0o644
    assert os.stat(site.in_snapshot(second) + "/big.bin").st_mode & 0o777 == 0o600
    verdict = re.search(r", ([0-9.]+) MiB added, ", done.stdout)
    assert verdict is not None and float(verdict.group(1)) >= 8.0, done.stdout
    r = record(site, second)
    assert r["stats"]["transferred_size"] == 0  # what rsync says
    assert r["added"]["bytes"] >= 8 * MIB  # what the disk lost

    # Nothing changed: only the directories are new (never hardlinked).
    again = site.run()
    assert again.returncode == errors.OK
    third = site.snapshots()[-1]
    added = record(site, third)["added"]
    directories = sum(1 for _ in os.walk(os.path.join(site.host_dir(), third)))
    assert added["inodes"] == directories and 0 < added["bytes"] < MIB
