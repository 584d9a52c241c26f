"""The gate's effectful half (initiator/gatecmd.py), with its exec, its
confinement and its lifeline watch passed in: each refusal is one
`gate error:` line and exit 1, nothing reaches stdout before the exec.
The parser's checks are test_gate.py's; here also the gate as a real rsync
server, end to end."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pullsnap import errors
from pullsnap.initiator import gate, gatecmd
from pullsnap.initiator.gate import parse
from tests.initiator.gatelines import REPO, RSYNC, WEIRD, sender

# The gate is DESIGN.md security property 3: `./test.sh -m security` runs these.
pytestmark = pytest.mark.security


@pytest.fixture
def src(tmp_path: Path) -> str:
    """A source root of this test's own (the shared `root` is session-wide)."""
    (tmp_path / "src" / "etc").mkdir(parents=True)
    return str(tmp_path / "src")


def _command(root: str) -> dict[str, str]:
    return {"SSH_ORIGINAL_COMMAND": f"rsync --server --sender -re.iLsfxCIvu . {root}/etc"}


class Gate:
    """The three effects, recorded."""

    def __init__(self) -> None:
        self.execs: list[tuple] = []
        self.confined: list[tuple[str, ...]] = []
        self.watched: list[str] = []

    def run(self, settings: gatecmd.GateSettings, environ, **effects) -> int:
        return gatecmd.run(
            settings, environ,
            execve=effects.get("execve", lambda *a: self.execs.append(a)),
            confine=effects.get("confine", lambda p: self.confined.append(p.roots)),
            watch=effects.get("watch", self.watched.append),
        )  # fmt: skip


def test_settings_from_the_command_line(src: str) -> None:
    s = gatecmd.settings_from(["--root", src, "--root", "/srv", "--nice", "5", "--ionice",
                               "idle", "--no-confine-root", "--log", "/run/x/gate.log",
                               "--lifeline", "/run/x/lock", "--once", "/run/x/once"])  # fmt: skip
    assert s.policy.roots == (src, "/srv") and not s.policy.confine_root
    assert (s.nice, s.ionice, s.log, s.lifeline, s.once, s.dry_run) == (
        5, "idle", "/run/x/gate.log", "/run/x/lock", "/run/x/once", False
    )  # fmt: skip


def test_the_order_is_watch_confine_exec(src: str, tmp_path: Path, capsys) -> None:
    g = Gate()
    lock = str(tmp_path / "lock")
    settings = gatecmd.GateSettings(gate.GatePolicy(roots=(src,)), lifeline=lock)
    g.run(settings, _command(src))
    assert g.watched == [lock] and g.confined == [(src,)]
    [(program, argv, env)] = g.execs
    assert program == argv[0] and argv[1:3] == ["--server", "--sender"]
    assert env == gatecmd.EXEC_ENV
    assert capsys.readouterr() == ("", "")


def test_only_the_first_session_of_a_door_runs(src: str, tmp_path: Path, capsys) -> None:
    g = Gate()
    once = tmp_path / "once"
    settings = gatecmd.GateSettings(gate.GatePolicy(roots=(src,)), once=str(once))
    g.run(settings, _command(src))
    assert once.exists() and len(g.execs) == 1
    assert g.run(settings, _command(src)) == 1 and len(g.execs) == 1
    assert capsys.readouterr().err == "gate error: this door has run its one session already\n"


def test_a_door_whose_run_is_over_refuses(src: str, tmp_path: Path, capsys) -> None:
    g = Gate()
    gone = tmp_path / "gone" / "once"  # the run directory is removed
    settings = gatecmd.GateSettings(gate.GatePolicy(roots=(src,)), once=str(gone))
    assert g.run(settings, _command(src)) == 1 and g.execs == []
    assert capsys.readouterr().err.startswith("gate error: the initiator's run is over (")


def test_a_refusal_is_logged_and_said_once(src: str, tmp_path: Path, capsys) -> None:
    g = Gate()
    log = tmp_path / "gate.log"
    settings = gatecmd.GateSettings(gate.GatePolicy(roots=(src,)), log=str(log))
    environ = {"SSH_ORIGINAL_COMMAND": "rsync --server -r . /etc", "SSH_AUTH_SOCK": "/x"}
    assert g.run(settings, environ) == 1 and g.execs == [] and g.confined == []
    entry = json.loads(log.read_text())
    assert entry["refused"] and entry["environment"] == ["SSH_AUTH_SOCK", "SSH_ORIGINAL_COMMAND"]
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("gate error: ")


def test_a_lifeline_already_released_stops_the_sender(src: str, capsys) -> None:
    def released(path: str) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    g = Gate()
    settings = gatecmd.GateSettings(gate.GatePolicy(roots=(src,)), lifeline="/run/x/lock")
    assert g.run(settings, _command(src), watch=released) == 1
    assert g.execs == [] and g.confined == []
    assert capsys.readouterr().err == (
        "gate error: the initiator's run is over (No such file or directory)\n"
    )


