"""A backed-up host whose pullsnap predates the btrfs store (the vault was
upgraded first): its gate refuses the sender's --inplace, and the run
fails with one line that says what to do, leaving nothing presented as
good.  The old initiator is this one run by an interpreter whose gate
table lacks "inplace" (its only difference that matters here); sshd, the
gate's refusal, ssh and both rsyncs are real."""

from __future__ import annotations

import os
import sysconfig
import venv

import pytest

from pullsnap import errors
from pullsnap.grabber.cli import main
from pullsnap.grabber.store.repository import HostRepo
from pullsnap.grabber.transfer import oldgate
from tests.btrfsview import is_subvolume
from tests.faults.conftest import attempts, record
from tests.labfixtures import Site
from tests.trees import make_rich_tree

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.faults]

# Loaded at the start of every process of that interpreter, the gate too
# (`python -I` leaves out PYTHONPATH and the user's site-packages, not the
# .pth files of the interpreter's own: Python's `site` module).
OLD_TABLE = '''"""The gate's table as it was before the btrfs store."""
from pullsnap.initiator import gate

del gate.LONG_OPTIONS["inplace"]
'''


def old_initiator_python(where: str) -> str:
    """A Python that runs this pullsnap with the old gate table; the one-shot
    sshd's forced command runs the gate with the initiator's interpreter."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(where)
    site_dir = sysconfig.get_paths(vars={"base": where, "platbase": where})["purelib"]
    with open(os.path.join(site_dir, "pullsnap_old_gate.py"), "w", encoding="utf-8") as f:
        f.write(OLD_TABLE)
    ours = sysconfig.get_paths()["purelib"]
    with open(os.path.join(site_dir, "pullsnap-old-gate.pth"), "w", encoding="utf-8") as f:
        f.write(f"import site; site.addsitedir({ours!r})\nimport pullsnap_old_gate\n")
    return os.path.join(where, "bin", "python")


def run_old(site: Site, *args: str):
    where = os.path.join(site.root, "old-initiator")
    python = os.path.join(where, "bin", "python")
    if not os.path.exists(python):
        old_initiator_python(where)
    return site.lab.initiator("-c", site.initiator_config, "--now", "--format", "text", *args,
                              prefix=[python])  # fmt: skip


def test_a_new_host_is_told_to_upgrade_or_use_hardlink(btrfs_site: Site) -> None:
    site = btrfs_site
    make_rich_tree(site.src)
    site.configure()
    done = run_old(site)
    advice = oldgate.advice("web1", False, site.grabber_config)
    assert done.returncode == errors.REFUSED, done.stderr
    assert done.stderr.splitlines() == [f"lab: refused: {advice}"]
    assert "upgrade pullsnap on web1" in advice and 'store = "hardlink" in ' in advice
    # A failed run like any: recorded with the gate's own line kept, its
    # .incomplete tree left for the next run, nothing good, no `latest`.
    [failed] = attempts(site)
    fields = record(site, failed.name)
    assert fields["state"] == "failed" and fields["message"] == advice
    assert oldgate.REFUSAL in fields["errors"]
    assert site.snapshots() == [] and not os.path.lexists(os.path.join(site.host_dir(), "latest"))
    host = HostRepo(site.repo, "web1")
    assert os.path.isdir(host.incomplete(failed.name))

    # The host upgraded: its current gate lets the in-place pull through,
    # which starts from the failed run's tree and then removes it.
    again = site.run()
    assert again.returncode == errors.OK, again.stderr
    [good] = site.snapshots()
    assert record(site, good)["link_dest"] == [failed.name + ".incomplete"]
    assert not os.path.exists(host.incomplete(failed.name))
    assert is_subvolume(os.path.join(site.host_dir(), good))
    assert main(["grabber", "--config", site.grabber_config, "verify", "web1"]) == errors.OK


def test_store_hardlink_lets_the_old_initiator_back_up_a_new_host(btrfs_site: Site) -> None:
    """What the advice offers besides upgrading works as it says."""
    site = btrfs_site
    make_rich_tree(site.src)
    site.configure()
    assert run_old(site).returncode == errors.REFUSED
    [failed] = attempts(site)
    site.regrab(store="hardlink")
    done = run_old(site)
    assert done.returncode == errors.OK, done.stderr
    [good] = site.snapshots()
    # The refused run's (empty) subvolume served as a --link-dest, then went.
    assert not os.path.lexists(HostRepo(site.repo, "web1").incomplete(failed.name))
    assert not is_subvolume(os.path.join(site.host_dir(), good))
    assert main(["grabber", "--config", site.grabber_config, "verify", "web1"]) == errors.OK


def test_a_host_with_btrfs_snapshots_is_told_to_upgrade(btrfs_site: Site) -> None:
    """Its snapshots are subvolumes, so it stays on the btrfs store whatever
    `store` says: upgrading is the one way."""
    site = btrfs_site
    make_rich_tree(site.src)
    assert site.run().returncode == errors.OK
    [before] = site.snapshots()
    done = run_old(site)
    advice = oldgate.advice("web1", True, site.grabber_config)
    assert done.returncode == errors.REFUSED, done.stderr
    assert done.stderr.splitlines() == [f"lab: refused: {advice}"]
    assert "hardlink" in advice and ", or set" not in advice
    assert site.snapshots() == [before]
    assert os.readlink(os.path.join(site.host_dir(), "latest")) == before


def test_the_probe_of_a_btrfs_host_meets_the_same_refusal(btrfs_site: Site) -> None:
    """`initiator --dry-run` and `check --probe` send what the host's runs
    send: on the btrfs store --inplace, so an old gate shows up before the
    first night, not after it."""
    site = btrfs_site
    make_rich_tree(site.src)
    site.configure()
    before = site.repo_state()
    done = run_old(site, "--dry-run")
    assert done.returncode == errors.REFUSED, done.stdout + done.stderr
    advice = oldgate.advice("web1", False, site.grabber_config)
    assert done.stderr.splitlines() == [f"lab: refused: {advice}"]
    # It took the host's lock (so made the host's directory), nothing else.
    assert [p for p in site.repo_state() if p[0] != site.host_dir()] == before
    assert os.listdir(site.host_dir()) == [".lock"]
    python = os.path.join(site.root, "old-initiator", "bin", "python")  # made by run_old
    checked = site.lab.initiator("-c", site.initiator_config, "check", "--probe", prefix=[python])
    assert checked.returncode == errors.REFUSED, checked.stdout
    assert checked.stderr.splitlines() == [f"lab: refused: {advice}"]
    # A current initiator's probe passes.
    done = site.run("--dry-run")
    assert done.returncode == errors.OK, done.stderr
