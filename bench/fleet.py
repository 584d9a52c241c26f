"""Many hosts, one vault: `sudo .venv/bin/python -m bench.fleet [--hosts N] ...`.

N backed-up hosts, each in a network namespace of its own (fleetnet.py)
with its own account, login key bound to its name and address, config and
seeded tree (fleetsite.py), all calling one vault (one grabber account
behind a real sshd on the bridge address) within one second:

  (a) first night, max_concurrent_pulls = each of --caps (0: no cap)
  (b) the same with one host stalled mid-transfer (its sending rsync
      SIGSTOPped), in both receiver modes
  (c) one host sending --big times the data of the others
  (d) a second night, nothing changed

and, before them, host 7's key used from host 8's address (refused).  Per
night (fleetnight.py): makespan, each host's queue wait and run time, the
vault's peak memory and CPU, files/s and MiB/s, whether every host got
exactly its own snapshot.  Writes bench/fleet.json, bench/FLEET.md and
bench/fleet-queue.png (fleetreport.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

from bench.fleetmeter import CpuGroup
from bench.fleetnight import Night, run_night
from bench.fleetsite import Fleet, TreeSpec, change_files, seed_tree

HERE = os.path.dirname(os.path.abspath(__file__))


def binding_check(fleet: Fleet, thief: int = 7, place: int = 8) -> dict[str, Any]:
    """Host `thief`'s key and config, from host `place`'s address: sshd refuses it."""
    assert fleet.lab is not None
    host, other = fleet.hosts[thief], fleet.hosts[place]
    with open(host.config) as f:
        text = f.read()
    moved = host.config.replace(".toml", f"-from-{other.name}.toml")
    with open(moved, "w") as f:
        f.write(text.replace(f'"{host.address}"', f'"{other.address}"'))
    before = sorted(os.listdir(fleet.repo))
    argv = fleet.initiator_argv(host, ns_of=other)
    argv[argv.index(host.config)] = moved
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return {
        "key_of": host.name, "from_address_of": other.name, "exit": done.returncode,
        "refused": done.returncode != 0 and sorted(os.listdir(fleet.repo)) == before,
        "said": done.stderr.strip().splitlines()[-1:] if done.stderr else [],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n")[0])
    p.add_argument("--hosts", type=int, default=32)
    p.add_argument("--files", type=int, default=2000, help="files per host")
    p.add_argument("--mean-size", type=int, default=4096, help="mean file size, bytes")
    p.add_argument("--caps", default="1,2,4,8,0", help="max_concurrent_pulls for (a); 0: none")
    p.add_argument("--cap", type=int, default=8, help="max_concurrent_pulls for (b), (c), (d)")
    p.add_argument("--big", type=int, default=50, help="(c): host 0 sends this many times more")
    p.add_argument("--rsync-timeout", type=float, default=20)
    p.add_argument(
        "--stall-after",
        type=float,
        default=0.3,
        help="(b): seconds after its sender starts that the host is stopped",
    )
    p.add_argument("--mode", choices=("super", "fake-super"), default="super")
    p.add_argument("--scenarios", default="a,b,c,d")
    p.add_argument("--base", default="/var/tmp/pullsnap-fleet")
    p.add_argument("--out", default=HERE, help="where fleet.json, FLEET.md and the PNG go")
    p.add_argument(
        "--name",
        default="fleet",
        help="NAME.json, and the table between NAME's markers in FLEET.md",
    )
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("fleet: run as root (it makes namespaces, users and an sshd)", file=sys.stderr)
        return 2
    # A timeout or ^C still removes the namespaces, users and mounts (finally).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wanted = set(args.scenarios.split(","))
    tree = TreeSpec(args.files, args.mean_size)
    big = TreeSpec(args.files, args.mean_size * args.big)
    nights: list[Night] = []
    results: dict[str, Any] = {"hosts": args.hosts, "files_per_host": args.files,
                               "mean_size": args.mean_size, "mode": args.mode,
                               "cpus": os.cpu_count(), "nights": []}  # fmt: skip
    fleet = Fleet(os.path.abspath(args.base), args.hosts, default_tree=tree)
    mounts = contextlib.ExitStack()
    try:
        started = time.monotonic()
        fleet.setup()
        if args.mode == "super":
            assert fleet.lab is not None
            fleet.lab.use_launcher(True)
            mounts.enter_context(fleet.lab.nosuid_mount(fleet.repo))
        results["source_bytes"] = fleet.source_bytes
        results["setup_seconds"] = round(time.monotonic() - started, 1)
        if args.hosts > 8:
            fleet.configure_vault()
            results["binding"] = binding_check(fleet)
            _say(f"binding: {results['binding']}")

        def night(name: str, cap: int, mode: str = args.mode, **kw: Any) -> Night:
            n = run_night(fleet, name, cap, mode, args.rsync_timeout, **kw)
            nights.append(n)
            results["nights"].append(n.as_json())
            _say(f"{name} cap={cap} {mode}: makespan {n.makespan:.1f}s all_good={n.all_good} "
                 f"peak {n.peak_rss / 2**20:.0f} MiB cpu {n.vault_cpu:.1f}s "
                 f"violations={n.order_violations} stalled_held={n.stalled_held:.1f}")  # fmt: skip
            _write(args.out, results, nights, args.name)
            return n

        if "a" in wanted:
            for cap in (int(c) for c in args.caps.split(",")):
                fleet.empty_repo()
                night("a", cap)
        if "d" in wanted:
            if not os.listdir(fleet.repo):
                night("a", args.cap)
            night("d", args.cap)
            for host in fleet.hosts:  # a 1% night, for the projection's per-file cost
                change_files(host.src, 0.01, seed=host.index)
            night("d1", args.cap)
        if "b" in wanted:
            for mode in ("super", "fake-super") if args.mode == "super" else ("fake-super",):
                fleet.empty_repo()
                night(
                    "b",
                    args.cap,
                    mode,
                    stall=fleet.hosts[len(fleet.hosts) // 2],
                    stall_after=args.stall_after,
                )
        if "c" in wanted:
            heavy = fleet.hosts[0]
            shutil.rmtree(heavy.src)
            results["big_source_bytes"] = seed_tree(heavy.src, heavy.name, big, seed=1000)
            fleet.empty_repo()
            night("c", args.cap)
    finally:
        fleet.close()  # its processes first: a mount they use cannot go
        mounts.close()
        if fleet.lab is not None:
            CpuGroup(f"pullsnap-fleet-{fleet.lab.tag}").close()
    _write(args.out, results, nights, args.name)
    return 0 if all(n.all_good for n in nights) else 1


def _say(text: str) -> None:
    print(f"fleet: {text}", file=sys.stderr, flush=True)


def _write(out: str, results: dict[str, Any], nights: list[Night], name: str) -> None:
    from bench import fleetreport

    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    fleetreport.write(out, results, nights, name)


if __name__ == "__main__":
    sys.exit(main())
