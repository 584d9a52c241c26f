"""The rsync pull: argv shape, the pinned ssh command, stats and verdicts.

DESIGN "Security properties" 4: the grabber pins the one-shot host key
(`StrictHostKeyChecking=yes` against a private known_hosts).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pullsnap import connectfd, errors
from pullsnap.grabber.transfer import pull, rsyncout
from pullsnap.grabber.transfer.pull import ConnectBack, PullResult, PullSpec

RSYNC = shutil.which("rsync") or "/usr/bin/rsync"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}

CONNECT = ConnectBack(
    user="backup",
    address="192.0.2.5",
    port=40022,
    known_hosts="/run/pullsnap-grab-x/known_hosts",
    public_key_file="/run/pullsnap-grab-x/key.pub",
    agent_socket="/run/pullsnap-grab-x/agent",
    connect_timeout=30,
)
SPEC = PullSpec(
    rsync="/usr/bin/rsync",
    ssh="/usr/bin/ssh",
    connect=CONNECT,
    sources=("/etc", "/home", "/srv/data"),
    target="/srv/pullsnap/web1/2026-11-25T141500Z.incomplete",
)


def options(argv: list[str], name: str) -> list[str]:
    """Values of `--name=value` words before `--`."""
    head = argv[: argv.index("--")]
    return [w.split("=", 1)[1] for w in head if w.startswith(f"--{name}=")]


def option_pairs(words: list[str]) -> list[str]:
    """The values given to `-o` in an ssh argv."""
    return [words[i + 1] for i, w in enumerate(words) if w == "-o"]


# --- rsync argv --------------------------------------------------------------------


def test_rsync_argv_shape() -> None:
    argv = pull.rsync_argv(SPEC)
    assert argv[0] == "/usr/bin/rsync"
    split = argv.index("--")
    assert argv[split + 1 :] == [
        "backup@192.0.2.5:/etc",
        ":/home",
        ":/srv/data",
        "/srv/pullsnap/web1/2026-11-25T141500Z.incomplete/",
    ]
    head = argv[:split]
    for word in ("-aHAX", "--numeric-ids", "--relative", "--fake-super", "--stats"):
        assert word in head
    assert "--super" not in head
    assert "--delete" not in " ".join(head)
    assert options(argv, "timeout") == ["600"]
    assert head.count("-e") == 1
    assert "--compress" not in head and "--dry-run" not in head
    # Nothing after `--` can be read as an option, nothing before it is a source.
    assert not any(w.startswith(("/etc", "/home", "backup@")) for w in head)


def test_rsync_argv_brackets_ipv6_and_normalises() -> None:
    spec = dataclasses.replace(
        SPEC, connect=dataclasses.replace(CONNECT, address="2001:DB8:0::5"), sources=("/",)
    )
    argv = pull.rsync_argv(spec)
    assert argv[argv.index("--") + 1] == "backup@[2001:db8::5]:/"
    ssh_words = argv[argv.index("-e") + 1].split(" ")
    assert "2001:db8::5" not in ssh_words  # the host comes from rsync, once


def test_rsync_argv_refuses_a_host_name() -> None:
    spec = dataclasses.replace(SPEC, connect=dataclasses.replace(CONNECT, address="evil.example"))
    with pytest.raises(ValueError):
        pull.rsync_argv(spec)


def test_link_dests_are_capped_at_twenty() -> None:
    dests = tuple(f"/srv/pullsnap/web1/{i:02d}" for i in range(30))
    argv = pull.rsync_argv(dataclasses.replace(SPEC, link_dests=dests))
    assert options(argv, "link-dest") == list(dests[:20])
    assert pull.MAX_LINK_DESTS == 20


def test_excludes_are_single_words() -> None:
    excludes = (".cache/", "*.tmp", "/home/*/Downloads", "name with spaces")
    argv = pull.rsync_argv(dataclasses.replace(SPEC, excludes=excludes))
    assert options(argv, "exclude") == list(excludes)
    assert "--exclude" not in argv  # never a separate word the next could join
    assert "name with spaces" not in argv


def test_super_and_fake_super() -> None:
    argv = pull.rsync_argv(dataclasses.replace(SPEC, mode="super"))
    head = argv[: argv.index("--")]
    assert "--super" in head and "--fake-super" not in head


def test_compress_dry_run_and_timeout() -> None:
    argv = pull.rsync_argv(dataclasses.replace(SPEC, compress=True, dry_run=True, timeout=0.2))
    head = argv[: argv.index("--")]
    assert "--compress" in head and "--dry-run" in head
    assert options(argv, "timeout") == ["1"]  # rsync's --timeout=0 would mean "none"


def test_target_gets_exactly_one_trailing_slash() -> None:
    argv = pull.rsync_argv(dataclasses.replace(SPEC, target="/srv/t///"))
    assert argv[-1] == "/srv/t/"


# --- ssh command ---------------------------------------------------------------------


def test_ssh_command_pins_the_host_key() -> None:
    argv = pull.ssh_command("/usr/bin/ssh", CONNECT)
    opts = option_pairs(argv)
    assert argv[0] == "/usr/bin/ssh"
    assert "StrictHostKeyChecking=yes" in opts
    assert f"UserKnownHostsFile={CONNECT.known_hosts}" in opts
    assert "GlobalKnownHostsFile=/dev/null" in opts
    assert f"HostKeyAlias={pull.HOST_KEY_ALIAS}" in opts
    assert "HostKeyAlgorithms=ssh-ed25519" in opts
    assert "UpdateHostKeys=no" in opts
    assert "BatchMode=yes" in opts
    assert f"IdentityAgent={CONNECT.agent_socket}" in opts
    assert f"IdentityFile={CONNECT.public_key_file}" in opts
    assert "IdentitiesOnly=yes" in opts
    assert "ForwardAgent=no" in opts
    assert argv[argv.index("-F") + 1] == "/dev/null"  # no user or system ssh_config
    assert argv[argv.index("-p") + 1] == "40022"
    assert argv[argv.index("-l") + 1] == "backup"
    joined = " ".join(argv).lower()
    assert "stricthostkeychecking=no" not in joined
    assert "stricthostkeychecking=accept-new" not in joined


def test_ssh_connects_back_through_connectfd_to_the_handoffs_port() -> None:
    opts = option_pairs(pull.ssh_command("/usr/bin/ssh", CONNECT))
    proxy = next(o for o in opts if o.startswith("ProxyCommand="))
    assert proxy.split(" ")[-4:] == [connectfd.__file__, "192.0.2.5", "40022", "30"]
    assert "ProxyUseFdpass=yes" in opts
    # rsync -e: the one word with spaces travels whole, in double quotes.
    assert f' "{proxy}" ' in pull.rsh_string(pull.ssh_command("/usr/bin/ssh", CONNECT))


def test_known_hosts_line_matches_the_alias() -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE5vdEFSZWFsS2V5QnV0V2VsbEZvcm1lZEVub3VnaA"
    assert pull.known_hosts_line(key) == f"{pull.HOST_KEY_ALIAS} {key}\n"


def test_ssh_command_prefers_aes_gcm_and_no_compression() -> None:
    opts = option_pairs(pull.ssh_command("/usr/bin/ssh", CONNECT))
    ciphers = next(o for o in opts if o.startswith("Ciphers=")).removeprefix("Ciphers=").split(",")
    assert ciphers[0] == "aes128-gcm@openssh.com"
    assert "chacha20-poly1305@openssh.com" in ciphers  # a peer without AES-GCM still connects
    assert "Compression=no" in opts


@pytest.mark.parametrize(
    "change",
    [
        {"known_hosts": "/run/my dir/known_hosts"},
        {"public_key_file": "/run/x\tkey.pub"},
        {"agent_socket": "/run/x\n/agent"},
        {"agent_socket": "/run/it's/agent"},
        {"known_hosts": '/run/"q"/known_hosts'},
        {"user": "back up"},
        {"user": ""},
    ],
)
def test_ssh_command_refuses_words_rsync_would_split(change: dict[str, str]) -> None:
    """A typed refusal (a failed run with one line), never a traceback."""
    with pytest.raises(pull.RemoteShellWord, match="through rsync -e") as refused:
        pull.ssh_command("/usr/bin/ssh", dataclasses.replace(CONNECT, **change))
    assert isinstance(refused.value, errors.PullsnapError)
    assert refused.value.exit_code == errors.FAILED
    with pytest.raises(pull.RemoteShellWord):
        pull.rsync_argv(dataclasses.replace(SPEC, connect=dataclasses.replace(CONNECT, **change)))


def test_ssh_command_refuses_a_program_path_with_spaces() -> None:
    with pytest.raises(pull.RemoteShellWord, match="'/opt/my ssh/ssh'"):
        pull.ssh_command("/opt/my ssh/ssh", CONNECT)


def test_the_e_string_survives_rsyncs_own_splitting(tmp_path: Path) -> None:
    """Run the real rsync with a fake ssh that records the argv it was given."""
    odd = tmp_path / "back\\slash,dir=x"
    odd.mkdir()
    record = tmp_path / "argv"
    fake_ssh = tmp_path / "fake-ssh"
    fake_ssh.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$0\" \"$@\" > '{record}'\nexit 1\n")
    fake_ssh.chmod(0o755)
    target = tmp_path / "target"
    target.mkdir()
    connect = dataclasses.replace(
        CONNECT,
        address="::1",
        known_hosts=str(odd / "known_hosts"),
        public_key_file=str(odd / "key.pub"),
        agent_socket=str(odd / "agent"),
    )
    spec = PullSpec(
        rsync=RSYNC,
        ssh=str(fake_ssh),
        connect=connect,
        sources=("/etc", "/srv/data"),
        target=str(target),
        excludes=("*.tmp",),
    )
    done = subprocess.run(pull.rsync_argv(spec), capture_output=True, env=ENV, timeout=30)
    assert done.returncode != 0  # our fake ssh fails on purpose
    words = record.read_bytes().split(b"\0")[:-1]
    got = [w.decode() for w in words]
    intended = pull.ssh_command(str(fake_ssh), connect)
    assert got[: len(intended)] == intended
    rest = got[len(intended) :]
    # rsync appends the login and host itself, then the remote command.
    assert rest[:3] == ["-l", "backup", "::1"]
    assert rest[3:6] == ["rsync", "--server", "--sender"]
    assert rest[-2:] == ["/etc", "/srv/data"]
    assert os.listdir(target) == []


# --- stats ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    src = tmp_path_factory.mktemp("stats") / "src"
    (src / "d1" / "d2").mkdir(parents=True)
    sizes = {"a": 2_000_000, "d1/b": 1_234_567, "d1/d2/c": 1, "d1/empty": 0}
    for name, size in sizes.items():
        (src / name).write_bytes(os.urandom(size))
    return src, sizes


def _rsync_stats(src: Path, dst: Path, *extra: str) -> list[str]:
    done = subprocess.run(
        [RSYNC, "-a", "--stats", *extra, f"{src}/", f"{dst}/"],
        capture_output=True,
        check=True,
        env=ENV,
        text=True,
    )
    return done.stdout.splitlines()


def test_parse_stats_on_real_output(tree: tuple[Path, dict[str, int]], tmp_path: Path) -> None:
    src, sizes = tree
    dst = tmp_path / "dst"
    stats = rsyncout.parse_stats(_rsync_stats(src, dst))
    files, dirs = len(sizes), 3  # ".", d1, d1/d2
    assert stats["files"] == files + dirs
    assert stats["created_files"] == files + dirs
    assert stats["deleted_files"] == 0
    assert stats["transferred_files"] == files
    assert stats["total_size"] == sum(sizes.values())
    assert stats["transferred_size"] == sum(sizes.values())
    assert stats["literal_data"] == sum(sizes.values())
    assert stats["matched_data"] == 0
    assert stats["bytes_sent"] > sum(sizes.values())
    assert stats["bytes_received"] > 0
    assert "file_list_size" in stats

    # A second run with --link-dest: nothing is transferred, all is hardlinked.
    again = rsyncout.parse_stats(_rsync_stats(src, tmp_path / "dst2", f"--link-dest={dst}"))
    assert again["total_size"] == sum(sizes.values())
    assert again["transferred_size"] == 0
    assert again["transferred_files"] == 0


def test_parse_stats_ignores_other_lines() -> None:
    assert rsyncout.parse_stats(["sending incremental file list", "", "Number of files: x"]) == {}
    assert rsyncout.parse_stats(["Total file size: 1,234 bytes"]) == {"total_size": 1234}


def test_run_rsync_relays_progress_and_stats(
    tree: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    src, sizes = tree
    argv = [RSYNC, "-a", "--stats", "--info=progress2", f"{src}/", f"{tmp_path / 'dst'}/"]
    progress: list = []
    lines: list[str] = []
    result = pull.run_rsync(argv, ENV, progress.append, lines.append, None, 60)
    assert result.exit_code == 0
    assert result.stats["total_size"] == sum(sizes.values())
    assert progress and progress[-1].percent == 100
    assert progress[-1].bytes == sum(sizes.values())
    assert any(line.startswith("Number of files:") for line in lines)
    assert not any("%" in line and "/s" in line for line in lines)  # progress is not logged


def test_run_rsync_reports_a_failure_without_raising(tmp_path: Path) -> None:
    argv = [RSYNC, "-a", str(tmp_path / "missing") + "/", str(tmp_path / "dst") + "/"]
    result = pull.run_rsync(argv, ENV, lambda p: None, lambda line: None, None, 60)
    assert result.exit_code == 23
    assert any("missing" in e for e in result.errors)


def test_text_the_far_side_writes_raw_reaches_nothing_unescaped() -> None:
    """rsync escapes control bytes in the messages it relays, but ssh copies
    the remote's stderr (the backed-up host's sshd and gate) as it is.  Those
    lines go into the record, which `grabber list` and `status` print on the
    operator's terminal: escape sequences must arrive as text."""
    text = r"gate error: \033[1A\033[2Kweb1 ok\rx\302\233y\342\200\256z\tw\n"
    script = f"printf '{text}' >&2; exit 12"
    seen: list[str] = []
    result = pull.run_rsync(["sh", "-c", script], ENV, lambda p: None, seen.append, None, 10)
    expected = [r"gate error: \#033[1A\#033[2Kweb1 ok", r"x\#302\#233y\#342\#200\#256z" + "\tw"]
    assert result.errors == expected and seen == expected
    assert pull.judge(result)[1:] == (errors.REFUSED, expected[0])
    assert rsyncout.unescape_name(expected[1]) == b"x\xc2\x9by\xe2\x80\xaez\tw"


