"""The login-shell entry (serve.serve) with fakes for what it spawns: who
may call, the handoff's deadline, the one result line and exit status, and
that the early programs end whatever happened.  The real thing, end to end:
tests/e2e and tests/security."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import pytest

from pullsnap import errors, handoff, report
from pullsnap.config import GrabberConfig
from pullsnap.grabber.session import serve, sessions
from pullsnap.grabber.store.repository import HostRepo

ARGV = ["grabber", "-c", "pullsnap-grabber host=web1"]
ENVIRON = {"SSH_ORIGINAL_COMMAND": "pullsnap", "SSH_CONNECTION": "192.0.2.7 50000 192.0.2.1 22"}


class FakeEarly:
    """What Early starts (private directory, agent, version probe), recorded."""

    made: ClassVar[list[FakeEarly]] = []

    def __init__(self, cfg: GrabberConfig) -> None:
        self.cfg = cfg
        self.closed = 0
        FakeEarly.made.append(self)

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # where the sweep looks
    FakeEarly.made = []
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    host_key = " ".join((tmp_path / "k.pub").read_text().split()[:2])
    h = handoff.Handoff(client_key=key.read_text(), host_key=host_key, port=2222, user="pullsnap",
                        paths=("/etc",))  # fmt: skip
    cfg = GrabberConfig(repository=str(tmp_path / "repo"), handoff_timeout=5)
    os.mkdir(cfg.repository, 0o700)
    return {"cfg": cfg, "handoff": h, "loaded": []}


def _serve(site: dict[str, Any], data: bytes, pull: Any, argv=ARGV, environ=ENVIRON):
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    out = io.StringIO()

    def load(path: str) -> GrabberConfig:
        site["loaded"].append(path)
        return site["cfg"]

    try:
        code = serve.serve(argv, environ, read_end, out, ("chown",), load=load, start=FakeEarly,
                           pull=pull)  # fmt: skip
    finally:
        os.close(read_end)
    lines = out.getvalue().splitlines()
    kind, result = report.parse_line(lines[-1]) if lines else (None, None)
    assert kind == report.RESULT, lines
    return code, result


def test_a_backup_gets_the_handoff_the_peer_and_the_held_capabilities(site) -> None:
    seen: dict[str, Any] = {}
    trash = Path(site["cfg"].repository, "web1", ".trash", "old.1")
    trash.mkdir(parents=True)

    def pull(cfg, host, peer, h, out, early, held) -> dict[str, Any]:
        seen.update(cfg=cfg, host=host, peer=peer, handoff=h, early=early, held=held)
        out.log("pulling")
        return {"status": "complete", "exit": errors.OK, "message": "", "snapshot": "x"}

    code, result = _serve(site, handoff.encode(site["handoff"]), pull)
    assert code == errors.OK and result["status"] == "complete"
    assert seen["host"] == "web1" and seen["peer"] == "192.0.2.7"  # from SSH_CONNECTION
    assert seen["handoff"] == site["handoff"] and seen["held"] == ("chown",)
    assert site["loaded"] == ["/etc/pullsnap/grabber.toml"]  # the binding named none
    [early] = FakeEarly.made
    assert seen["early"] is early and early.closed == 1
    assert not trash.exists()  # emptied after the verdict, outside the lock
    assert os.listdir(HostRepo(site["cfg"].repository, "web1").path) == [".trash"]


def test_the_exit_status_is_the_verdict(site) -> None:
    def pull(*args: object) -> dict[str, Any]:
        return {"status": "partial", "exit": errors.PARTIAL, "message": "some unreadable"}

    code, result = _serve(site, handoff.encode(site["handoff"]), pull)
    assert code == errors.PARTIAL and result["message"] == "some unreadable"


def test_an_unbound_key_is_refused_before_anything_starts(site) -> None:
    def pull(*args: object) -> dict[str, Any]:
        raise AssertionError("no pull for an unbound key")

    environ = {**ENVIRON, "SSH_ORIGINAL_COMMAND": "rsync --server"}
    code, result = _serve(site, handoff.encode(site["handoff"]), pull, environ=environ)
    assert code == errors.REFUSED
    assert result["status"] == "refused" and "not bound to a host" in result["message"]
    assert FakeEarly.made == [] and site["loaded"] == []


def test_a_host_over_its_session_cap_is_refused_before_anything_starts(site) -> None:
    def pull(*args: object) -> dict[str, Any]:
        raise AssertionError("no pull beyond the cap")

    site["cfg"] = GrabberConfig(repository=site["cfg"].repository, max_sessions_per_host=2)
    held = [sessions.hold(site["cfg"].repository, "web1", 2) for _ in range(2)]
    before = sorted(os.walk(site["cfg"].repository))
    code, result = _serve(site, handoff.encode(site["handoff"]), pull)
    assert code == errors.LOCKED and result["exit"] == errors.LOCKED
    assert "web1 already has 2 sessions open (max_sessions_per_host = 2)" in result["message"]
    assert FakeEarly.made == []  # no private directory, no agent
    assert sorted(os.walk(site["cfg"].repository)) == before
    held[0].close()

    def ok(*args: object) -> dict[str, Any]:
        return {"status": "complete", "exit": errors.OK, "message": ""}

    code, _ = _serve(site, handoff.encode(site["handoff"]), ok)
    assert code == errors.OK and len(FakeEarly.made) == 1
    held[1].close()


def test_a_missing_repository_is_refused_before_anything_starts(site, tmp_path) -> None:
    def pull(*args: object) -> dict[str, Any]:
        raise AssertionError("no pull without a repository")

    site["cfg"] = GrabberConfig(repository=str(tmp_path / "nowhere"))
    code, result = _serve(site, handoff.encode(site["handoff"]), pull)
    assert code == errors.FAILED and "does not exist -- fix: install -d -o " in result["message"]
    assert FakeEarly.made == [] and not (tmp_path / "nowhere").exists()


def test_a_handoff_that_never_comes_ends_at_its_deadline(site, monkeypatch) -> None:
    site["cfg"] = GrabberConfig(repository=site["cfg"].repository, handoff_timeout=0.2)
    read_end, write_end = os.pipe()  # open, silent
    out = io.StringIO()
    try:
        code = serve.serve(ARGV, ENVIRON, read_end, out, load=lambda path: site["cfg"],
                           start=FakeEarly, pull=lambda *a: {"exit": 0})  # fmt: skip
    finally:
        os.close(read_end)
        os.close(write_end)
    kind, result = report.parse_line(out.getvalue().splitlines()[-1])
    assert kind == report.RESULT
    assert code == errors.TIMEOUT and result["status"] == "failed"
    assert result["message"] == "the handoff did not arrive in time"
    assert FakeEarly.made[0].closed == 1  # the agent and the directory go anyway


@pytest.mark.parametrize(
    "failure, code, message",
    [(errors.NoSpace("need 1 GiB"), errors.NO_SPACE, "need 1 GiB"),
     (errors.Locked("web1: already running"), errors.LOCKED, "web1: already running"),
     (FileNotFoundError(2, "No such file or directory", "/usr/bin/rsync"), errors.FAILED,
      "web1: No such file or directory: /usr/bin/rsync"),
     (OSError(28, "No space left on device", "/srv/pullsnap/.pull-slots/ticket.1"),
      errors.NO_SPACE, "web1: No space left on device: /srv/pullsnap/.pull-slots/ticket.1")],
)  # fmt: skip
def test_a_failed_pull_is_one_result_line_and_its_exit_code(
    site, failure: Exception, code: int, message: str
) -> None:
    def pull(*args: object) -> dict[str, Any]:
        raise failure

    got, result = _serve(site, handoff.encode(site["handoff"]), pull)
    assert got == code and result == {"status": "failed", "exit": code, "message": message}
    assert FakeEarly.made[0].closed == 1


def test_a_bad_handoff_is_refused(site) -> None:
    fields = json.loads(handoff.encode(site["handoff"]).split(b"\n", 1)[1])
    fields["paths"] = ["relative"]
    body = json.dumps(fields).encode()
    data = f"PULLSNAP-HANDOFF 1 {len(body)}\n".encode() + body
    code, result = _serve(site, data, lambda *a: {"exit": 0})
    assert code == errors.REFUSED and "is not absolute" in result["message"]


def test_an_ssh_path_rsync_cannot_split_is_a_result_line_not_a_traceback(site) -> None:
    """pull.ssh_command refuses a word rsync -e would split (RemoteShellWord,
    a RunFailed): the login shell says so on its one result line."""
    from pullsnap.grabber.transfer import pull as transfer

    def pull(cfg, host, peer, h, out, early, held) -> dict[str, Any]:
        connect = transfer.ConnectBack(user=h.user, address=peer, port=h.port,
                                       known_hosts="/k", public_key_file="/k.pub",
                                       agent_socket="/a", connect_timeout=5)  # fmt: skip
        transfer.ssh_command("/opt/my ssh/ssh", connect)
        return {"exit": 0}

    code, result = _serve(site, handoff.encode(site["handoff"]), pull)
    assert code == errors.FAILED and result["status"] == "failed"
    assert "'/opt/my ssh/ssh'" in result["message"]
