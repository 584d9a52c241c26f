"""The forced-command gate: which `rsync --server --sender` lines may run.

sshd puts the command the client asked for in SSH_ORIGINAL_COMMAND and runs
the forced command instead (sshd(8), ENVIRONMENT; sshd_config(5),
ForceCommand).  `parse` is the pure half of the gate: it turns that string
into the argv to exec, or raises `GateRefused` with a fixed sentence naming
the offending word.  The effects (environment, priority, log, exec) live in
gatecmd.py.

What the string looks like, from rsync's own client (3.2.4 and later, the
"new arg escaping"; options.c server_options() and safe_arg()):

    rsync --server --sender -lHogDtpAXrRze.iLsfxCIvu --timeout=300 . /etc /home/a\\ b

* words are joined by single spaces (ssh joins its argv that way);
* in a file name each of  !"#$&'();<>`{|}  space, tab, newline and
  backslash is escaped with a backslash; the wildcards *?[ are left bare
  so that a remote shell can glob them (an option value has them escaped);
* the short options come as one cluster whose tail `e<digits>.<letters>`
  is the argument of `-e`, the capability string, not a set of options
  (popt hands the rest of a cluster to an option that takes an argument);
* a long option with a value comes as `--name=value`, except the few
  receiver-side ones rsync sends as two words (`--backup-dir DIR`), which
  are disabled here anyway;
* the lone `.` ends the options; the source paths follow.

A bare metacharacter therefore means the line was not made by rsync, and
is refused rather than interpreted.  Policy is data: the tables below are
the whole allow-list, and anything not in them is refused as unknown.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pullsnap.errors import GateRefused

MAX_COMMAND_BYTES = 64 * 1024
FIXED_WORDS = ("rsync", "--server", "--sender")


class Kind(enum.Enum):
    """How a long option is checked."""

    NO_ARG = "no value"
    NUMBER = "digits only"
    WORD = "a value matching the option's pattern"
    DISABLED = "refused by name"


# The option tables.  Source: the options rsync's client sends a server that
# is to be the sender (options.c server_options(), rsync 3.5), cut down to
# what a read-only sender needs for the client options we support (-a, -H,
# -A, -X, -z, -R, -n, -x, -c, -W, -S, -v, --numeric-ids, --timeout,
# --bwlimit, --inplace), and the shape of support/rrsync's short_no_arg and
# long_opts.
#
# Short letters, outside the capability string:
#   v verbose, n dry run, l o g D t p r (-a), H hard links, A ACLs,
#   X xattrs, R relative, x one file system, c checksum, z compress,
#   W whole file, S sparse.
SHORT_ALLOWED = "vnlogDtprHAXRxczWS"

# Short letters refused by name.  -s moves the real options in-band, past
# this gate; -L and -k make the sender follow symlinks out of the roots;
# -K and -b are receiver-side and have no business on a sender.
SHORT_DISABLED = "sLkKb"

LONG_OPTIONS: dict[str, Kind] = {
    "numeric-ids": Kind.NO_ARG,
    "timeout": Kind.NUMBER,
    "bwlimit": Kind.WORD,
    "compress-choice": Kind.WORD,
    "compress-level": Kind.WORD,
    "new-compress": Kind.NO_ARG,
    "old-compress": Kind.NO_ARG,
    "checksum-choice": Kind.WORD,
    # A btrfs store's receiver updates files in place: the sender then never
    # matches a block against an earlier offset of the basis, which the
    # receiver may have overwritten already (match.c, updating_basis_file).
    # It changes nothing the sender reads or where; the receiver's --delete
    # options stay on the receiving side (options.c server_options()).
    "inplace": Kind.NO_ARG,
    # Options that move options in-band or follow symlinks out of the roots.
    "protect-args": Kind.DISABLED,
    "secluded-args": Kind.DISABLED,
    "copy-links": Kind.DISABLED,
    "copy-dirlinks": Kind.DISABLED,
    "keep-dirlinks": Kind.DISABLED,
    "copy-unsafe-links": Kind.DISABLED,
    "insecure-links": Kind.DISABLED,
    # Options that write, delete or read outside the transfer.
    "backup": Kind.DISABLED,
    "backup-dir": Kind.DISABLED,
    "copy-devices": Kind.DISABLED,
    "write-devices": Kind.DISABLED,
    "remove-source-files": Kind.DISABLED,
    "remove-sent-files": Kind.DISABLED,
    "del": Kind.DISABLED,
    "delete": Kind.DISABLED,
    "delete-before": Kind.DISABLED,
    "delete-during": Kind.DISABLED,
    "delete-delay": Kind.DISABLED,
    "delete-after": Kind.DISABLED,
    "delete-excluded": Kind.DISABLED,
    "delete-missing-args": Kind.DISABLED,
    "log-file": Kind.DISABLED,
    "log-file-format": Kind.DISABLED,
    "files-from": Kind.DISABLED,
    "from0": Kind.DISABLED,
    "rsync-path": Kind.DISABLED,
    "partial-dir": Kind.DISABLED,
    "temp-dir": Kind.DISABLED,
    "link-dest": Kind.DISABLED,
    "compare-dest": Kind.DISABLED,
    "copy-dest": Kind.DISABLED,
    "mkpath": Kind.DISABLED,
    "only-write-batch": Kind.DISABLED,
    "write-batch": Kind.DISABLED,
    "read-batch": Kind.DISABLED,
    # Options that change what rsync is or how it reports.
    "daemon": Kind.DISABLED,
    "config": Kind.DISABLED,
    "debug": Kind.DISABLED,
    "iconv": Kind.DISABLED,
    # The gate adds this one itself, from the configured roots.
    "confine-root": Kind.DISABLED,
}

NUMBER_PATTERN = re.compile(r"[0-9]{1,9}")

# Values the client really sends: --bwlimit in KiB (it converts "1.5m" to
# "1536" itself, but a size suffix is accepted), zstd levels can be negative,
# --checksum-choice may name two algorithms ("xxh64,md5").
WORD_PATTERNS: dict[str, re.Pattern[str]] = {
    "bwlimit": re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?[KkMmGg]?"),
    "compress-choice": re.compile(r"[a-z0-9]{1,16}"),
    "compress-level": re.compile(r"-?[0-9]{1,3}"),
    "checksum-choice": re.compile(r"[a-z0-9]{1,16}(?:,[a-z0-9]{1,16})?"),
}

# options.c safe_arg(): the characters rsync escapes in every argument it
# puts on a remote command line (space, tab, newline and backslash are
# handled by the word splitter; control bytes are refused before it).
SHELL_METACHARACTERS = frozenset("!\"#$&'();<>`{|}")
GLOB_CHARACTERS = frozenset("*?[")

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_WORD_RE = re.compile(r"(?:\\.|[^ \\])+", re.DOTALL)
_ESCAPED_RE = re.compile(r"\\(.)", re.DOTALL)
_WHOLE_ESCAPES_RE = re.compile(r"(?:\\.|[^\\])*", re.DOTALL)
_CAPABILITIES_RE = re.compile(r"e[0-9]*\.[A-Za-z0-9_]*")
_LONG_RE = re.compile(r"--([a-z0-9][a-z0-9-]*)(?:=(.*))?", re.DOTALL)


@dataclass(frozen=True)
class GatePolicy:
    """What the gate lets through: source roots, the rsync to exec."""

    roots: tuple[str, ...]
    rsync: str = "/usr/bin/rsync"
    confine_root: bool = True

    def __post_init__(self) -> None:
        if not self.roots:
            raise ValueError("a gate needs at least one source root")
        for root in (*self.roots, self.rsync):
            if not os.path.isabs(root):
                raise ValueError(f"{root!r} is not an absolute path")


def common_root(roots: Iterable[str]) -> str:
    """The deepest directory holding every root, symlinks resolved."""
    return os.path.commonpath([os.path.realpath(root) for root in roots])


def split_words(command: str) -> list[str]:
    """Split on unescaped spaces, keeping the escapes (rrsync's regex)."""
    if not _WHOLE_ESCAPES_RE.fullmatch(command):
        raise GateRefused("command line ends in a lone backslash")
    words = _WORD_RE.findall(command)
    for word in words:
        if SHELL_METACHARACTERS.intersection(_ESCAPED_RE.sub("", word)):
            raise GateRefused(f"unescaped shell metacharacter in {word!r}")
    return words


def unescape(word: str) -> str:
    return _ESCAPED_RE.sub(r"\1", word)


def parse(command: str | None, policy: GatePolicy) -> list[str]:
    """The argv to exec for `command`, or GateRefused naming what is wrong."""
    if not command:
        raise GateRefused("no command was given")
    # A lone surrogate counts as three bytes here; that only errs towards refusing.
    if len(command.encode("utf-8", "surrogatepass")) > MAX_COMMAND_BYTES:
        raise GateRefused(f"command line is longer than {MAX_COMMAND_BYTES} bytes")
    control = _CONTROL_RE.search(command)
    if control:
        raise GateRefused(f"control character {ord(control.group()):#04x} in the command line")
    words = split_words(command)
    for position, expected in enumerate(FIXED_WORDS):
        got = repr(words[position]) if position < len(words) else "nothing"
        if got != repr(expected):
            raise GateRefused(f"not an rsync sender command: {got} where {expected!r} belongs")

    clusters: list[str] = []
    longs: list[str] = []
    paths: list[str] = []
    rest = words[len(FIXED_WORDS) :]
    for index, word in enumerate(rest):
        if word == ".":
            paths = [unescape(w) for w in rest[index + 1 :]]
            break
        if word.startswith("--"):
            longs.append(_check_long(word))
        elif word.startswith("-"):
            clusters.append(_check_cluster(word))
        else:
            raise GateRefused(f"unexpected word {word!r} before the '.' that ends the options")
    else:
        raise GateRefused("no '.' ends the options")
    if not paths:
        raise GateRefused("no source path after '.'")

    roots = [os.path.realpath(root) for root in policy.roots]
    for path in paths:
        _check_path(path, roots)

    confine: list[str] = []
    common = common_root(policy.roots)
    if policy.confine_root and common != "/":
        confine = [f"--confine-root={common}"]
    # "--" keeps a path from ever being read as an option; rsync 3.5 in server
    # mode accepts it before the ".", as support/rrsync relies on.
    return [policy.rsync, *FIXED_WORDS[1:], *clusters, *longs, *confine, "--", ".", *paths]


def _check_cluster(word: str) -> str:
    """`-<letters>[e<digits>.<capabilities>]`: every letter must be allowed."""
    body = word[1:]
    cut = body.find("e")
    letters, capabilities = (body, "") if cut < 0 else (body[:cut], body[cut:])
    for letter in letters:
        if letter in SHORT_DISABLED:
            raise GateRefused(f"option -{letter} is not allowed")
        if letter not in SHORT_ALLOWED:
            raise GateRefused(f"unknown option -{letter}")
    if capabilities and not _CAPABILITIES_RE.fullmatch(capabilities):
        raise GateRefused(f"bad capability string in {word!r}")
    if not body:
        raise GateRefused("unknown option -")
    return word


def _check_long(word: str) -> str:
    """`--name` or `--name=value`, normalised; the table decides."""
    match = _LONG_RE.fullmatch(word)
    if not match:
        raise GateRefused(f"unknown option {word.split('=', 1)[0]}")
    name, value = match.group(1), match.group(2)
    kind = LONG_OPTIONS.get(name)
    if kind is None:
        raise GateRefused(f"unknown option --{name}")
    if kind is Kind.DISABLED:
        raise GateRefused(f"option --{name} is not allowed")
    if kind is Kind.NO_ARG:
        if value is not None:
            raise GateRefused(f"option --{name} takes no value")
        return f"--{name}"
    if value is None:
        raise GateRefused(f"option --{name} needs its value as --{name}=VALUE")
    pattern = NUMBER_PATTERN if kind is Kind.NUMBER else WORD_PATTERNS[name]
    if not pattern.fullmatch(value):
        raise GateRefused(f"bad value {value!r} for option --{name}")
    return f"--{name}={value}"


def _check_path(path: str, real_roots: list[str]) -> None:
    if not path.startswith("/"):
        raise GateRefused(f"path {path} is not absolute")
    # rsync's sender glob-expands its file arguments; we never need that.
    if GLOB_CHARACTERS.intersection(path):
        raise GateRefused(f"path {path} contains a glob character")
    if any(part in (".", "..") for part in path.split("/")):
        raise GateRefused(f"path {path} has a '.' or '..' component")
    # Checked by name: rsync resolves the path again after the exec, so a local
    # user who can rename inside a root could race a component into a symlink
    # in between.  support/rrsync closes that by pinning inodes through
    # /proc/self/fd; this gate does not.
    real = os.path.realpath(path)
    if not any(_within(real, root) for root in real_roots):
        raise GateRefused(f"path {path} is outside the source roots")


def _within(real: str, root: str) -> bool:
    # The trailing separator keeps /srv/data from admitting /srv/database.
    return real == root or real.startswith(root.rstrip("/") + "/")
