"""A hostile backup host, for the door and sshd attack tests.

Installed as the forced command of the lab's plain account; the real
initiator logs in to it and hands over the one-time key as usual.  This
program then uses that key (as a compromised backup host could) for the
attack described in OUTDIR/spec.json and writes what happened to
OUTDIR/result.json.  Only the attack programs (ssh, rsync, sockets) are
real here; nothing of pullsnap's own defences is imitated.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from pullsnap import handoff


def _ssh_base(key: str, known_hosts: str, port: int, user: str) -> list[str]:
    return [
        "ssh", "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "HostKeyAlias=pullsnap-initiator", "-o", "ConnectTimeout=10", "-p", str(port),
        "-l", user,
    ]  # fmt: skip


def _run(argv: list[str], timeout: float = 30, env: dict | None = None) -> dict:
    try:
        done = subprocess.run(
            argv, capture_output=True, timeout=timeout, check=False,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"code": None, "stdout": "", "stderr": "timed out"}
    return {
        "code": done.returncode,
        "stdout": done.stdout.decode(errors="replace"),
        "stderr": done.stderr.decode(errors="replace"),
    }


def _probe_from(address: str, port: int) -> dict:
    """Connect from `address`; report what the door sent before it closed."""
    sock = socket.socket()
    sock.bind((address, 0))
    sock.settimeout(5)
    try:
        sock.connect(("127.0.0.1", port))
        data = sock.recv(1024)
        return {"connected": True, "received": data.decode(errors="replace")}
    except ConnectionResetError:
        return {"connected": True, "received": "", "reset": True}
    except OSError as e:
        return {"connected": False, "error": e.strerror or str(e)}
    finally:
        sock.close()


def main(outdir: str) -> int:
    with open(os.path.join(outdir, "spec.json")) as f:
        spec = json.load(f)
    data = sys.stdin.buffer.read(handoff.MAX_BODY + handoff.MAX_HEADER)
    h = handoff.decode(data)
    key = os.path.join(outdir, f"key-{os.getpid()}")
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, h.client_key.encode())
    os.close(fd)
    known_hosts = os.path.join(outdir, "known_hosts")
    with open(known_hosts, "w") as f:
        f.write(f"pullsnap-initiator {h.host_key}\n")
    base = _ssh_base(key, known_hosts, h.port, h.user)
    result: dict = {"port": h.port, "key": key, "paths": list(h.paths)}
    mode = spec["mode"]
    if mode == "door":
        result["stranger"] = _probe_from("127.0.0.2", h.port)
        time.sleep(0.2)
        rsh = " ".join(base)
        dest = os.path.join(outdir, "pulled")
        result["pull"] = _run(["rsync", "-a", "-e", rsh, f"127.0.0.1:{h.paths[0]}/", dest + "/"])
        result["pulled"] = sorted(os.listdir(dest)) if os.path.isdir(dest) else []
        result["second"] = _probe_from("127.0.0.1", h.port)
    elif mode == "ssh":
        result["ssh"] = _run(
            base[:1] + spec["options"] + base[1:] + ["127.0.0.1", *spec["command"]]
        )
    elif mode == "two-sessions":
        # One connection (an ssh control master), then two sessions through it.
        control = os.path.join(outdir, "control")
        master = subprocess.Popen(
            [*base, "-o", "ControlMaster=yes", "-o", f"ControlPath={control}", "-N", "127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(200):
            if os.path.exists(control):
                break
            time.sleep(0.05)
        rsh = " ".join([*base, "-o", "ControlMaster=no", "-o", f"ControlPath={control}"])
        for name in ("first", "second"):
            dest = os.path.join(outdir, name)
            result[name] = _run(["rsync", "-a", "-e", rsh, f"127.0.0.1:{h.paths[0]}/", dest + "/"])
        master.kill()
        master.wait()
    elif mode == "old-key":
        old = spec["key"]
        result["ssh"] = _run([*base[:4], old, *base[5:], "127.0.0.1", "true"])
    with open(os.path.join(outdir, "result.json"), "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
