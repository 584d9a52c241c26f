"""The rsync pull: argv builders (pure), the run (piperun.py) and its verdict.

    rsync -aHAX --numeric-ids -R --super|--fake-super --timeout=N --stats
          --info=progress2 --out-format=<ITEM_MARKER>%i %b %n
          --link-dest=<newest good> [--link-dest=<interrupted>]
          --exclude=<pattern>... -e "<ssh command>"
          -- user@[address]:/src1 :/src2 <host>/<name>.incomplete/

On the far side that becomes `rsync --server --sender -lHogDtpAXrRe.iLsfxCIvu
--timeout=N --numeric-ids . /src1 /src2`, which is what the gate allows
(`--out-format` stays on the receiving side: rsync's options.c
server_options() does not pass it on).
"""

from __future__ import annotations

import collections
import ipaddress
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pullsnap import connectfd, errors, report
from pullsnap.grabber.integrity.spool import Spool
from pullsnap.grabber.transfer import piperun
from pullsnap.grabber.transfer.rsyncout import (
    ITEM_MARKER,
    OUT_FORMAT,
    failed_path,
    failed_summary,
    is_new_file,
    parse_item,
    parse_stats,
)

HOST_KEY_ALIAS = "pullsnap-initiator"
SETPRIV = "/usr/bin/setpriv"
# rsync(1) EXIT VALUES
RSYNC_OK = 0
RSYNC_PARTIAL = 23  # some files could not be transferred
RSYNC_VANISHED = 24  # some source files vanished
MAX_LINK_DESTS = 20  # rsync's limit on --link-dest/--compare-dest dirs
# The client's order picks the cipher (RFC 4253 7.1).  OpenSSH prefers
# chacha20-poly1305; through one loopback connection aes128-gcm moved 466 MiB/s
# against 303 MiB/s on the benchmark machine (bench/RESULTS.md), and with
# AES instructions in nearly every server CPU it is the better default.
# chacha20-poly1305 stays second for a peer that lacks AES-GCM.
CIPHERS = "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com"
MAX_FAILED_PATHS = 1000
KEPT_ERRORS = 50  # rsync's last stderr lines kept for the verdict (judge) and the record


class RemoteShellWord(errors.RunFailed):
    """cannot pass {!r} through rsync -e"""


@dataclass(frozen=True)
class ConnectBack:
    user: str
    address: str
    port: int
    known_hosts: str
    public_key_file: str
    agent_socket: str
    connect_timeout: float


@dataclass(frozen=True)
class PullSpec:
    rsync: str
    ssh: str
    connect: ConnectBack
    sources: tuple[str, ...]
    target: str  # absolute, the .incomplete directory
    link_dests: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    mode: str = "fake-super"  # or "super"
    timeout: float = 600
    compress: bool = False
    dry_run: bool = False
    # Landlock confines the receiver: rsync's own defensive walk of the
    # --link-dest paths adds nothing and costs most of a no-change run.
    confined: bool = False
    # The target is a writable snapshot of the last one (the btrfs store):
    # update it to the source's state, changed files in place.
    in_place: bool = False


def known_hosts_line(host_key: str) -> str:
    return f"{HOST_KEY_ALIAS} {host_key}\n"


