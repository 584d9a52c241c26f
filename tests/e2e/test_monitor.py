"""Monitoring on a repository made by real runs: `grabber status` (text,
JSON, Nagios, exit codes), the Prometheus textfile, the hooks, and the HTML
report rendered by a real browser.  What the store shapes (states, space
used, the last verify, the report's rows) is checked on both stores, each
with one history per module (tests/e2e/history.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.grabber.store.repository import HostRepo, parse_name
from pullsnap.units import human_size
from tests.e2e import history
from tests.e2e.browser import browser
from tests.labfixtures import Site

pytestmark = [pytest.mark.root, pytest.mark.e2e]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def past_hardlink(lab) -> Iterator[history.History]:
    h = history.build(lab, "monitor-history")
    yield h
    history.remove(h)


@pytest.fixture(scope="module")
def past_btrfs(lab, btrfs: str) -> Iterator[history.History]:
    h = history.build(lab, "monitor-history-btrfs", repo_parent=btrfs)
    yield h
    history.remove(h)


@pytest.fixture(params=["hardlink", "btrfs"])
def past(request: pytest.FixtureRequest) -> history.History:
    """The same history in either store: the views show the same states; the
    space used is each store's own (every inode once; every extent once)."""
    h = request.getfixturevalue(f"past_{request.param}")
    assert h.store == request.param
    return h


def _check_used(h: history.History, host: str, used: int) -> None:
    """`used` against the filesystem's own tools. Hardlink: GNU du of the
    host's directory counts the records too, so it is a bound. btrfs: the
    trees' extents once, by `btrfs filesystem du`, exactly."""
    if h.store == "hardlink":
        du = subprocess.run(["du", "-s", "-B1", h.host_dir(host)], capture_output=True,
                            text=True, check=True)  # fmt: skip
        assert 0 < used <= int(du.stdout.split()[0])
    else:
        assert used == history.btrfs_trees_once(h, host)


def _status(h: history.History, *args: str) -> subprocess.CompletedProcess:
    return h.grabber("status", "--no-hooks", *args)


def test_status_json_describes_each_host(past: history.History) -> None:
    done = _status(past, "--json", "--max-age", "3650d")
    assert done.returncode == errors.OK, done.stderr
    by_host = {s["host"]: s for s in json.loads(done.stdout)}
    assert set(by_host) == {"web1", "web2"}
    web1 = by_host["web1"]
    good = [a.name for a in HostRepo(past.repo, "web1").good()]
    assert web1["snapshots"] == len(good) == len(past.runs)
    assert web1["last_good"] == past.runs[-1] == good[-1]
    assert web1["suspect"] == [past.suspect]
    assert web1["failed"] == 1 and web1["interrupted"] == 0
    assert web1["last_attempt"] == past.suspect and web1["last_state"] == "suspect"
    assert web1["verify"] is None and web1["stale"] is False
    assert web1["used"] >= history.GROWN  # grown.bin, random: held once
    _check_used(past, "web1", web1["used"])
    assert by_host["web2"]["snapshots"] == 1


def test_status_text_marks_suspect_and_failed_runs(past: history.History) -> None:
    done = _status(past, "--max-age", "3650d", "web1")
    assert done.returncode == errors.OK, done.stderr
    assert f"last good {past.runs[-1]}" in done.stdout
    assert f"SUSPECT   {past.suspect}" in done.stdout
    accept = f"grabber --config {past.web1.grabber_config} accept web1 {past.suspect}"
    assert accept in done.stdout
    assert "failed 1" in done.stdout and "verify    never" in done.stdout


def test_stale_host_exits_11_and_nagios_critical(past: history.History) -> None:
    # Any snapshot is older than a millisecond by the time status runs.
    done = _status(past, "--max-age", "0.001", "web2")
    assert done.returncode == errors.STALE, done.stdout + done.stderr
    assert done.stdout.startswith("web2  STALE")
    nagios = _status(past, "--nagios", "--max-age", "0.001")
    assert nagios.returncode == 2  # CRITICAL (Nagios plugin guidelines)
    assert nagios.stdout.startswith("PULLSNAP CRITICAL - stale: web1 (")
    assert "web2 (" in nagios.stdout
    # Fresh, but web1 has a suspect snapshot: WARNING.
    warning = _status(past, "--nagios", "--max-age", "3650d")
    assert warning.returncode == 1, warning.stdout
    assert "web1 (suspect snapshot)" in warning.stdout


