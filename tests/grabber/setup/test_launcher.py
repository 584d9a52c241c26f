"""The grabber's capability launcher: build, install, and what it hands over.

The launcher execs `python -I -m <module>`; the module is fixed at build
time, so these tests build one whose module is a probe that reports its
capabilities, argv and environment, inside a throwaway venv.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import prctl
import pytest

import pullsnap
from pullsnap import caps
from pullsnap.grabber.setup import launcher

# DESIGN.md security properties: `./test.sh -m security` runs these.
pytestmark = pytest.mark.security

REPO = str(Path(pullsnap.__file__).resolve().parents[1])
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
ALLOWED_ENV = {
    "SSH_CONNECTION",
    "SSH_CLIENT",
    "SSH_ORIGINAL_COMMAND",
    "USER",
    "LOGNAME",
    "HOME",
    "SHELL",
    "LANG",
    "PATH",
}


def test_build_command_bakes_in_interpreter_and_module() -> None:
    argv = launcher.build_command("cc", "launcher.c", "/tmp/out", "/usr/bin/python3")
    assert argv[0] == "cc"
    assert '-DPULLSNAP_PYTHON="/usr/bin/python3"' in argv
    assert '-DGRABBER_MODULE="pullsnap.grabber.login"' in argv
    assert argv[argv.index("-o") + 1] == "/tmp/out"
    assert argv[-2:] == ["launcher.c", "-lcap"]


@pytest.mark.parametrize(
    "python", ["python3", '/usr/bin/py"thon', "/usr/bin/py\\thon", "/a/../b", "/usr/bin/x\n", ""]
)
def test_build_command_refuses_odd_interpreter_paths(python: str) -> None:
    with pytest.raises(launcher.LauncherError):
        launcher.build_command("cc", "launcher.c", "/tmp/out", python)


@pytest.mark.parametrize("module", ["os; x", "a..b", '".x', "", "pullsnap.grabber.cli "])
def test_build_command_refuses_odd_module_names(module: str) -> None:
    with pytest.raises(launcher.LauncherError):
        launcher.build_command("cc", "launcher.c", "/tmp/out", "/usr/bin/python3", module)


def test_setcap_text() -> None:
    assert launcher.setcap_text(("chown", "fowner")) == "cap_chown,cap_fowner=p"
    for bad in ((), ("chown", "everything")):
        with pytest.raises(launcher.LauncherError):
            launcher.setcap_text(bad)


@pytest.mark.parametrize(
    ("output", "held"),
    [
        ("/x cap_chown,cap_fowner=p\n", {"p": {"chown", "fowner"}}),
        ("/x = cap_chown,cap_fowner+p\n", {"p": {"chown", "fowner"}}),
        ("/x cap_chown=ep\n", {"e": {"chown"}, "p": {"chown"}}),
        ("", {}),
    ],
)
def test_parse_getcap(output: str, held: dict[str, set[str]]) -> None:
    assert launcher.parse_getcap(output) == held


def test_source_ships_as_package_data() -> None:
    import tomllib

    package = launcher.__package__
    assert importlib.resources.files(package).joinpath("launcher.c").is_file()
    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    assert "launcher.c" in data[package]


def test_install_refuses_without_a_compiler() -> None:
    with pytest.raises(launcher.LauncherError, match="gcc and libcap-dev"):
        launcher.install_launcher(
            "/nonexistent/shell",
            "root",
            "/usr/bin/python3",
            caps.RECEIVER_SUPER_CAPS,
            cc="pullsnap-no-such-cc",
        )


PROBE = """
import json, os, subprocess, sys
def status():
    with open("/proc/self/status") as f:
        return f.read()
out = {"argv": sys.argv[1:], "env": dict(os.environ), "isolated": sys.flags.isolated,
       "executable": sys.executable, "status": status()}
if sys.argv[1:2] == ["--chain"]:
    from pullsnap import caps, landlock
    caps.hold_quietly(caps.RECEIVER_SUPER_CAPS)
    out["held"] = status()
    base = sys.argv[2]
    from pullsnap.grabber.confine.receiverpolicy import receiver_confinement
    prepared = landlock.prepare(receiver_confinement(
        base + "/host", base + "/private", extra_read=("/proc",), programs=("/usr/bin/cat",)))
    def confine():
        landlock.enforce(prepared)
        caps.raise_ambient(caps.RECEIVER_SUPER_CAPS)
    child = subprocess.run(["/usr/bin/cat", "/proc/self/status", "/etc/shadow"],
                           preexec_fn=confine, capture_output=True, text=True)
    prepared.close()
    out["child"] = child.stdout
    out["child_error"] = [child.returncode, child.stderr]
    out["after"] = status()
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Installed:
    base: Path
    path: Path
    python: str
    grabber: pwd.struct_passwd
    outsider: pwd.struct_passwd


def _useradd(name: str) -> pwd.struct_passwd:
    subprocess.run(
        ["useradd", "--system", "-M", "-s", "/usr/sbin/nologin", "-p", "*", name], check=True
    )
    return pwd.getpwnam(name)


