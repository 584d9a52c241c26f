"""`./demo.sh`: both roles on this machine, a sample tree, two backups.

Everything lives under <checkout>/.demo; running it again starts clean;
`./demo.sh clean` removes it and the demo's users.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time

from lab import Lab, make_sample_tree, remove_user
from pullsnap.grabber.store.repository import HostRepo

HOST = "demo-host"
USERS = {"initiator_user": "pullsnap-demo-i", "grabber_user": "pullsnap-demo-g",
         "plain_user": "pullsnap-demo-x"}  # fmt: skip


def checkout() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def clean(base: str) -> None:
    for name in USERS.values():
        remove_user(name)
    shutil.rmtree(base, ignore_errors=True)


def _regular_files(tree: str) -> dict[str, int]:
    found = {}
    for dirpath, _, files in os.walk(tree):
        for name in files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if os.path.isfile(path) and not os.path.islink(path):
                found[os.path.relpath(path, tree)] = st.st_ino
    return found


def _du(path: str) -> int:
    """KiB in use under path, each hardlinked file counted once (du(1))."""
    out = subprocess.run(["du", "-sk", path], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def main(argv: list[str]) -> int:
    base = os.path.join(checkout(), ".demo")
    if os.geteuid() != 0:
        print("demo: run as root (it creates two users and a loopback sshd)", file=sys.stderr)
        return 2
    clean(base)
    if argv[:1] == ["clean"]:
        print(f"demo: removed {base} and the demo users")
        return 0
    lab = Lab(base=base, venv_bin=os.path.dirname(sys.executable), **USERS)
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: subprocess.run(["sync"], check=False))
        stack.callback(lab.close)
        lab.setup()
        lab.use_launcher(True)
        sample = lab.path("sample")
        make_sample_tree(sample)
        grabber_config = lab.write_grabber_config()
        lab.authorize([(HOST, grabber_config)])
        config = lab.write_initiator_config(
            [sample], excludes=["*.fifo"], destination={"name": "vault"}
        )
        print("pullsnap demo: both roles on this machine, over 127.0.0.1")
        print(f"  backed-up host: user {lab.initiator_user} runs `initiator` (config {config})")
        print(
            f"  backup host:    user {lab.grabber_user}, login shell = grabber launcher,"
            f" sshd on 127.0.0.1:{lab.sshd.port if lab.sshd else '?'}"
        )
        print(f"  sample tree:    {sample}\n")
        seconds = []
        # As README asks of a --super repository: nosuid,nodev (undone at the end).
        stack.enter_context(lab.nosuid_mount(lab.path("repo")))
        for run in (1, 2):
            started = time.monotonic()
            done = lab.initiator("-c", config, "--now", "--format", "text")
            seconds.append(time.monotonic() - started)
            print(f"run {run} ({seconds[-1]:.2f} s): {done.stdout.strip() or done.stderr.strip()}")
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return done.returncode
        repo = HostRepo(lab.path("repo"), HOST)
        first, second = (a.name for a in repo.good())
        one = _regular_files(repo.tree(first) + sample)
        two = _regular_files(repo.tree(second) + sample)
        linked = sum(1 for rel, ino in two.items() if one.get(rel) == ino)
        added = repo.read_record(second) or {}
        print(
            f"\nsecond run: {linked} of {len(two)} regular files are hardlinks of run 1's"
            f" (same inode); {added.get('stats', {}).get('transferred_size', '?')} bytes"
            " of file data added"
        )
        print(
            f"disk: the first snapshot takes {_du(repo.tree(first))} KiB, the second adds"
            f" {_du(repo.path) - _du(repo.tree(first))} KiB (its directories, and both runs'"
            " records and manifests: no file data)"
        )
        print("\nsnapshots:")
        listing = lab.grabber("--config", grabber_config, "list")
        print("  " + listing.stdout.replace("\n", "\n  ").rstrip())
        print(f"\nbrowse:   ls -la {repo.path}/latest{sample}")
        print(f"restore:  cp -a {repo.path}/{first}{sample}/etc/motd /tmp/motd.restored")
        print("again:    ./demo.sh        remove all: ./demo.sh clean")
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