# --- verdicts -------------------------------------------------------------------------


def verdict(code: int, *errors_: str) -> tuple[str, int, str]:
    return pull.judge(PullResult(exit_code=code, errors=list(errors_)))


def test_judge_success_and_vanished_files() -> None:
    assert verdict(0) == ("complete", errors.OK, "")
    assert verdict(24, "file has vanished: /home/x/.lock")[:2] == ("complete", errors.OK)


def test_judge_partial() -> None:
    state, code, message = verdict(23, 'rsync: opendir "/root" failed: Permission denied (13)')
    assert (state, code) == ("partial", errors.PARTIAL)
    assert "23" in message


def test_judge_timeout() -> None:
    state, code, message = verdict(30, "rsync error: timeout in data send/receive (code 30)")
    assert (state, code) == ("failed", errors.TIMEOUT)
    assert "timeout" in message
    assert verdict(-1, "rsync was stopped after the run deadline of 60 s")[1] == errors.TIMEOUT
    assert verdict(35)[1] == errors.TIMEOUT


def test_judge_a_run_the_free_space_watch_stopped_is_no_space() -> None:
    stopped = PullResult(exit_code=20, errors=["rsync error: received SIGINT, SIGTERM"],
                         stopped="web1 is growing: its run was stopped")  # fmt: skip
    assert pull.judge(stopped) == (
        "failed",
        errors.NO_SPACE,
        "web1 is growing: its run was stopped",
    )
    # Even had rsync finished first: the watch's last word decides.
    assert pull.judge(PullResult(exit_code=0, stopped="x"))[1] == errors.NO_SPACE


