"""Build and install the grabber's capability launcher (launcher.c).

The grabber is the login shell of an unprivileged user, so it starts with no
capabilities.  For `rsync --super` the operator installs a tiny C program as
that login shell instead: file capabilities `cap_...=p`, mode 0750, owned
root:<grabber's group>.  It raises its capabilities ambient and execs the
compiled-in interpreter as `python -I -m pullsnap.grabber.login ARGS...`.

Order matters when installing: chown(2) removes a file's security.capability
xattr (capabilities(7), "File capabilities"), so ownership and mode are set
first, then setcap(8), then getcap(8) checks what the kernel will see, and
only then is the file renamed into place.
"""

from __future__ import annotations

import contextlib
import grp
import importlib.resources
import os
import pwd
import re
import sys
from collections.abc import Sequence

from pullsnap import caps as capabilities
from pullsnap import oneshot
from pullsnap.errors import PullsnapError

DEFAULT_LAUNCHER = "/usr/local/lib/pullsnap/grabber-launcher"
GRABBER_MODULE = "pullsnap.grabber.login"
_MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
# The path becomes a C string literal: refuse anything that could end it.
_PATH_RE = re.compile(r"^/[A-Za-z0-9._+/-]*$")
_HARDENING = (
    "-O2",
    "-Wall",
    "-Wextra",
    "-D_FORTIFY_SOURCE=2",
    "-fstack-protector-strong",
    "-fPIE",
    "-pie",
    "-Wl,-z,relro,-z,now",
)


class LauncherError(PullsnapError):
    """launcher: {}"""


def build_command(
    cc: str, source: str, output: str, python: str, module: str = GRABBER_MODULE
) -> list[str]:
    """The compiler argv that bakes `python` and `module` into the launcher."""
    if not _PATH_RE.fullmatch(python) or "/../" in f"{python}/":
        raise LauncherError(f"interpreter path {python!r} must be absolute and plain")
    if not _MODULE_RE.fullmatch(module):
        raise LauncherError(f"bad module name {module!r}")
    return [
        cc,
        *_HARDENING,
        f'-DPULLSNAP_PYTHON="{python}"',
        f'-DGRABBER_MODULE="{module}"',
        "-o",
        output,
        source,
        "-lcap",
    ]


def setcap_text(caps: Sequence[str]) -> str:
    """setcap(8) text for `caps` permitted only, e.g. "cap_chown,cap_fowner=p"."""
    unknown = [cap for cap in caps if cap not in capabilities.CAP_NUMBERS]
    if unknown or not caps:
        raise LauncherError(f"bad capability list {list(caps)}")
    return ",".join(f"cap_{cap}" for cap in caps) + "=p"


def parse_getcap(output: str) -> dict[str, frozenset[str]]:
    """getcap(8) output ("PATH cap_a,cap_b=p" or "PATH = cap_a+p") as flag -> caps."""
    _, _, text = output.strip().partition(" ")
    text = text.strip().removeprefix("= ").replace("+", "=")
    held: dict[str, set[str]] = {}
    for clause in text.split(" "):
        names, sep, flags = clause.partition("=")
        if not sep:
            continue
        for flag in flags:
            held.setdefault(flag, set()).update(
                name.removeprefix("cap_") for name in names.split(",") if name
            )
    return {flag: frozenset(names) for flag, names in held.items()}


def _run(argv: list[str], what: str) -> str:
    try:
        done = oneshot.run(argv)
    except OSError as exc:
        raise LauncherError(f"{what}: cannot run {argv[0]}: {exc.strerror}") from exc
    if not done.ok:
        raise LauncherError(f"{what} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def _find(program: str, hint: str) -> str:
    found = oneshot.which(program, os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None:
        raise LauncherError(f"{program} not found ({hint})")
    return found


def install_launcher(
    dest: str,
    group: str,
    python: str,
    caps: Sequence[str],
    *,
    module: str = GRABBER_MODULE,
    cc: str = "cc",
) -> None:
    """Compile the launcher to `dest`: root:`group`, 0750, `caps` permitted."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise LauncherError(f"no such group {group!r}") from exc
    compiler = _find(cc, "install the Debian packages gcc and libcap-dev")
    setcap = _find("setcap", "install the Debian package libcap2-bin")
    getcap = _find("getcap", "install the Debian package libcap2-bin")
    wanted = setcap_text(caps)
    partial = f"{dest}.new"
    source = importlib.resources.files(__package__).joinpath("launcher.c")
    if not os.access(python, os.X_OK):
        raise LauncherError(f"{python} is not an executable interpreter")
    with importlib.resources.as_file(source) as source_path:
        argv = build_command(compiler, str(source_path), partial, python, module)
        try:
            _run(argv, "compiling")
        except LauncherError as exc:
            raise LauncherError(f"{exc.args[0]} (are gcc and libcap-dev installed?)") from exc
    try:
        os.chown(partial, 0, gid)
        os.chmod(partial, 0o750)
        _run([setcap, wanted, partial], "setcap")
        held = parse_getcap(_run([getcap, partial], "getcap"))
        if held != {"p": frozenset(caps)}:
            raise LauncherError(f"{partial} carries {held}, not {wanted}")
        os.rename(partial, dest)
    except OSError as exc:
        raise LauncherError(f"installing {dest}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)


def install_for(user: str, dest: str) -> None:
    """`grabber install-launcher`: build it for `user`'s group at `dest`."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise LauncherError(f"no user {user!r}: create the grabber user first (README)") from None
    group = grp.getgrgid(entry.pw_gid).gr_name
    os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
    install_launcher(dest, group, sys.executable, capabilities.GRABBER_LAUNCHER_CAPS)