def test_per_host_max_age_from_the_config(past_hardlink: history.History, tmp_path) -> None:
    past = past_hardlink  # the configuration's, whichever the store
    config = tmp_path / "grabber.toml"
    text = Path(past.web1.grabber_config).read_text()
    config.write_text(text + '\n[hosts.web2]\nmax_age = "3650d"\n\n[hosts.web3]\nmax_age = "1d"\n')
    policy_default = past.lab.grabber("--config", str(config), "status", "--no-hooks", "--json")
    body = {s["host"]: s for s in json.loads(policy_default.stdout)}
    assert body["web2"]["stale"] is False and body["web2"]["max_age"] == 3650 * 86400
    # web3 is configured but never backed up: stale, "no good snapshot".
    assert body["web3"]["stale"] is True and body["web3"]["last_good"] is None
    assert policy_default.returncode == errors.STALE


def test_last_verify_is_read_from_the_host(past_hardlink: history.History) -> None:
    past = past_hardlink  # a file beside the trees, whichever the store
    path = os.path.join(past.host_dir("web2"), ".verify.json")
    body = {"time": "2026-11-25T03:00:00Z", "snapshot": "all", "result": "mismatch",
            "checked": 12, "mismatches": ["x/etc/motd"]}  # fmt: skip
    with open(path, "w") as f:
        json.dump(body, f)
    try:
        done = _status(past, "--json", "--max-age", "3650d", "web2")
        [web2] = json.loads(done.stdout)
        assert web2["verify"] == {"time": body["time"], "snapshot": "all", "result": "mismatch",
                                  "checked": 12, "mismatches": 1}  # fmt: skip
        text = _status(past, "--max-age", "3650d", "web2").stdout
        assert "verify    mismatch at 2026-11-25T03:00:00Z" in text
    finally:
        os.unlink(path)


def test_a_verify_shows_in_status(past: history.History) -> None:
    """`grabber verify` reads every snapshot back (hard-linked trees or
    subvolumes) against its manifest; status shows the verdict."""
    path = os.path.join(past.host_dir("web1"), ".verify.json")
    try:
        done = past.grabber("verify", "web1")
        assert done.returncode == errors.OK, done.stdout + done.stderr
        [web1] = json.loads(_status(past, "--json", "--max-age", "3650d", "web1").stdout)
        verdict = web1["verify"]
        assert verdict["result"] == "ok" and verdict["mismatches"] == 0, verdict
        assert verdict["checked"] > len(history.CHANGES) and verdict["snapshot"] == "all"
        assert f"verify web1: {verdict['checked']:,} files" in done.stdout
        assert "verify    ok at" in _status(past, "--max-age", "3650d", "web1").stdout
    finally:
        os.unlink(path)