def test_judge_host_key_mismatch_is_a_refusal() -> None:
    state, code, message = verdict(
        255,
        "Host key verification failed.",
        "rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]",
    )
    assert (state, code) == ("failed", errors.REFUSED)
    assert "host key" in message


def test_judge_gate_error_is_a_refusal_and_quoted() -> None:
    state, code, message = verdict(
        12,
        "gate error: option '--delete' is not allowed",
        "rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]",
        "rsync error: error in rsync protocol data stream (code 12)",
    )
    assert (state, code) == ("failed", errors.REFUSED)
    assert message == "gate error: option '--delete' is not allowed"


def test_judge_connection_refused_is_unreachable() -> None:
    state, code, message = verdict(
        255, "ssh: connect to host 192.0.2.5 port 40022: Connection refused"
    )
    assert (state, code) == ("failed", errors.UNREACHABLE)
    assert "connect back" in message


def test_judge_refused_key() -> None:
    assert verdict(255, "backup@192.0.2.5: Permission denied (publickey).")[1] == errors.REFUSED


def test_judge_other_failures_keep_the_last_error() -> None:
    state, code, message = verdict(12, "first", "rsync error: something (code 12)")
    assert (state, code) == ("failed", errors.FAILED)
    assert message == "rsync failed with exit 12: rsync error: something (code 12)"
    assert verdict(1) == ("failed", errors.FAILED, "rsync failed with exit 1")


def test_a_partial_verdict_names_the_first_paths_and_counts_them() -> None:
    lines = [
        'rsync: [sender] send_files failed to open "/etc/shadow": Permission denied (13)',
        'rsync: [sender] opendir "/root" failed: Permission denied (13)',
        'rsync: [sender] opendir "/var/lib/x" failed: Permission denied (13)',
        'rsync: [sender] send_files failed to open "/etc/gshadow": Permission denied (13)',
        'rsync: [sender] link_stat "/srv/data" failed: No such file or directory (2)',
    ]
    failed = [f for f in map(pull.failed_path, lines) if f is not None]
    result = pull.PullResult(exit_code=23, errors=lines, failed_paths=failed,
                             failed_paths_total=6)  # fmt: skip
    state, code, message = pull.judge(result)
    assert (state, code) == ("partial", errors.PARTIAL)
    assert message == ("5 unreadable: /etc/shadow, /root, /var/lib/x and 2 more; "
                       "1 missing: /srv/data (rsync exit 23)")  # fmt: skip