def ssh_command(ssh: str, c: ConnectBack) -> list[str]:
    """The remote shell rsync runs; pins the one-shot host key."""
    argv = [
        ssh,
        "-F", "/dev/null",
        "-T", "-x", "-a",
        "-p", str(c.port),
        "-l", c.user,
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", f"IdentityFile={c.public_key_file}",
        "-o", f"IdentityAgent={c.agent_socket}",
        "-o", f"UserKnownHostsFile={c.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"HostKeyAlias={HOST_KEY_ALIAS}",
        "-o", "HostKeyAlgorithms=ssh-ed25519",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "UpdateHostKeys=no",
        "-o", "CheckHostIP=no",
        "-o", f"ConnectTimeout={max(1, int(c.connect_timeout))}",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=4",
        "-o", "ClearAllForwardings=yes",
        "-o", "ForwardAgent=no",
        "-o", "ControlMaster=no",
        "-o", "ControlPath=none",
        "-o", "Compression=no",
        "-o", f"Ciphers={CIPHERS}",
        "-o", "LogLevel=ERROR",
    ]  # fmt: skip
    for word in argv:
        # rsync splits -e on whitespace (rsync(1) --rsh); these words have none.
        if not word or any(ch.isspace() for ch in word) or "'" in word or '"' in word:
            raise RemoteShellWord(word)
    # The connection itself: made with Nagle off (connectfd.py says why).
    proxy = connectfd.proxy_options(c.address, c.port, c.connect_timeout)
    for word in proxy:
        # Spaces only, and no quotes: rsh_string() quotes the word whole.
        if "'" in word or '"' in word or any(ch.isspace() and ch != " " for ch in word):
            raise RemoteShellWord(word)
    return argv + proxy


def rsh_string(words: Sequence[str]) -> str:
    """One -e value that rsync splits back into `words`: a word with spaces
    goes in double quotes, which rsync removes (rsync(1) --rsh)."""
    return " ".join(f'"{w}"' if " " in w else w for w in words)


def remote_host(user: str, address: str) -> str:
    ip = ipaddress.ip_address(address)
    return f"{user}@[{ip}]" if ip.version == 6 else f"{user}@{ip}"


def rsync_argv(spec: PullSpec) -> list[str]:
    argv = [
        spec.rsync,
        "-aHAX",
        "--numeric-ids",
        "--relative",
        # rsync compares whole seconds by default (rsync(1) --modify-window):
        # a file rewritten within the same second at the same size would be
        # hardlinked from the old snapshot, and directory times set in the
        # same second would not be restored.  -1 compares nanoseconds.
        "--modify-window=-1",
        f"--{spec.mode}",
        f"--timeout={max(1, int(spec.timeout))}",
        "--stats",
        "--info=progress2",
        # %b (bytes sent for the file) makes rsync name a file after its data
        # is written, not before (options.c: log_before_transfer), so the
        # hasher reading a named file in place reads all of it.
        f"--out-format={ITEM_MARKER}{OUT_FORMAT}",
    ]
    if spec.compress:
        argv.append("--compress")
    if spec.dry_run:
        argv.append("--dry-run")
    if spec.confined and spec.link_dests:
        # rsync 3.5 resolves every --link-dest file one path component at a
        # time from /, following a symlink only if root or we own it
        # (rsync(1) --insecure-links): ~35 openat(2) per file, 3.5x the time
        # of a no-change run.  It guards nothing here: the old snapshots'
        # symlinks come from the backed-up host (root-owned with --super,
        # ours with --fake-super, so the walk would follow them anyway).
        # What does guard: the receiver's own root mounts the host's
        # directory nosymfollow (confine/rootview.py), so no link in it is
        # followed, and Landlock keeps it inside its snapshots.  Without
        # Landlock the walk stays on.  Not sent to the sender.
        argv.append("--insecure-links")
    if spec.in_place:
        # Write into the existing file, so the blocks it did not change stay
        # shared with the older snapshot (rsync(1) --inplace; a hard-link
        # group the host split is separated before, store/linkgroups.py), and
        # remove what the source no longer has, or now excludes
        # (--delete-excluded): the snapshot is then what a fresh copy would be.
        argv += ["--inplace", "--delete", "--delete-excluded"]
    for link_dest in spec.link_dests[:MAX_LINK_DESTS]:
        argv.append(f"--link-dest={link_dest}")
    argv += [f"--exclude={pattern}" for pattern in spec.excludes]
    remote_shell = ssh_command(spec.ssh, spec.connect)
    if spec.mode == "super":
        # rsync hands its ambient receiver caps to the ssh it starts; ssh needs
        # none of them, so it gets its own exec with the sets emptied.
        remote_shell = [SETPRIV, "--inh-caps=-all", "--ambient-caps=-all", "--", *remote_shell]
    argv += ["-e", rsh_string(remote_shell)]
    host = remote_host(spec.connect.user, spec.connect.address)
    sources = [f"{host}:{spec.sources[0]}"] + [f":{s}" for s in spec.sources[1:]]
    return [*argv, "--", *sources, spec.target.rstrip("/") + "/"]