def test_a_sender_that_cannot_be_confined_is_not_started(src: str, capsys) -> None:
    def refuse(policy: gate.GatePolicy) -> None:
        raise errors.CapabilityError("no CAP_DAC_READ_SEARCH")

    g = Gate()
    assert g.run(gatecmd.GateSettings(gate.GatePolicy(roots=(src,))), _command(src),
                 confine=refuse) == 1  # fmt: skip
    assert g.execs == []
    assert capsys.readouterr().err == (
        "gate error: cannot confine the sender: capabilities: no CAP_DAC_READ_SEARCH\n"
    )


def test_an_exec_that_fails_is_one_line(src: str, capsys) -> None:
    def missing(path: str, argv: list[str], env: dict[str, str]) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    g = Gate()
    settings = gatecmd.GateSettings(gate.GatePolicy(roots=(src,), rsync="/nowhere/rsync"))
    assert g.run(settings, _command(src), execve=missing) == 1
    assert capsys.readouterr().err == (
        "gate error: cannot run /nowhere/rsync: No such file or directory\n"
    )


def test_ionice_on_an_unknown_machine_is_a_warning(monkeypatch, capsys) -> None:
    monkeypatch.setattr(gatecmd.platform, "machine", lambda: "mips")
    gatecmd._set_ioprio("idle")
    assert capsys.readouterr().err == "gate warning: ionice is not supported on mips, skipped\n"


@pytest.mark.parametrize("text, ok", [("0", True), ("19", True), ("20", False), ("-1", False),
                                      ("٣", False), ("x", False)])  # fmt: skip
def test_nice_levels(text: str, ok: bool) -> None:
    if ok:
        assert gatecmd._nice(text) == int(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="is not a nice level 0-19"):
            gatecmd._nice(text)


def test_the_log_is_appended_never_followed(tmp_path: Path) -> None:
    log = tmp_path / "gate.log"
    gatecmd._append_log(str(log), {"SSH_CONNECTION": "a b c d"}, {"argv": ["x"]})
    gatecmd._append_log(str(log), {}, {"refused": "no"})
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert first["ssh_connection"] == "a b c d" and first["argv"] == ["x"]
    assert second["refused"] == "no" and second["environment"] == []
    os.unlink(log)
    log.symlink_to(tmp_path / "target")
    with pytest.raises(OSError):
        gatecmd._append_log(str(log), {}, {})
    assert not (tmp_path / "target").exists()


# --- the runner (gatecmd) -----------------------------------------------------


def run_gate(command: str | None, *args: str, extra_env: dict | None = None):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(extra_env or {})}
    if command is not None:
        env["SSH_ORIGINAL_COMMAND"] = command
    argv = [sys.executable, "-m", "pullsnap.initiator.gatecmd", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_dry_run_prints_the_argv_as_json(real_lines, root, policy):
    done = run_gate(real_lines[-1], "--dry-run", "--root", root)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == parse(real_lines[-1], policy)


@pytest.mark.parametrize(
    "command",
    [
        None,
        sender("-rs", "/etc"),
        "rsync --server --sender -r . /etc; id",
        "rsync --server -r . /etc",
    ],
)
def test_refusal_is_one_stderr_line_and_exit_1(root, command):
    done = run_gate(command, "--dry-run", "--root", root)
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("gate error: ")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--root", "etc"],
        ["--root", "/etc", "--nice", "20"],
        ["--root", "/", "--ionice", "idle:3"],
    ],
)
def test_bad_gate_arguments_are_usage_errors(args):
    assert run_gate("rsync", "--dry-run", *args).returncode == 2


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        ("none", 0),
        ("idle", 3 << 13),
        ("best-effort", 2 << 13 | 4),
        ("best-effort:7", 2 << 13 | 7),
        ("realtime:0", 1 << 13),
        ("realtime", 1 << 13 | 4),
    ],
)
def test_ioprio_values(spec, value):
    assert gatecmd.ioprio_value(spec) == value


@pytest.mark.parametrize(
    "spec", ["idle:3", "none:0", "best-effort:8", "best-effort:", "rt", "best-effort:07"]
)
def test_bad_ioprio_specs(spec):
    with pytest.raises(ValueError):
        gatecmd.ioprio_value(spec)


def test_ioprio_syscall_numbers():
    got = {m: gatecmd.ioprio_syscall(m) for m in ("x86_64", "i686", "armv7l", "ppc64le", "mips")}
    assert got == {"x86_64": 251, "i686": 289, "armv7l": 314, "ppc64le": 273, "mips": None}


