"""Integrity: manifests written by real runs, `grabber verify` finding a
flipped byte in every snapshot that shares the file, and what manifests
cost on a full and on a no-change run (printed with "measured:")."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pullsnap import errors
from tests.faults.conftest import MIB, record, write_random
from tests.labfixtures import Site
from tests.trees import make_rich_tree

pytestmark = [pytest.mark.root, pytest.mark.e2e, pytest.mark.faults]


def _verify(site: Site, *args: str):
    return site.lab.grabber("--config", site.grabber_config, "verify", "web1", *args)


def _flip(path: str, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x20]))


def test_a_flipped_byte_is_found_in_every_snapshot_sharing_the_file(site: Site) -> None:
    make_rich_tree(site.src)
    site.configure()
    assert site.run().returncode == errors.OK
    with open(os.path.join(site.src, "etc", "hosts"), "a") as f:
        f.write("10.0.0.2 other\n")
    assert site.run().returncode == errors.OK
    assert site.run().returncode == errors.OK
    names = site.snapshots()
    for name in names:
        assert record(site, name)["manifest"]["problems"] == []
    clean = _verify(site)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.strip().endswith("in 3 snapshot(s): ok")
    with open(os.path.join(site.host_dir(), ".verify.json")) as f:
        assert json.load(f)["result"] == "ok"

    # A stray write on the backup host, in the middle snapshot's copy.
    _flip(os.path.join(site.in_snapshot(names[1]), "big.bin"), 12345)
    found = _verify(site)
    assert found.returncode == errors.FAILED
    rel = os.path.relpath(site.in_snapshot(names[0]), site.repo).split("/", 2)[2]
    [line] = [x for x in found.stdout.splitlines() if x.startswith("mismatch:")]
    assert line.startswith(f"mismatch: web1/{names[0]}/{rel}/big.bin: content differs")
    assert line.endswith(f"the same file is in snapshots {', '.join(names)}")
    with open(os.path.join(site.host_dir(), ".verify.json")) as f:
        status = json.load(f)
    assert status["result"] == "mismatch" and status["snapshot"] == "all"
    assert sorted(status["mismatches"]) == sorted(f"{n}/{rel}/big.bin" for n in names)
    # The changed file is not shared: the first snapshot's etc/hosts still verifies.
    assert f"{rel}/etc/hosts" not in found.stdout
    only = _verify(site, names[2], "--sample", "1")
    assert only.returncode == errors.FAILED
    assert f"the same file is in snapshots {', '.join(names)}" in only.stdout


def test_manifest_cost_on_a_full_and_a_no_change_run(site: Site) -> None:
    os.makedirs(os.path.join(site.src, "many"))
    for i in range(2000):
        with open(os.path.join(site.src, "many", f"f{i:04d}"), "wb") as f:
            f.write(os.urandom(4096))
    write_random(os.path.join(site.src, "big.bin"), 64 * MIB)
    site.configure()
    assert site.run().returncode == errors.OK
    assert site.run().returncode == errors.OK
    full, unchanged = (record(site, n) for n in site.snapshots())
    assert full["manifest"]["hashed"] == 2001 and full["manifest"]["carried"] == 0
    # Every one by the hasher while rsync ran (prehash.py), none after it.
    assert full["manifest"]["prehashed"] == 2001
    # A run that changed nothing reads no file content for its manifest.
    assert unchanged["manifest"]["hashed"] == 0 and unchanged["manifest"]["hashed_bytes"] == 0
    assert unchanged["manifest"]["carried"] == 2001
    for label, r in (("full", full), ("no-change", unchanged)):
        m = r["manifest"]
        print(f"measured: manifest on a {label} run: {m['seconds']:.3f} s for {m['files']} files "
              f"({m['hashed']} hashed, {m['hashed_bytes']:,} bytes read) next to rsync's "
              f"{r['seconds']:.3f} s")  # fmt: skip
    size = os.path.getsize(os.path.join(site.host_dir(), site.snapshots()[1] + ".manifest"))
    print(f"measured: manifest file {size:,} bytes for 2001 files")


def test_super_snapshots_are_hashed_whoever_owns_the_files(super_site: Site) -> None:
    site = super_site
    """With --super the tree keeps root-only files (0600, 0400, a 0700
    directory); the manifest step reads them with the receiver's capability."""
    make_rich_tree(site.src)
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    [name] = site.snapshots()
    r = record(site, name)
    assert r["mode"] == "super" and r["manifest"]["problems"] == []
    inodes = {
        os.lstat(os.path.join(d, f)).st_ino
        for d, _, files in os.walk(site.in_snapshot(name))
        for f in files
        if os.path.isfile(os.path.join(d, f)) and not os.path.islink(os.path.join(d, f))
    }
    assert r["manifest"]["hashed"] == len(inodes)  # hard links hashed once
    # The hasher read them all (Landlock-confined, DAC_OVERRIDE its only capability).
    assert r["manifest"]["prehashed"] == r["manifest"]["hashed"]
    verified = _verify(site)  # as root
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_verify_as_the_grabber_user_calls_unreadable_unreadable_and_keeps_roots_result(
    super_site: Site,
) -> None:
    """A --super tree keeps its owners' modes (a 0700 directory, 0600 files):
    run as the grabber user, verify cannot read them.  That is not "missing
    from the tree", it does not replace root's saved result, and status
    stays OK; what it can read and finds damaged is still reported and saved."""
    site = super_site
    make_rich_tree(site.src)
    assert site.run().returncode == errors.OK
    assert _verify(site).returncode == errors.OK  # as root: everything read
    saved = os.path.join(site.host_dir(), ".verify.json")
    with open(saved) as f:
        by_root = f.read()
    pw = site.lab.grabber_pw()
    grabber = os.path.join(site.lab.venv_bin, "grabber")
    as_grabber = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
                  grabber, "--config", site.grabber_config]  # fmt: skip
    done = subprocess.run([*as_grabber, "verify", "web1"], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == errors.FAILED
    assert "mismatch" not in done.stdout.replace("0 mismatch", "") and "missing" not in done.stdout
    assert "unreadable: ok" in done.stdout.splitlines()[-1]
    assert "could not be read as this user" in done.stderr
    assert done.stderr.strip().endswith(f"run as root: grabber --config {site.grabber_config} "
                                        "verify web1")  # fmt: skip
    with open(saved) as f:
        assert f.read() == by_root
    nagios = site.lab.grabber("--config", site.grabber_config, "status", "--nagios")
    assert nagios.returncode == 0, nagios.stdout
    [name] = site.snapshots()
    _flip(site.in_snapshot(name) + "/etc/hosts", 0)  # world-readable: the grabber reads it
    done = subprocess.run([*as_grabber, "verify", "web1"], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == errors.FAILED
    assert f"mismatch: web1/{name}{site.src}/etc/hosts: content differs" in done.stdout
    with open(saved) as f:
        after = json.load(f)
    assert after["result"] == "mismatch" and after["unreadable"] > 0
