"""Interrupted runs: kill -9 on either side mid-transfer, a crash between
rsync's success and the rename, and the next run picking up the pieces.

Measured numbers (cleanup time after a kill, bytes on resume against a full
transfer) are printed with a "measured:" prefix (pytest -s shows them).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import signal
import time

import pytest

from lab import chown_tree
from pullsnap import errors
from pullsnap.grabber.session import early
from pullsnap.grabber.store.repository import HostRepo
from tests.faults.conftest import (
    MIB,
    alive,
    attempts,
    descendants,
    grabber_side,
    record,
    wait_until,
    write_random,
)
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.faults]

BIG = 64 * MIB
BIGS = 4


def _small_tree(site: Site) -> None:
    os.makedirs(os.path.join(site.src, "etc"))
    for i in range(20):
        with open(os.path.join(site.src, "etc", f"f{i}"), "w") as f:
            f.write(f"file {i}\n" * 50)


def _add_big_files(site: Site) -> int:
    for i in range(BIGS):
        write_random(os.path.join(site.src, f"big{i}"), BIG)
    return BIGS * BIG


def _incomplete_dir(site: Site) -> str | None:
    names = [n for n in os.listdir(site.host_dir()) if n.endswith(".incomplete")]
    return os.path.join(site.host_dir(), names[0]) + site.src if names else None


def _mid_big_file(site: Site) -> bool:
    """One big file is complete in the new tree and the next is being written."""
    where = _incomplete_dir(site)
    if where is None or not os.path.isdir(where):
        return False
    entries = os.listdir(where)
    done = [n for n in entries if n.startswith("big") and os.path.getsize(f"{where}/{n}") == BIG]
    writing = [n for n in entries if n.startswith(".big")]
    return bool(done) and bool(writing)


def _start_and_catch(site: Site):
    proc = site.lab.initiator_background("-c", site.initiator_config, "--now")
    caught = wait_until(lambda: _mid_big_file(site), 120, step=0.002)
    if caught is None:
        proc.kill()
        proc.communicate()
        pytest.fail("never caught the transfer between two big files")
    return proc


def _programs(procs) -> set[str]:
    names = set()
    for p in procs.values():
        words = p.cmdline.split()
        # sshd retitles itself "sshd: user [priv]"; the gate execs the sender.
        names.add(os.path.basename(words[0]).rstrip(":") if words else "?")
        if "--sender" in words:
            names.add("sender")
    return names


def _base_run(site: Site) -> str:
    _small_tree(site)
    site.configure()
    assert site.run().returncode == errors.OK
    [first] = site.snapshots()
    return first


def _the_run_left_nothing_good(site: Site, first: str) -> str:
    assert site.snapshots() == [first]
    assert os.readlink(os.path.join(site.host_dir(), "latest")) == first
    [attempt] = [a for a in attempts(site) if a.name != first]
    assert not attempt.good and not attempt.has_tree
    return attempt.name


def test_initiator_killed_mid_transfer(site: Site) -> None:
    first = _base_run(site)
    _add_big_files(site)
    proc = _start_and_catch(site)
    backed_up = descendants(proc.pid)
    backup = grabber_side(site.lab)
    assert {"sshd", "sender", "rsync"} <= _programs(backed_up), _programs(backed_up)
    os.kill(proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    # Within a few seconds nothing of that run is left on the backed-up host.
    gone = wait_until(lambda: not alive(backed_up), 30, step=0.01)
    assert gone is not None, alive(backed_up)
    proc.communicate(timeout=30)
    # The grabber's rsync ends on EOF (or its --timeout); the run is recorded, the lock freed.
    host = HostRepo(site.repo, "web1")
    settled = wait_until(lambda: not alive(backup) and not host.is_locked(), 120)
    assert settled is not None, alive(backup)
    print(f"measured: initiator kill -9: backed-up host clean after {gone:.2f} s, "
          f"backup host clean and unlocked after {time.monotonic() - killed:.2f} s")  # fmt: skip
    name = _the_run_left_nothing_good(site, first)
    assert record(site, name)["state"] == "failed"
    listing = site.lab.grabber("--config", site.grabber_config, "list")
    assert f"web1  {name}  failed" in listing.stdout


def test_grabber_killed_and_connection_cut_then_the_next_run_resumes(site: Site) -> None:
    first = _base_run(site)
    new_bytes = _add_big_files(site)
    proc = _start_and_catch(site)
    backed_up = descendants(proc.pid)
    backup = grabber_side(site.lab)
    [grabber] = [p for p in backup.values() if " -c pullsnap-grabber host=web1" in p.cmdline]
    # The connect-back ssh runs below the grabber's rsync.
    cut = [p for p in descendants(grabber.pid).values() if p.cmdline.startswith("/usr/bin/ssh ")]
    assert cut, "no connect-back ssh found"
    for victim in (grabber, *cut):
        with contextlib.suppress(ProcessLookupError):  # the ssh may go with rsync
            os.kill(victim.pid, signal.SIGKILL)
    killed = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode not in (errors.OK, errors.PARTIAL), err
    gone = wait_until(lambda: not alive(backup) and not alive(backed_up), 30)
    assert gone is not None, (alive(backup), alive(backed_up))
    host = HostRepo(site.repo, "web1")
    assert not host.is_locked()
    print(f"measured: grabber kill -9 + cut connection: both hosts clean after "
          f"{time.monotonic() - killed:.2f} s")  # fmt: skip
    name = _the_run_left_nothing_good(site, first)
    assert record(site, name)["state"] == "running"  # nobody lived to say otherwise
    listing = site.lab.grabber("--config", site.grabber_config, "list")
    assert f"web1  {name}  interrupted" in listing.stdout
    # SIGKILL left the grabber's private directory (its agent died with it);
    # its lock died with the grabber, so the next run of the same user sweeps it.
    uid = pwd.getpwnam(site.lab.grabber_user).pw_uid
    left = [p for p in glob.glob(f"/tmp/{early.PRIVATE_PREFIX}*") if os.lstat(p).st_uid == uid]
    assert left, "the killed grabber's private directory is not where it should be"

    # The next run marks it interrupted, links from its tree, then discards it.
    again = site.run()
    assert again.returncode == errors.OK, again.stderr
    _, resumed = site.snapshots()
    stats = record(site, resumed)["stats"]
    assert record(site, resumed)["link_dest"] == [first, name + ".incomplete"]
    assert record(site, name)["state"] == "interrupted"
    assert not os.path.exists(host.incomplete(name))
    print(f"measured: resume after kill: rsync transferred {stats['transferred_size']:,} bytes"
          f" of {new_bytes:,} new (without the interrupted tree: all of them)")  # fmt: skip
    assert stats["transferred_size"] <= new_bytes - BIG
    # The grabber sweeps after it has answered: give it a moment.
    swept = wait_until(lambda: not any(os.path.lexists(path) for path in left), 30)
    assert swept is not None, f"still there: {left}"


def test_crash_between_rsync_success_and_rename(site: Site) -> None:
    """What a crash right after the record said "complete" leaves: `list`
    does not show it as good, the next run publishes it."""
    first = _base_run(site)
    with open(os.path.join(site.src, "etc", "f0"), "a") as f:
        f.write("changed\n")
    assert site.run().returncode == errors.OK
    _, second = site.snapshots()
    host = HostRepo(site.repo, "web1")
    os.rename(host.tree(second), host.incomplete(second))
    host.point_latest(first)
    assert site.snapshots() == [first]
    listing = site.lab.grabber("--config", site.grabber_config, "list")
    assert f"web1  {second}  unpublished" in listing.stdout
    assert site.run().returncode == errors.OK
    names = site.snapshots()
    assert names[:2] == [first, second] and len(names) == 3
    assert os.readlink(os.path.join(site.host_dir(), "latest")) == names[2]
    with open(os.path.join(site.in_snapshot(second), "etc", "f0")) as f:
        assert f.read().endswith("changed\n")


def test_crash_before_the_record_said_complete(site: Site) -> None:
    """rsync finished but the record still says "running": the tree is never
    shown as good; the next run reuses it and then discards it."""
    first = _base_run(site)
    write_random(os.path.join(site.src, "new.bin"), 8 * MIB)
    assert site.run().returncode == errors.OK
    _, second = site.snapshots()
    host = HostRepo(site.repo, "web1")
    os.rename(host.tree(second), host.incomplete(second))
    host.point_latest(first)
    stale = record(site, second)
    stale.update(state="running", pid=2**22 + 7)
    for key in ("end", "stats", "manifest"):
        stale.pop(key, None)
    host.write_record(second, stale)
    g = site.lab.grabber_pw()
    chown_tree(host.path, g.pw_uid, g.pw_gid)
    assert site.snapshots() == [first]
    listing = site.lab.grabber("--config", site.grabber_config, "list")
    assert f"web1  {second}  interrupted" in listing.stdout
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    _, third = site.snapshots()
    assert record(site, third)["stats"]["transferred_size"] == 0  # all linked from the tree
    assert record(site, second)["state"] == "interrupted"
    assert not os.path.exists(host.incomplete(second))
    assert site.snapshots() == [first, third]
