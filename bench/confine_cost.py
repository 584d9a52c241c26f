"""What the receiver's own root costs: `python -m bench.confine_cost [FILES] [DIRS] [ROUNDS]`
(as root; its trees go to $TMPDIR).

Builds FILES small files in DIRS directories (added_cost.make_source), makes
a first snapshot with the grabber's rsync options (local, --super), then
times no-change snapshots (--link-dest, --insecure-links: pullsnap's form),
each into a fresh tree, with rsync under

    none       no confinement
    before     Landlock and the mount namespace pullsnap used before: the
               backup host's whole tree read-only, the run's /etc bound over
               /etc, the host's directory writable
    own root   Landlock and the receiver's own root (rootview.py,
               mountns.own_root): only what its rules name, the host's
               directory writable and nosymfollow

the best of ROUNDS of each, taken in turns (a loaded machine slows one
round, not one of them), in wall time and in the CPU time of rsync's
processes (which other work on the machine disturbs least); and the cost
of building each confinement alone, around /bin/true.  Local rsync: both
of its processes are confined, as the receiver and its ssh are in a pull.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable

from bench.added_cost import make_source
from pullsnap import landlock
from pullsnap.grabber.confine import etcview, mountns, receiverpolicy, rootview
from pullsnap.grabber.transfer import pull

ROUNDS = 7
RSYNC = shutil.which("rsync") or "/usr/bin/rsync"
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
CONNECT = pull.ConnectBack("u", "127.0.0.1", 1, "/x/kh", "/x/k.pub", "/x/a", 30)
TRUE = "/usr/bin/true"


def argv_for(src: str, target: str, base: str | None) -> list[str]:
    spec = pull.PullSpec(RSYNC, "/usr/bin/ssh", CONNECT, (src,), target, (base,) if base else (),
                         mode="super", confined=True)  # fmt: skip
    argv = pull.rsync_argv(spec)
    return [*argv[: argv.index("-e")], "--", src + "/", target + "/"]


def before_namespace(host_dir: str, etc: str) -> None:
    """The previous receiver namespace (mountns.read_only_except until the
    receiver got its own root), rebuilt here to compare with."""
    lib = mountns._libc
    mountns._check(lib.unshare(mountns.CLONE_NEWNS), "unshare")
    rec, private, bind = mountns.MS_REC, mountns.MS_PRIVATE, mountns.MS_BIND
    mountns._check(lib.mount(b"none", b"/", None, rec | private, None), "private")
    mountns._check(lib.mount(etc.encode(), b"/etc", None, bind | rec, None), "etc")
    raw = host_dir.encode()
    mountns._check(lib.mount(raw, raw, None, bind | rec, None), "bind")
    mountns._setattr("/", mountns.MOUNT_ATTR_RDONLY, 0)
    mountns._setattr(host_dir, 0, mountns.MOUNT_ATTR_RDONLY)


def preexecs(base: str, src: str, host_dir: str) -> dict[str, Callable[[], None] | None]:
    private = os.path.join(base, "private")
    os.makedirs(os.path.join(private, rootview.ROOT), 0o700, exist_ok=True)
    etc = etcview.write_etc(private)
    rules = receiverpolicy.receiver_confinement(
        host_dir, private, extra_read=(src,), programs=(RSYNC, TRUE), etc=etc
    )
    shown = (*rules.read_only, *rules.executable, *rules.read_write)
    view = rootview.plan(shown, (host_dir,), etc, private, rootview.inspect_host)
    prepared = landlock.prepare(rules)

    def before() -> None:
        before_namespace(host_dir, etc)
        landlock.enforce(prepared)

    def own_root() -> None:
        mountns.own_root(view, own_user_namespace=False)
        landlock.enforce(prepared)

    return {"none": None, "before": before, "own root": own_root}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], preexec: Callable[[], None] | None) -> tuple[float, float]:
    """Wall time, and the CPU time (user and system) of rsync's processes:
    the figure a machine busy with other work disturbs least."""
    cpu = _children_cpu()
    started = time.monotonic()
    result = pull.run_rsync(argv, ENV, lambda p: None, lambda line: None, preexec, 3600)
    took = time.monotonic() - started
    if result.exit_code != 0:
        raise SystemExit(f"rsync failed ({result.exit_code}): {result.errors[-3:]}")
    return took, _children_cpu() - cpu


def spawn_cost(preexec: Callable[[], None] | None, rounds: int = 30) -> float:
    import subprocess

    best = float("inf")
    for _ in range(rounds):
        started = time.monotonic()
        subprocess.run([TRUE], preexec_fn=preexec, check=True, env=ENV)
        best = min(best, time.monotonic() - started)
    return best


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("bench.confine_cost: run it as root (the namespaces, --super)", file=sys.stderr)
        return 2
    files = int(argv[0]) if argv else 50_000
    dirs = int(argv[1]) if len(argv) > 1 else 500
    rounds = int(argv[2]) if len(argv) > 2 else ROUNDS
    ctypes.CDLL(None)  # the libc the namespaces use, loaded before the first fork
    with tempfile.TemporaryDirectory(prefix="pullsnap-bench-confine-") as base:
        src = os.path.join(base, "src")
        make_source(src, files, dirs)
        host_dir = os.path.join(base, "repo", "web1")
        first = os.path.join(host_dir, "2026-11-24T020000Z")
        os.makedirs(first)
        timed(argv_for(src, first, None), None)
        variants = preexecs(base, src, host_dir)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for i in range(rounds):
            for name, preexec in variants.items():
                target = os.path.join(host_dir, f"nc-{i}-{name.replace(' ', '-')}")
                os.makedirs(target)
                times[name].append(timed(argv_for(src, target, first), preexec))
                shutil.rmtree(target)
        setup = {name: spawn_cost(preexec) for name, preexec in variants.items()}
        print(f"no-change run of {files:,} files in {dirs:,} directories, local rsync "
              f"--super, best of {rounds} (median), wall and rsync's CPU time:")  # fmt: skip
        best = {name: (min(w for w, _ in t), min(c for _, c in t)) for name, t in times.items()}
        for name, took in times.items():
            wall, cpu = best[name]
            middle = len(took) // 2
            print(f"  {name:9s} wall {wall * 1000:7.1f} ms "
                  f"({sorted(w for w, _ in took)[middle] * 1000:.1f})  "
                  f"CPU {cpu * 1000:7.1f} ms ({sorted(c for _, c in took)[middle] * 1000:.1f}; "
                  f"{cpu / best['none'][1]:.3f}x unconfined)  "
                  f"spawning /bin/true: {setup[name] * 1000:.2f} ms")  # fmt: skip
        (before_wall, before_cpu), (own_wall, own_cpu) = best["before"], best["own root"]
        print(f"own root - before: wall {(own_wall - before_wall) * 1000:+.1f} ms "
              f"({own_wall / before_wall:.3f}x), CPU {(own_cpu - before_cpu) * 1000:+.1f} ms "
              f"({own_cpu / before_cpu:.3f}x), spawning "
              f"{(setup['own root'] - setup['before']) * 1000:+.2f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