# --- running -------------------------------------------------------------------------


@dataclass
class PullResult:
    exit_code: int
    stats: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Stored anew, relative to the target: on disk past a few MiB (spool.py),
    # read back sorted by the manifest step.
    new_files: Spool = field(default_factory=Spool)
    failed_paths: list[dict[str, str]] = field(default_factory=list)
    failed_paths_total: int = 0
    received: int = 0  # bytes rsync's progress had counted when it ended
    stopped: str = ""  # why the grabber stopped rsync (the free-space watch)


class _Relay:
    """Split rsync's output on CR and LF; progress goes out at most once a second."""

    def __init__(
        self,
        on_progress: Callable[[report.Progress], None],
        on_line: Callable[[str], None],
        on_new_file: Callable[[bytes], None] = lambda path: None,
        new_files: Spool | None = None,
    ):
        self.on_progress = on_progress
        self.on_line = on_line
        self.on_new_file = on_new_file
        self.buffer = ""
        # Lines that are neither items nor progress: the --stats block at the
        # end, and whatever else rsync says; the last ones are enough.
        self.lines: collections.deque[str] = collections.deque(maxlen=200)
        self.new_files = new_files if new_files is not None else Spool()
        self.received = 0  # bytes, from the newest progress line
        self.last_progress = 0.0

    def feed(self, chunk: str) -> None:
        self.buffer += chunk
        *parts, self.buffer = re.split(r"[\r\n]", self.buffer)
        for part in parts:
            self._line(part)

    def flush(self) -> None:
        if self.buffer:
            self._line(self.buffer)
            self.buffer = ""

    def _line(self, text: str) -> None:
        if not text.strip():
            return
        item = parse_item(text)
        if item is not None:
            # One line per changed file: kept out of the log the initiator sees.
            if is_new_file(item[0]):
                self.new_files.add(item[1])  # a Spool: held on disk past a few MiB
                self.on_new_file(item[1])
            return
        progress = report.parse_rsync_progress(text)
        if progress is None:
            self.lines.append(text)
            self.on_line(text)
            return
        self.received = max(self.received, progress.bytes)
        now = time.monotonic()
        if now - self.last_progress >= 1.0 or progress.percent == 100:
            self.last_progress = now
            self.on_progress(progress)


def run_rsync(
    argv: Sequence[str],
    env: dict[str, str],
    on_progress: Callable[[report.Progress], None],
    on_line: Callable[[str], None],
    preexec: Callable[[], None] | None,
    deadline: float,
    on_new_file: Callable[[bytes], None] = lambda path: None,
    on_started: Callable[[], None] = lambda: None,
    watch: Callable[[], str] | None = None,
    new_files: Spool | None = None,
    idle: float = 0.0,
) -> PullResult:
    """Run rsync (no tty), relaying output; never raises for rsync's exit.
    `on_new_file` hears of each file rsync stores anew (not a hard link),
    and `new_files` (a Spool in the repository, else in the temporary
    directory) keeps them; `on_started` runs once rsync is running; `watch`
    (retention/watch.py) stops it when it returns a reason; `idle`
    (rsync_timeout) stops an rsync that relays nothing for that long: its
    own --timeout does not always fire for a stopped sender (with --super,
    bench/FLEET.md).  Nothing here grows with the number of files: one line
    per file goes by."""
    out = _Relay(on_progress, on_line, on_new_file, new_files)
    err_lines: collections.deque[str] = collections.deque(maxlen=KEPT_ERRORS)
    failed: list[dict[str, str]] = []
    failed_total = 0

    def err(chunk: str) -> None:
        nonlocal failed_total
        for raw in chunk.splitlines():
            line = report.printable(raw)
            if line.strip():
                err_lines.append(line)
                on_line(line)
                bad = failed_path(line)
                if bad is not None:
                    failed_total += 1
                    if len(failed) < MAX_FAILED_PATHS:
                        failed.append(bad)

    started = time.monotonic()
    ended = piperun.run_piped(argv, env, out.feed, err, preexec, deadline, on_started, watch,
                              idle=idle)  # fmt: skip
    code = -1 if ended.code is None or ended.timed_out else ended.code
    if ended.stopped:
        err_lines.append("rsync was stopped by the free-space watch")
    elif ended.idle:
        err_lines.append(f"timeout: rsync moved nothing for {idle:g} s (rsync_timeout): the "
                         "sending side stalled")  # fmt: skip
    elif ended.timed_out:
        err_lines.append(f"rsync was stopped after the run deadline of {deadline:g} s")
    elif ended.signal is not None:
        err_lines.append(f"rsync was killed by signal {ended.signal}")
    out.flush()
    return PullResult(
        exit_code=code,
        stats=parse_stats(out.lines),
        errors=list(err_lines),
        seconds=time.monotonic() - started,
        new_files=out.new_files,
        failed_paths=failed,
        failed_paths_total=failed_total,
        received=out.received,
        stopped=ended.stopped,
    )