def test_exec_gets_a_fixed_environment_and_the_log_a_line(tmp_path, root, policy, capsys):
    calls = []
    log = tmp_path / "gate.log"
    settings_ = gatecmd.GateSettings(policy, log=str(log))
    environ = {
        "SSH_ORIGINAL_COMMAND": sender("-r", f"{root}/etc"),
        "SSH_CONNECTION": "192.0.2.1 5555 192.0.2.2 22",
        "LD_PRELOAD": "/tmp/evil.so",
    }
    gatecmd.run(settings_, environ, execve=lambda *a: calls.append(a), confine=lambda p: None)
    [(path, argv, env)] = calls
    assert path == RSYNC and argv == parse(environ["SSH_ORIGINAL_COMMAND"], policy)
    assert env == {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
    entry = json.loads(log.read_text())
    assert entry["ssh_connection"] == environ["SSH_CONNECTION"] and entry["argv"] == argv
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert capsys.readouterr().out == ""


def test_log_through_a_symlink_is_refused(tmp_path, root, policy, capsys):
    target = tmp_path / "authorized_keys"
    (tmp_path / "gate.log").symlink_to(target)
    settings_ = gatecmd.GateSettings(policy, log=str(tmp_path / "gate.log"))
    calls = []
    environ = {"SSH_ORIGINAL_COMMAND": sender("-r", f"{root}/etc")}
    run = gatecmd.run(settings_, environ, execve=lambda *a: calls.append(a), confine=lambda p: None)
    assert run == 1
    assert calls == [] and not target.exists()
    assert capsys.readouterr().err.startswith("gate error: cannot write log ")


def test_exec_applies_nice_ionice_and_confines(root, policy):
    """In a forked child: the priority is lowered and the confinement applied
    before exec; what the exec would get is reported back through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child plays the gate up to its exec
        os.close(read_end)
        confined = []

        def execve(path, argv, env):
            io = subprocess.run(["ionice", "-p", str(os.getpid())], capture_output=True, text=True)
            report = {"nice": os.getpriority(os.PRIO_PROCESS, 0), "io": io.stdout.strip(),
                      "confined": confined, "env": env}  # fmt: skip
            os.write(write_end, json.dumps(report).encode())
            os._exit(0)

        settings_ = gatecmd.GateSettings(policy, nice=7, ionice="idle")
        environ = {"SSH_ORIGINAL_COMMAND": sender("-r", f"{root}/etc"), "LEAK_ME": "1"}
        gatecmd.run(settings_, environ, execve=execve, confine=lambda p: confined.append(p.roots))
        os._exit(1)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        report = json.loads(f.read() or "null")
    os.waitpid(pid, 0)
    assert report is not None
    assert report["nice"] == 7 and report["io"] == "idle"
    assert report["confined"] == [list(policy.roots)]
    assert report["env"] == {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}


@pytest.mark.e2e
@pytest.mark.security
def test_the_exec_is_confined_to_the_roots(tmp_path, root):
    """The sender's Landlock rules (what `confine_sender` applies before the
    exec) let it read inside the roots and nothing outside, root or not."""
    outside = tmp_path / "outside.txt"
    outside.write_text("secret\n")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import sys\n"
        "from pullsnap import landlock\n"
        "from pullsnap.initiator.senderpolicy import sender_confinement\n"
        f"landlock.restrict_self(sender_confinement([{root!r}], '/usr/bin/rsync'))\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        open(path).read(); print('read', path)\n"
        "    except OSError as e:\n"
        "        print('denied', path, e.errno)\n"
    )
    inside = f"{root}/etc/hosts"
    result = subprocess.run(
        [sys.executable, str(probe), inside, str(outside), "/etc/shadow"],
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    assert f"read {inside}" in lines
    assert f"denied {outside} 13" in lines and "denied /etc/shadow 13" in lines


# --- end to end: the gate as a real rsync server --------------------------------


@pytest.fixture
def remote_shell(tmp_path, root):
    """An `rsync -e` program that plays sshd: command line in, gate exec'd."""

    def make(*gate_args: str) -> str:
        script = tmp_path / f"rsh{len(list(tmp_path.glob('rsh*')))}"
        argv = [sys.executable, "-m", "pullsnap.initiator.gatecmd", "--root", root, *gate_args]
        script.write_text(
            "#!/bin/sh\n"
            "shift  # the host name\n"
            'SSH_ORIGINAL_COMMAND="$*"; export SSH_ORIGINAL_COMMAND\n'
            f"PYTHONPATH={shlex.quote(str(REPO))}; export PYTHONPATH\n"
            f"exec {' '.join(shlex.quote(a) for a in argv)}\n"
        )
        script.chmod(0o755)
        return str(script)

    return make


