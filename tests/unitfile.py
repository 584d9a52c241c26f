"""Reading the shipped systemd units and cron file, for the tests that run them.

`parse_unit` follows systemd.syntax(7): `[Section]` headers, `Key=value`
lines, `#`/`;` comments, a trailing backslash continues a line, and a key
may repeat (list settings accumulate; an empty assignment resets them).
`setpriv_argv` turns a [Service] section's privilege settings into the
setpriv(1) options that give a process the same credentials systemd would.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass

REPO_UNITS = "systemd"


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    logical: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not logical and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            logical.append(line[:-1] + " ")
            continue
        line = "".join(logical) + line
        logical = []
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if current is None or "=" not in line:
            raise ValueError(f"not a unit file line: {raw!r}")
        key, _, value = line.partition("=")
        values = current.setdefault(key.strip(), [])
        if value.strip() == "":
            values.clear()
        else:
            values.append(value.strip())
    return sections


def capability_set(values: list[str]) -> frozenset[str]:
    """CAP_* words of a capability setting, as pullsnap.caps names them
    ("CAP_DAC_READ_SEARCH" -> "dac_read_search"); a leading "~" inverts,
    which these units never use, so it is refused."""
    names: set[str] = set()
    for value in values:
        if value.startswith("~"):
            raise ValueError("inverted capability lists are not expected here")
        for word in value.split():
            if not word.startswith("CAP_"):
                raise ValueError(f"{word!r} is not a capability name")
            names.add(word[4:].lower())
    return frozenset(names)


def boolean(values: list[str]) -> bool:
    return bool(values) and values[-1].lower() in ("1", "yes", "true", "on")


# systemd.exec(5) SecureBits= names -> setpriv(1) --securebits names.
_SECUREBITS = {
    "keep-caps": "keep_caps",
    "keep-caps-locked": "keep_caps_locked",
    "no-setuid-fixup": "no_setuid_fixup",
    "no-setuid-fixup-locked": "no_setuid_fixup_locked",
    "noroot": "noroot",
    "noroot-locked": "noroot_locked",
}


def setpriv_argv(service: Mapping[str, list[str]], uid: int, gid: int) -> list[str]:
    """setpriv options for User=/Group= (as uid/gid), AmbientCapabilities=,
    CapabilityBoundingSet=, NoNewPrivileges= and SecureBits=.

    systemd sets the user's supplementary groups (initgroups) for User=, puts
    ambient capabilities in the inheritable set too (an ambient capability
    must be permitted and inheritable, prctl(2)), and limits the bounding set.
    """
    argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups"]
    ambient = sorted(capability_set(service.get("AmbientCapabilities", [])))
    if ambient:
        caps = ",".join(f"+{c}" for c in ambient)
        argv += [f"--inh-caps={caps}", f"--ambient-caps={caps}"]
    if "CapabilityBoundingSet" in service:
        kept = sorted(capability_set(service["CapabilityBoundingSet"]))
        argv.append("--bounding-set=" + ",".join(["-all", *(f"+{c}" for c in kept)]))
    if boolean(service.get("NoNewPrivileges", [])):
        argv.append("--no-new-privs")
    bits = [_SECUREBITS[b] for v in service.get("SecureBits", []) for b in v.split()]
    if bits:
        argv.append("--securebits=" + ",".join(f"+{b}" for b in bits))
    return [*argv, "--"]


@dataclass(frozen=True)
class CronJob:
    environment: dict[str, str]
    schedule: tuple[str, ...]
    user: str
    command: str


def parse_cron_d(text: str) -> list[CronJob]:
    """An /etc/cron.d file (crontab(5)): `NAME=value` lines and jobs of five
    time fields, a user and a command."""
    environment: dict[str, str] = {}
    jobs = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head = line.split(None, 1)[0]
        if "=" in head and not head[0].isdigit() and head[0] != "*":
            name, _, value = line.partition("=")
            environment[name.strip()] = value.strip()
            continue
        fields = line.split(None, 6)
        if len(fields) < 7:
            raise ValueError(f"not a cron.d job line: {raw!r}")
        jobs.append(CronJob(dict(environment), tuple(fields[:5]), fields[5], fields[6]))
    return jobs


def command_words(command: str) -> list[str]:
    return shlex.split(command)


def cron_shell_command(command: str) -> tuple[str, str]:
    """What cron hands to /bin/sh for a job's command, and the job's standard
    input (crontab(5)): `\\%` is a plain "%"; the first other "%" ends the
    command, and what follows it, each "%" a newline, is the input."""
    out: list[str] = []
    i = 0
    while i < len(command):
        if command.startswith("\\%", i):
            out.append("%")
            i += 2
        elif command[i] == "%":
            return "".join(out), command[i + 1 :].replace("%", "\n")
        else:
            out.append(command[i])
            i += 1
    return "".join(out), ""


def cron_delay(shell_command: str) -> tuple[str, str]:
    """Split the shipped job's `sleep EXPRESSION; COMMAND` into the shell
    expression of its delay and the command that follows it."""
    head, sep, rest = shell_command.partition(";")
    if not sep or not head.startswith("sleep "):
        raise ValueError(f"the job does not start with a sleep: {shell_command!r}")
    return head.removeprefix("sleep ").strip(), rest.strip()