def _samples(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def test_prometheus_textfile(past: history.History, tmp_path) -> None:
    target = tmp_path / "textfile" / "pullsnap.prom"
    target.parent.mkdir()
    done = _status(past, "--quiet", "--max-age", "3650d", "--prometheus", str(target))
    assert done.returncode == errors.OK and done.stdout == "", done.stderr
    assert os.listdir(target.parent) == ["pullsnap.prom"]  # no temporary file left
    assert target.stat().st_mode & 0o777 == 0o644
    text = target.read_text()
    samples = _samples(text)
    newest = parse_name(past.runs[-1])
    assert newest is not None
    assert samples['pullsnap_last_success_timestamp_seconds{host="web1"}'] == newest.timestamp()
    assert samples['pullsnap_snapshots{host="web1"}'] == len(past.runs)
    assert samples['pullsnap_suspect_snapshots{host="web1"}'] == 1
    assert samples['pullsnap_failed_attempts{host="web1"}'] == 1
    assert samples['pullsnap_last_run_success{host="web1"}'] == 0  # the suspect run
    record = HostRepo(past.repo, "web2").read_record(HostRepo(past.repo, "web2").good()[0].name)
    assert record is not None
    stats = record["stats"]
    # What the snapshot took on disk (its directories too), not rsync's figure.
    added = record["added"]
    assert added["bytes"] > stats["transferred_size"]
    # New inodes: its directories and file (hardlink); the file it wrote (btrfs).
    assert added["inodes"] >= (2 if past.store == "hardlink" else 1), added
    assert samples['pullsnap_last_run_added_bytes{host="web2"}'] == added["bytes"]
    assert samples['pullsnap_last_run_added_inodes{host="web2"}'] == added["inodes"]
    assert samples['pullsnap_last_run_transferred_bytes{host="web2"}'] == stats["bytes_received"]
    assert samples['pullsnap_last_run_duration_seconds{host="web2"}'] == record["seconds"]
    _check_used(past, "web1", int(samples['pullsnap_used_bytes{host="web1"}']))
    # btrfs makes inodes as it needs them: no inode gauges there.
    inodes = ("pullsnap_repository_free_inodes", "pullsnap_repository_inodes")
    for gauge in ("pullsnap_repository_free_bytes", "pullsnap_repository_size_bytes", *inodes):
        found = [v for k, v in samples.items() if k.startswith(gauge + "{")]
        if past.store == "btrfs" and gauge in inodes:
            assert found == [], gauge
        else:
            assert len(found) == 1 and found[0] > 0, gauge
    # Each family is announced once, before its samples (exposition format).
    families = re.findall(r"^# TYPE (\S+) gauge$", text, re.M)
    assert len(families) == len(set(families))
    for name in samples:
        assert name.split("{")[0] in families


def _hook_script(directory: str) -> str:
    """A hook that saves its whole environment, NUL-separated, per event."""
    script = os.path.join(directory, "hook.sh")
    with open(script, "w") as f:
        f.write(f'#!/bin/sh\nenv -0 > "{directory}/$PULLSNAP_EVENT.$$.env"\n')
    os.chmod(script, 0o755)
    return script


def _hook_runs(directory: str, event: str) -> list[dict[str, str]]:
    found = []
    for name in sorted(os.listdir(directory)):
        if name.startswith(f"{event}.") and name.endswith(".env"):
            raw = Path(directory, name).read_bytes().decode()
            found.append(dict(item.split("=", 1) for item in raw.split("\0") if item))
    return found


@pytest.fixture
def hook_dir(site: Site) -> str:
    """A directory the grabber user (who runs the backup hooks) may write."""
    directory = os.path.join(site.root, "hooks")
    os.makedirs(directory, mode=0o755)
    pw = site.lab.grabber_pw()
    os.chown(directory, pw.pw_uid, pw.pw_gid)
    return directory


def test_on_success_and_on_failure_hooks_get_the_run(site: Site, hook_dir: str) -> None:
    script = _hook_script(hook_dir)
    site.regrab(on_success=[script], on_failure=script)  # an argv, and a /bin/sh -c string
    os.makedirs(site.src)
    Path(site.src, "f").write_text("x")
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    [env] = _hook_runs(hook_dir, "success")
    [name] = site.snapshots()
    assert env["PULLSNAP_HOST"] == "web1" and env["PULLSNAP_SNAPSHOT"] == name
    assert env["PULLSNAP_EXIT"] == "0" and env["PULLSNAP_STATE"] == "complete"
    assert env["PULLSNAP_SNAPSHOT_DIR"] == os.path.join(site.host_dir(), name)
    assert env["PULLSNAP_RECORD"] == os.path.join(site.host_dir(), name + ".json")
    assert env["USER"] == site.lab.grabber_user
    # A clean environment: nothing of sshd's session leaks into the hook.
    assert not [k for k in env if k.startswith("SSH_")]
    # A run that fails at the connect-back (wrong host key in the handoff).
    done = history.wrong_host_key_attempt(site.lab, site.root, (site.src,))
    assert done.returncode == errors.REFUSED
    [env] = _hook_runs(hook_dir, "failure")
    assert env["PULLSNAP_STATE"] == "failed" and env["PULLSNAP_EXIT"] == str(errors.REFUSED)
    assert "host key" in env["PULLSNAP_MESSAGE"]
    assert "Host key verification failed" in env["PULLSNAP_LOG_TAIL"]
    assert env["PULLSNAP_SNAPSHOT_DIR"] == ""


@pytest.mark.security
def test_hooks_hold_no_capabilities_under_the_launcher(super_site: Site, hook_dir: str) -> None:
    """The grabber holds the receiver's capabilities (permitted) for --super;
    a hook it starts gets none of them, in any set."""
    site = super_site
    script = os.path.join(hook_dir, "caps.sh")
    Path(script).write_text(f"#!/bin/sh\ngrep ^Cap /proc/self/status > {hook_dir}/caps\n")
    os.chmod(script, 0o755)
    site.regrab(on_success=[script])
    os.makedirs(site.src)
    done = site.run()
    assert done.returncode == errors.OK, done.stderr
    [name] = site.snapshots()
    record = HostRepo(site.repo, "web1").read_record(name)
    assert record is not None and record["mode"] == "super"
    sets = dict(line.split(":\t") for line in Path(hook_dir, "caps").read_text().splitlines())
    for key in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(sets[key], 16) == 0, (key, sets)


def test_failing_hook_is_a_warning_not_a_failed_backup(site: Site) -> None:
    site.regrab(on_success="echo 'cannot reach the pager' >&2; exit 3")
    os.makedirs(site.src)
    done = site.run("-v")
    assert done.returncode == errors.OK, done.stderr
    assert len(site.snapshots()) == 1
    assert "on_success hook /bin/sh exited with 3: cannot reach the pager" in (
        done.stdout + done.stderr
    )


def test_on_stale_runs_once_per_stale_spell(site: Site, tmp_path) -> None:
    out = str(tmp_path)
    script = _hook_script(out)
    site.regrab(on_stale=[script])
    os.makedirs(site.src)
    assert site.run().returncode == errors.OK
    grab = lambda *a: site.lab.grabber("--config", site.grabber_config, "status", *a)  # noqa: E731
    assert grab("--max-age", "0.001").returncode == errors.STALE
    [env] = _hook_runs(out, "stale")
    assert env["PULLSNAP_HOST"] == "web1" and env["PULLSNAP_SNAPSHOT"] == site.snapshots()[0]
    assert env["PULLSNAP_EXIT"] == str(errors.STALE) and env["PULLSNAP_MAX_AGE"] == "0.001"
    assert grab("--max-age", "0.001").returncode == errors.STALE
    assert len(_hook_runs(out, "stale")) == 1, "still the same spell: no second alert"
    assert grab("--max-age", "3650d").returncode == errors.OK  # fresh again: forgotten
    assert grab("--max-age", "0.001", "--no-hooks").returncode == errors.STALE
    assert len(_hook_runs(out, "stale")) == 1
    assert grab("--max-age", "0.001").returncode == errors.STALE
    assert len(_hook_runs(out, "stale")) == 2, "a new spell alerts again"


# --- the HTML report in a real browser ----------------------------------------


def test_html_report_renders_a_row_per_host(past: history.History, chromium: str) -> None:
    page = os.path.join(past.root, "report", "index.html")
    os.makedirs(os.path.dirname(page))
    done = past.grabber("report", "--html", page)
    assert done.returncode == errors.OK, done.stderr
    html = Path(page).read_text()
    # Self-contained: nothing to fetch, nothing to run.
    assert not re.search(r"<script|<link|<img|\bsrc=|\bhref=|url\(|@import", html, re.I)
    with tempfile.TemporaryDirectory(prefix="pullsnap-chromium-") as profile:
        dom = browser(chromium, profile, "--dump-dom", f"file://{page}")
        assert dom.returncode == 0, dom.stderr[-2000:]
        if past.store == "hardlink":  # one picture: the page does not depend on the store
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "report.png"
            shot.unlink(missing_ok=True)
            done = browser(chromium, profile, "--window-size=1280,480", f"--screenshot={shot}",
                            f"file://{page}")  # fmt: skip
            assert done.returncode == 0, done.stderr[-2000:]
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    row = lambda host: re.search(rf'<tr id="host-{host}".*?</tr>', dom.stdout, re.S)  # noqa: E731
    web1, web2 = row("web1"), row("web2")
    assert web1 is not None and web2 is not None, dom.stdout[-3000:]
    assert past.runs[-1] in web1.group(0) and "+1 suspect" in web1.group(0)
    [status] = json.loads(_status(past, "--json", "--max-age", "3650d", "web1").stdout)
    assert f'<td class="num">{human_size(status["used"])}</td>' in web1.group(0)
    web2_name = HostRepo(past.repo, "web2").good()[0].name
    assert web2_name in web2.group(0)
    # The chart: one bar per good run, a mark for the failed and the suspect one.
    assert web1.group(0).count("<rect") == len(past.runs)
    assert web1.group(0).count(">x<title>") == 1 and web1.group(0).count(">!<title>") == 1
    assert "STALE" not in web1.group(0)  # a day has not passed