@pytest.fixture(scope="module")
def installed() -> Iterator[Installed]:
    suffix = os.getpid() % 100000
    users = []
    base = Path(tempfile.mkdtemp(prefix="pullsnap-launcher-"))
    try:
        base.chmod(0o755)
        users = [_useradd(f"pullsnap-tg{suffix}"), _useradd(f"pullsnap-to{suffix}")]
        venv = base / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
        (site,) = venv.glob("lib/python3*/site-packages")
        (site / "pullsnap_probe.py").write_text(PROBE)
        # Lets the probe import pullsnap and python-prctl from where tests run.
        (site / "pullsnap_probe.pth").write_text(f"{REPO}\n{os.path.dirname(prctl.__file__)}\n")
        for name in ("host", "private"):
            (base / name).mkdir()
            os.chown(base / name, users[0].pw_uid, users[0].pw_gid)
        python = str(venv / "bin/python")
        path = base / "shell"
        group = users[0].pw_name  # useradd made the user's own group
        launcher.install_launcher(
            str(path), group, python, caps.RECEIVER_SUPER_CAPS, module="pullsnap_probe"
        )
        yield Installed(base, path, python, *users)
    finally:
        shutil.rmtree(base)
        for user in users:
            subprocess.run(["userdel", user.pw_name], check=True)


def _login(user: pwd.struct_passwd, shell: Path, *args: str, env: dict[str, str]):
    """Start `shell` as sshd would: from a process of `user` without capabilities."""
    argv = [
        SETPRIV,
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--init-groups",
        "/bin/sh",
        "-c",
        'exec "$0" "$@"',
        str(shell),
        *args,
    ]
    return subprocess.run(argv, env=env, cwd="/", capture_output=True, text=True, timeout=60)


def _caps(status: str) -> caps.CapState:
    return caps.parse_proc_status(status)


@pytest.mark.root
def test_launcher_is_installed_as_specified(installed: Installed) -> None:
    info = installed.path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o750
    assert (info.st_uid, info.st_gid) == (0, installed.grabber.pw_gid)
    getcap = subprocess.run(["getcap", installed.path], capture_output=True, text=True)
    assert launcher.parse_getcap(getcap.stdout) == {"p": set(caps.RECEIVER_SUPER_CAPS)}
    assert not Path(f"{installed.path}.new").exists()


@pytest.mark.root
@pytest.mark.security
def test_launcher_hands_over_caps_and_a_fixed_environment(installed: Installed) -> None:
    env = {
        "SSH_ORIGINAL_COMMAND": "rsync --server",
        "SSH_CONNECTION": "192.0.2.1 40000 192.0.2.2 22",
        "LANG": "C.UTF-8",
        "HOME": installed.grabber.pw_dir,
        "PATH": "/attacker/bin",
        "LD_PRELOAD": "/attacker/lib.so",
        "PYTHONPATH": "/attacker",
        "PYTHONSTARTUP": "/attacker/start.py",
        "PYTHONINSPECT": "1",
        "BASH_ENV": "/attacker/env",
    }
    done = _login(installed.grabber, installed.path, "-c", "rsync --server x", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["argv"] == ["-c", "rsync --server x"]
    assert report["isolated"] == 1
    assert report["executable"] == installed.python
    assert set(report["env"]) <= ALLOWED_ENV
    assert report["env"]["PATH"] == "/usr/sbin:/usr/bin:/sbin:/bin"
    for name in ("SSH_ORIGINAL_COMMAND", "SSH_CONNECTION", "LANG", "HOME"):
        assert report["env"][name] == env[name]
    state = _caps(report["status"])
    receiver = set(caps.RECEIVER_SUPER_CAPS)
    assert state.ambient == state.permitted == state.inheritable == state.effective == receiver


@pytest.mark.root
@pytest.mark.security
def test_outsider_cannot_run_the_launcher(installed: Installed) -> None:
    done = _login(installed.outsider, installed.path, "-c", "x", env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 126
    assert "Permission denied" in done.stderr
    assert done.stdout == ""


@pytest.mark.root
@pytest.mark.security
def test_only_the_confined_child_gets_the_caps(installed: Installed) -> None:
    done = _login(
        installed.grabber,
        installed.path,
        "--chain",
        str(installed.base),
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    receiver = set(caps.RECEIVER_SUPER_CAPS)
    for moment in ("held", "after"):
        held = _caps(report[moment])
        assert held.permitted == held.inheritable == receiver, moment
        assert held.effective == held.ambient == frozenset(), moment
    child = _caps(report["child"])
    assert child.ambient == child.effective == child.permitted == receiver
    assert child.no_new_privs
    # It holds CAP_DAC_OVERRIDE effective, so only Landlock can refuse this:
    code, stderr = report["child_error"]
    assert code == 1
    assert "/etc/shadow: Permission denied" in stderr
