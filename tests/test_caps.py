"""pullsnap.caps: parsing /proc, dropping to a user, holding caps quietly.

The real tests run each scenario in a fresh `python -c` child: capability
changes are per thread and irreversible, and pytest itself may have threads.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import prctl
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pullsnap
from pullsnap import caps
from pullsnap.errors import CapabilityError

# DESIGN.md security properties: `./test.sh -m security` runs these.
pytestmark = pytest.mark.security

REPO = str(Path(pullsnap.__file__).resolve().parents[1])

SAMPLE = """\
Name:\tgrabber
Umask:\t0022
Uid:\t998\t998\t998\t998
Threads:\t1
CapInh:\t0000000000000004
CapPrm:\t0000000000000004
CapEff:\t0000000000000000
CapBnd:\t000001ffffffffff
CapAmb:\t0000000000000004
NoNewPrivs:\t1
Seccomp:\t0
"""


def test_parse_proc_status_sample() -> None:
    state = caps.parse_proc_status(SAMPLE)
    assert state.inheritable == state.permitted == state.ambient == {"dac_read_search"}
    assert state.effective == frozenset()
    assert state.bounding == frozenset(caps.CAP_NAMES)
    assert state.no_new_privs is True


def test_parse_proc_status_names_unknown_bits_by_number() -> None:
    text = SAMPLE.replace("CapEff:\t0000000000000000", "CapEff:\t0000060000000001")
    assert caps.parse_proc_status(text).effective == {"chown", "cap_41", "cap_42"}


@pytest.mark.parametrize("drop", ["CapPrm", "CapBnd"])
def test_parse_proc_status_refuses_missing_masks(drop: str) -> None:
    text = "".join(line for line in SAMPLE.splitlines(True) if not line.startswith(drop))
    with pytest.raises(CapabilityError):
        caps.parse_proc_status(text)


def test_parse_proc_status_refuses_garbage_mask() -> None:
    with pytest.raises(CapabilityError):
        caps.parse_proc_status(SAMPLE.replace("0000000000000004", "zz", 1))


@given(st.integers(min_value=0, max_value=(1 << 41) - 1))
def test_mask_round_trips_through_names(mask: int) -> None:
    text = SAMPLE.replace("CapPrm:\t0000000000000004", f"CapPrm:\t{mask:016x}")
    names = caps.parse_proc_status(text).permitted
    assert sum(1 << caps.CAP_NUMBERS[name] for name in names) == mask


def test_cap_table_agrees_with_python_prctl() -> None:
    assert len(caps.CAP_NAMES) == 41
    for number, name in enumerate(caps.CAP_NAMES):
        constant = getattr(prctl, f"CAP_{name.upper()}", None)
        assert constant in (None, number), name


def test_named_sets_are_known_capabilities() -> None:
    for named in (caps.INITIATOR_CAPS, caps.GRABBER_LAUNCHER_CAPS):
        assert set(named) <= set(caps.CAP_NAMES)
    assert set(caps.RECEIVER_SUPER_CAPS) < set(caps.GRABBER_LAUNCHER_CAPS)
    assert "sys_admin" not in caps.RECEIVER_SUPER_CAPS


def test_unknown_capability_is_refused() -> None:
    with pytest.raises(CapabilityError):
        caps.missing(["dac_read_search", "cap_everything"])


def test_drop_to_unknown_user_is_refused() -> None:
    with pytest.raises(CapabilityError, match="no such user"):
        caps.drop_to_user("pullsnap-no-such-user", ["dac_read_search"])


def _python(script: str, prefix: tuple[str, ...] = ()) -> dict:
    """Run `script` in a fresh interpreter (optionally under `prefix`); it prints JSON."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": REPO}
    done = subprocess.run(
        [*prefix, sys.executable, "-c", script],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_raise_ambient_without_the_capability_fails() -> None:
    result = _python(
        "import json\n"
        "from pullsnap import caps\n"
        "caps.hold_quietly(())\n"
        "try:\n"
        "    caps.raise_ambient(['dac_read_search'])\n"
        "except caps.CapabilityError as exc:\n"
        "    print(json.dumps(str(exc)))\n"
    )
    assert "PR_CAP_AMBIENT" in result


@pytest.fixture(scope="module")
def user() -> Iterator[pwd.struct_passwd]:
    name = f"pullsnap-tc{os.getpid() % 100000}"
    subprocess.run(
        ["useradd", "--system", "-M", "-s", "/usr/sbin/nologin", "-p", "*", name], check=True
    )
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=True)