def rsync(*args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin"}
    return subprocess.run([RSYNC, *args], env=env, capture_output=True, text=True, timeout=60)


def listing(top: Path) -> dict[str, str]:
    return {
        str(p.relative_to(top)): p.read_text() if p.is_file() else ""
        for p in sorted(top.rglob("*"))
        if not p.is_symlink()
    }


@pytest.mark.e2e
def test_pull_through_the_gate_copies_the_files(tmp_path, root, remote_shell):
    rsh = remote_shell()
    dest = tmp_path / "dest"
    done = rsync("-aHAX", "--numeric-ids", "-e", rsh, f"x:{root}/{WEIRD}/", f"{dest}/")
    assert done.returncode == 0, done.stderr
    assert listing(dest) == listing(Path(root) / WEIRD) == {"f": "weird\n"}
    done = rsync("-aR", "-e", rsh, f"x:{root}/etc", f":{root}/home/a b", f"{dest}2/")
    assert done.returncode == 0, done.stderr
    assert (dest.parent / f"dest2{root}/etc/hosts").read_text() == "hosts\n"
    assert (dest.parent / f"dest2{root}/home/a b").is_dir()


@pytest.mark.e2e
def test_dry_run_probe_through_the_gate(tmp_path, root, remote_shell):
    done = rsync("-an", "-e", remote_shell(), f"x:{root}/etc/", f"{tmp_path}/probe/")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "probe" / "hosts").exists()


@pytest.mark.e2e
@pytest.mark.security
def test_remove_source_files_is_refused_and_the_source_stays(tmp_path, root, remote_shell):
    before = listing(Path(root))
    done = rsync(
        "-a", "--remove-source-files", "-e", remote_shell(), f"x:{root}/etc/", f"{tmp_path}/d/"
    )
    assert done.returncode != 0
    assert "gate error: option --remove-source-files is not allowed" in done.stderr
    assert listing(Path(root)) == before and (Path(root) / "etc" / "hosts").exists()


@pytest.mark.e2e
@pytest.mark.security
def test_merge_file_outside_the_roots_is_not_read(tmp_path, tree, root, remote_shell):
    # A per-directory merge rule travels in the protocol, not in argv.  With
    # the "-" modifier every line of the named file is an exclude pattern, so
    # the client could read an outside file off which names go missing.  (The
    # sender reads "../rules" beside the root; a name with a further slash it
    # does not resolve that way.)
    (tree / "rules").write_text("hosts\n")
    rule = "--filter=:- ../rules"
    confined = rsync("-a", rule, "-e", remote_shell(), f"x:{root}/", f"{tmp_path}/c/")
    assert confined.returncode == 0, confined.stderr
    assert (tmp_path / "c" / "etc" / "hosts").exists()
    # Landlock alone (no --confine-root) keeps the outside file unread too.
    landlocked = rsync(
        "-a", rule, "-e", remote_shell("--no-confine-root"), f"x:{root}/", f"{tmp_path}/l/"
    )
    assert landlocked.returncode == 0, landlocked.stderr
    assert (tmp_path / "l" / "etc" / "hosts").exists()
    # The control: a plain rsync server, no gate, reads it and the
    # client loses `hosts`, so the attack is real.
    plain = tmp_path / "plain-rsh"
    plain.write_text('#!/bin/sh\nshift\nexec "$@"\n')
    plain.chmod(0o755)
    loose = rsync("-a", rule, "-e", str(plain), f"x:{root}/", f"{tmp_path}/p/")
    assert loose.returncode == 0, loose.stderr
    assert (tmp_path / "p" / "etc").is_dir() and not (tmp_path / "p" / "etc" / "hosts").exists()


def test_a_door_runs_the_gate_once(tmp_path, root, policy, capsys):
    """A second session over the one connection (sshd's MaxSessions counts
    only open ones) is refused before its command is even read."""
    settings_ = gatecmd.GateSettings(policy, once=str(tmp_path / "gate.once"))
    environ = {"SSH_ORIGINAL_COMMAND": sender("-r", f"{root}/etc")}
    calls = []

    def session() -> int:
        return gatecmd.run(settings_, environ, execve=lambda *a: calls.append(a),
                           confine=lambda p: None)  # fmt: skip

    session()
    assert len(calls) == 1 and capsys.readouterr().err == ""
    assert session() == 1 and len(calls) == 1
    assert capsys.readouterr().err == "gate error: this door has run its one session already\n"
    assert gatecmd.settings_from(["--root", root, "--once", "/run/x/gate.once"]).once == (
        "/run/x/gate.once"
    )


def test_gate_help_says_how_to_try_a_command_line():
    text = gatecmd._parser().format_help()
    assert "SSH_ORIGINAL_COMMAND=" in text and "initiator gate --dry-run --root /etc" in text
    for words in ("a source the sender may read", "the rsync to exec", "nice level",
                  "I/O class", "one JSON line per command"):  # fmt: skip
        assert words in " ".join(text.split())