# --- verdict -------------------------------------------------------------------------

NO_SPACE_TEXT = "No space left on device"  # strerror(ENOSPC), rsync prints it
# Setting an xattr or ACL fails with ENOSPC too when it does not fit beside
# the inode's others (ext4 keeps them all in one block): one file's
# metadata, not a full disk.  rsync's xattrs.c and acls.c name the call.
_METADATA_LINE_RE = re.compile(
    r"^rsync: (?:\[\w+\] )?(?:rsync_xal_set|set_xattr_acl|set_acl|failed to write xattr)\b"
)
_UNREACHABLE_HINTS = ("Connection refused", "Connection timed out", "No route to host")


def judge(result: PullResult) -> tuple[str, int, str]:
    """(record state, exit code, message) for an rsync run (pure).

    rsync(1) EXIT VALUES: 24 (vanished source files) is a normal night on a
    live system; 23 means some files could not be read: the snapshot is
    kept as "partial"; everything else leaves no good snapshot.
    """
    code = result.exit_code
    text = "\n".join(result.errors)
    if result.stopped:
        return "failed", errors.NO_SPACE, result.stopped
    if code in (RSYNC_OK, RSYNC_VANISHED):
        return "complete", errors.OK, ""
    # The receiver (ours) says ENOSPC: a full repository, not an unreadable file.
    if any(
        NO_SPACE_TEXT in line and "[sender]" not in line and not _METADATA_LINE_RE.match(line)
        for line in result.errors
    ):
        return "failed", errors.NO_SPACE, "the repository's filesystem is full"
    if code == RSYNC_PARTIAL:
        named = failed_summary(result.failed_paths, result.failed_paths_total)
        named = named or "some files could not be read"
        return "partial", errors.PARTIAL, f"{named} (rsync exit 23)"
    if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION" in text:
        return "failed", errors.REFUSED, "the initiator's host key did not match the handoff"
    if "Too many authentication failures" in text or "Permission denied (publickey" in text:
        return "failed", errors.REFUSED, "the initiator's sshd refused the one-time key"
    if "gate error:" in text:
        line = next(x for x in result.errors if "gate error:" in x)
        return "failed", errors.REFUSED, line[line.index("gate error:") :]
    if any(hint in text for hint in _UNREACHABLE_HINTS):
        return "failed", errors.UNREACHABLE, "could not connect back to the initiator"
    if code == -1 or code in (30, 35):
        last = result.errors[-1] if result.errors else "rsync timed out"
        return "failed", errors.TIMEOUT, last
    last = result.errors[-1] if result.errors else ""
    return "failed", errors.FAILED, f"rsync failed with exit {code}" + (f": {last}" if last else "")