@pytest.fixture(scope="module")
def secret() -> Iterator[str]:
    """A root-only 0600 file in a directory everyone may search."""
    directory = tempfile.mkdtemp(prefix="pullsnap-caps-")
    os.chmod(directory, 0o755)
    path = os.path.join(directory, "secret")
    with open(path, "w") as file:
        file.write("root only\n")
    os.chmod(path, 0o600)
    try:
        yield path
    finally:
        shutil.rmtree(directory)


# Prints this process's caps and whether `cat SECRET` works without and
# with the capability raised ambient around the spawn.
_REPORT = """
import dataclasses, json, os, subprocess
from pullsnap import caps
def cat():
    return subprocess.run(["cat", SECRET], capture_output=True).returncode == 0
state = caps.read_state()
plain = cat()
with caps.ambient(["dac_read_search"]):
    raised = cat()
after = caps.read_state()
print(json.dumps({
    "state": {k: sorted(v) if isinstance(v, frozenset) else v
              for k, v in dataclasses.asdict(state).items()},
    "ambient_after": sorted(after.ambient),
    "uid": os.getresuid(), "gid": os.getresgid(), "groups": os.getgroups(),
    "env": {k: os.environ.get(k) for k in ("HOME", "USER", "LOGNAME")},
    "plain": plain, "raised": raised,
}))
"""


@pytest.mark.root
@pytest.mark.security
def test_drop_to_user_keeps_only_the_named_capability(user: pwd.struct_passwd, secret: str) -> None:
    script = (
        f"from pullsnap import caps\ncaps.drop_to_user({user.pw_name!r}, ['dac_read_search'])\n"
        f"SECRET = {secret!r}\n{_REPORT}"
    )
    result = _python(script)
    state = result["state"]
    assert state["permitted"] == state["inheritable"] == ["dac_read_search"]
    assert state["bounding"] == ["dac_read_search"]
    assert state["effective"] == state["ambient"] == []
    assert state["no_new_privs"] is True
    assert result["uid"] == [user.pw_uid] * 3
    assert result["gid"] == [user.pw_gid] * 3
    assert set(result["groups"]) <= {user.pw_gid}
    assert result["env"] == {"HOME": user.pw_dir, "USER": user.pw_name, "LOGNAME": user.pw_name}
    assert result["plain"] is False, "a child without ambient caps read a root-only file"
    assert result["raised"] is True, "the child given the ambient cap could not read"
    assert result["ambient_after"] == []


def _setpriv(user: pwd.struct_passwd, cap: str) -> tuple[str, ...]:
    """What systemd's User= + AmbientCapabilities= look like to the process."""
    return (
        "setpriv",
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--init-groups",
        f"--inh-caps=+{cap}",
        f"--ambient-caps=+{cap}",
    )


@pytest.mark.root
@pytest.mark.security
def test_hold_quietly_leaves_nothing_effective(user: pwd.struct_passwd, secret: str) -> None:
    before = _python(
        "import json\nfrom pullsnap import caps\n"
        "print(json.dumps(sorted(caps.read_state().effective)))",
        _setpriv(user, "dac_read_search"),
    )
    assert before == ["dac_read_search"], "setpriv did not hand over the capability"
    script = (
        "from pullsnap import caps\ncaps.hold_quietly(['dac_read_search'])\n"
        f"SECRET = {secret!r}\n{_REPORT}"
    )
    result = _python(script, _setpriv(user, "dac_read_search"))
    state = result["state"]
    assert state["permitted"] == state["inheritable"] == ["dac_read_search"]
    assert state["effective"] == state["ambient"] == []
    assert result["uid"] == [user.pw_uid] * 3
    assert result["plain"] is False
    assert result["raised"] is True
    assert result["ambient_after"] == []


@pytest.mark.root
def test_hold_quietly_refuses_what_was_not_granted(user: pwd.struct_passwd) -> None:
    result = _python(
        "import json\nfrom pullsnap import caps\n"
        "try:\n    caps.hold_quietly(['dac_read_search', 'chown'])\n"
        "except caps.CapabilityError as exc:\n    print(json.dumps(str(exc)))\n",
        _setpriv(user, "dac_read_search"),
    )
    assert "chown" in result
