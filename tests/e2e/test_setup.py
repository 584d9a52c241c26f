"""Guided setup, as an operator does it: `initiator setup` makes the key and
prints the line for the backup host, that line is run there, `initiator
check --probe` proves the two hosts agree, and the first backup works.
Refusals and problems say why and what fixes them."""

from __future__ import annotations

import os
import shlex
import stat

import pytest

from pullsnap import errors
from tests.e2e.conftest import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e]


def _authorize_words(stdout: str) -> list[str]:
    [line] = [x.strip() for x in stdout.splitlines() if x.strip().startswith("grabber authorize")]
    return shlex.split(line)


def test_setup_prints_the_line_that_authorizes_it_and_the_probe_passes(site: Site) -> None:
    os.makedirs(site.src)
    key = os.path.join(site.root, "keys", "id_ed25519")
    site.configure(destination={"identity_file": key})
    done = site.lab.initiator("-c", site.initiator_config, "setup", "--name", "web1")
    assert done.returncode == errors.OK, done.stdout + done.stderr
    assert f"ok: created login key {key} (ed25519" in done.stdout
    st = os.stat(key)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (site.lab.initiator_pw().pw_uid, 0o600)
    with open(key + ".pub") as f:
        public = f.read().split()
    words = _authorize_words(done.stdout)
    assert words == ["grabber", "authorize", "--user", site.lab.grabber_user, "web1",
                     f"{public[0]} {public[1]} pullsnap@web1"]  # fmt: skip
    # This lab's grabber configuration is not the default file: the
    # backup host's operator runs the printed line for that case, with its
    # file for FILE, and nothing else.
    [other] = [x.strip() for x in done.stdout.splitlines() if "grabber --config FILE" in x]
    assert other.startswith("# grabber --config FILE authorize --bind-config ")
    line = other.removeprefix("# ").replace("FILE", shlex.quote(site.grabber_config), 1)
    bound = site.lab.grabber(*shlex.split(line)[1:])
    assert bound.returncode == errors.OK, bound.stderr
    assert f"config={site.grabber_config}" in bound.stdout
    assert f"initiator -c {site.initiator_config} check --probe" in done.stdout
    probe = site.lab.initiator("-c", site.initiator_config, "check", "--probe")
    assert probe.returncode == errors.OK, probe.stdout + probe.stderr
    assert "problem:" not in probe.stdout
    assert "lab: ok: handshake and gate check passed (backup host: rsync 3." in probe.stdout
    assert site.snapshots() == [], "the probe made no snapshot"
    assert site.run().returncode == errors.OK
    again = site.lab.initiator("-c", site.initiator_config, "setup", "--name", "web1")
    assert again.returncode == errors.OK and "created" not in again.stdout
    assert _authorize_words(again.stdout) == words


def test_setup_changes_nothing_that_exists_and_says_how_to_fix_it(site: Site) -> None:
    os.makedirs(site.src)
    key = os.path.join(site.root, "id_ed25519")
    site.configure(destination={"identity_file": key})
    assert site.lab.initiator("-c", site.initiator_config, "setup").returncode == errors.OK
    os.chmod(key, 0o644)
    done = site.lab.initiator("-c", site.initiator_config, "setup")
    assert done.returncode == errors.FAILED
    user = site.lab.initiator_user
    assert (f"problem: destination lab: login key {key}: mode 0644, not 0600 -- fix: "
            f"chown {user} {key} && chmod 0600 {key}") in done.stdout  # fmt: skip
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o644


def test_probe_refusals_say_why(site: Site) -> None:
    os.makedirs(site.src)
    site.configure()
    check = ("-c", site.initiator_config, "check", "--probe")
    site.lab.write_raw_authorized_keys(f"{site.lab.login_public_key()}\n")
    done = site.lab.initiator(*check)
    assert done.returncode == errors.REFUSED
    assert "lab: refused: this key is not bound to a host" in done.stderr
    site.lab.write_raw_authorized_keys("")
    done = site.lab.initiator(*check)
    assert done.returncode == errors.REFUSED
    assert "Permission denied (publickey)" in done.stderr and "grabber authorize" in done.stderr
    site.lab.authorize([("web1", site.grabber_config)])
    site.configure(connect_back_timeout=3, destination={"allow_from": ["127.0.0.2"]})
    done = site.lab.initiator(*check)
    assert done.returncode != errors.OK
    assert "turned away a connect-back from 127.0.0.1: not in allow_from" in done.stderr
