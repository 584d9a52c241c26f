"""An interrupted run on the btrfs store: the next run starts from its tree
(a writable snapshot of it), sends only what had not arrived, and the
result is exact; the interrupted subvolume goes after the success."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import pytest

from pullsnap import errors
from pullsnap.grabber.cli import main
from pullsnap.grabber.store.repository import HostRepo
from tests.faults.conftest import MIB, descendants, grabber_side, record, wait_until, write_random
from tests.faults.test_interrupted import _base_run, _the_run_left_nothing_good
from tests.labfixtures import Site
from tests.trees import differences

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.faults]

BIG = 64 * MIB
BIGS = 4


def _between_big_files(site: Site) -> bool:
    """One big file complete in the new tree, the next being written (in
    place: --inplace writes the file under its own name)."""
    names = [n for n in os.listdir(site.host_dir()) if n.endswith(".incomplete")]
    if not names:
        return False
    where = os.path.join(site.host_dir(), names[0]) + site.src
    with contextlib.suppress(OSError):
        sizes = [os.path.getsize(os.path.join(where, f"big{i}")) for i in range(BIGS)
                 if os.path.exists(os.path.join(where, f"big{i}"))]  # fmt: skip
        return sizes.count(BIG) >= 1 and any(0 < s < BIG for s in sizes)
    return False


def test_the_next_run_resumes_from_the_interrupted_subvolume(btrfs_site: Site) -> None:
    site = btrfs_site
    site.regrab(min_free_avg=0.1)
    first = _base_run(site)
    for i in range(BIGS):
        write_random(os.path.join(site.src, f"big{i}"), BIG)
    proc = site.lab.initiator_background("-c", site.initiator_config, "--now")
    if wait_until(lambda: _between_big_files(site), 120, step=0.002) is None:
        proc.kill()
        proc.communicate()
        pytest.fail("never caught the transfer between two big files")
    backup = grabber_side(site.lab)
    [grabber] = [p for p in backup.values() if " -c pullsnap-grabber host=web1" in p.cmdline]
    cut = [p for p in descendants(grabber.pid).values() if p.cmdline.startswith("/usr/bin/ssh ")]
    for victim in (grabber, *cut):
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGKILL)
    proc.communicate(timeout=120)
    assert proc.returncode not in (errors.OK, errors.PARTIAL)
    name = _the_run_left_nothing_good(site, first)
    host = HostRepo(site.repo, "web1")
    assert wait_until(lambda: not host.is_locked(), 30) is not None

    again = site.run()
    assert again.returncode == errors.OK, again.stderr
    _, resumed = site.snapshots()
    assert record(site, resumed)["link_dest"] == [name + ".incomplete"]
    assert record(site, name)["state"] == "interrupted"
    assert not os.path.exists(host.incomplete(name))
    transferred = record(site, resumed)["stats"]["transferred_size"]
    print(f"measured: btrfs resume after kill: rsync transferred {transferred:,} bytes of "
          f"{BIGS * BIG:,} new")  # fmt: skip
    assert transferred <= (BIGS - 1) * BIG
    restored = os.path.join(site.root, "restored")
    subprocess.run(["rsync", "-aHAX", "--numeric-ids", "--modify-window=-1", "--fake-super",
                    "-M--super", site.in_snapshot(resumed) + "/", restored + "/"],
                   check=True)  # fmt: skip
    assert differences(site.src, restored) == []
    assert main(["grabber", "--config", site.grabber_config, "verify", "web1"]) == errors.OK
