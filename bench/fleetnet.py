"""The fleet bench's network: one bridge, one namespace per backed-up host.

    root namespace                      host namespaces (ip netns)
    bridge pfb<tag> 10.<n>.0.1/24  <──  veth pf<tag>h<i> ── eth0 10.<n>.0.<10+i>/24
    (the vault's sshd listens here)      (the host's initiator and its door)

The subnet is a private 10.x.0.0/24 that no interface of this machine uses;
everything is made with `ip` and removed by `Fleetnet.close()`.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass, field

FIRST_HOST = 10  # 10.x.0.10 is host 0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def used_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "-o", "addr"], check=True, capture_output=True, text=True)
    return [ipaddress.ip_interface(line.split()[3]).network for line in out.stdout.splitlines()]


def free_subnet() -> ipaddress.IPv4Network:
    """A 10.x.0.0/24 that overlaps nothing on this machine."""
    used = used_networks()
    for second in range(251, 100, -1):
        candidate = ipaddress.ip_network(f"10.{second}.0.0/24")
        if not any(candidate.overlaps(net) for net in used):
            return candidate
    raise RuntimeError("no free 10.x.0.0/24 for the fleet bench's bridge")


@dataclass
class Fleetnet:
    tag: str
    subnet: ipaddress.IPv4Network = field(default_factory=free_subnet)
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"pfb{self.tag}"

    @property
    def vault_address(self) -> str:
        return str(self.subnet.network_address + 1)

    def address(self, index: int) -> str:
        return str(self.subnet.network_address + FIRST_HOST + index)

    def namespace(self, index: int) -> str:
        return f"pullsnap-fleet-{self.tag}-{index}"

    def open(self, hosts: int) -> Fleetnet:
        if hosts > 240:
            raise ValueError("at most 240 hosts fit the bench's /24")
        _ip("link", "add", self.bridge, "type", "bridge")
        self.links.append(self.bridge)
        _ip("addr", "add", f"{self.vault_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i in range(hosts):
            self.add_host(i)
        return self

    def add_host(self, index: int) -> None:
        ns, outer = self.namespace(index), f"pf{self.tag}h{index}"
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("link", "add", outer, "type", "veth", "peer", "name", "eth0", "netns", ns)
        self.links.append(outer)
        _ip("link", "set", outer, "master", self.bridge)
        _ip("link", "set", outer, "up")
        _ip("-n", ns, "addr", "add", f"{self.address(index)}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")

    def run_in(self, index: int) -> list[str]:
        """The argv prefix that runs a command in host `index`'s namespace."""
        return ["ip", "netns", "exec", self.namespace(index)]

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        for link in reversed(self.links):  # a veth goes with its namespace's end
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
        self.namespaces.clear()
        self.links.clear()
