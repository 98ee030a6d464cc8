"""Network namespaces for the local cluster and the test hosts, and a switched LAN between them.

A Netns is joined to the machine by one veth pair, or plugged into a Lan: a bridge in a network
namespace of its own that the machine joins the same way, so the hosts of a multi-host site reach
each other and the machine's side, and nothing else.

House rule: traffic stays on loopback or inside network namespaces this code creates. So no
namespace gets a default route, and nothing inside can reach beyond the machine-side address.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Netns:
    name: str  # also the name under /run/netns
    host_if: str  # veth end in the host namespace
    host_ip: str
    node_ip: str  # veth end inside the namespace; the node's address
    prefix_len: int

    @property
    def path(self) -> Path:
        return Path("/run/netns") / self.name

    def exists(self) -> bool:
        return self.path.exists()

    def create(self, lan: Lan | None = None) -> None:
        """Without `lan`, host_if gets host_ip on the machine; with it, host_if is a port of the
        LAN's bridge, and host_ip must be the LAN's machine-side address."""
        if self.exists():
            raise RuntimeError(
                f"network namespace {self.name} already exists (left over from a crashed run?); "
                f"clean it with: ip netns delete {self.name}"
            )
        inner_if = "eth0"  # fine inside the namespace: it is the only interface besides lo
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", inner_if, "netns", self.name)
        if lan:
            lan.plug(self.host_if)
        else:
            _ip("addr", "add", f"{self.host_ip}/{self.prefix_len}", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
        _ip("-n", self.name, "addr", "add", f"{self.node_ip}/{self.prefix_len}", "dev", inner_if)
        _ip("-n", self.name, "link", "set", inner_if, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")

    def delete(self) -> None:
        """Remove the namespace; its veth end goes with it and takes the host end along."""
        _delete_netns(self.name, self.host_if)

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside the namespace.

        nsenter joins only the network namespace. `ip netns exec` would also give each process
        a private mount namespace with a fresh /sys (hiding /sys/fs/cgroup), and then kubelet
        and containerd would not see each other's volume mounts.
        """
        return ["nsenter", f"--net={self.path}", "--", *argv]


@dataclass(frozen=True)
class Lan:
    """One layer-2 segment, 10.213.INDEX.0/24: the bridge `lan` in network namespace ark-lan-INDEX.
    The machine is on it as 10.213.INDEX.1 (veth ark-lanINDEX); host N plugged in is 10.213.INDEX.N.
    A standalone host with the same INDEX would use 10.213.INDEX.0/30: never run both at once."""

    index: int
    prefix_len = 24

    def __post_init__(self) -> None:
        if not 1 <= self.index <= 199:
            raise ValueError(f"LAN index must be 1..199: {self.index}")

    @property
    def name(self) -> str:
        return f"ark-lan-{self.index}"

    @property
    def host_if(self) -> str:
        return f"ark-lan{self.index}"

    @property
    def host_ip(self) -> str:
        return self.address(1)

    def address(self, number: int) -> str:
        if not 1 <= number <= 254:
            raise ValueError(f"a LAN address number is 1..254 (1 is the machine): {number}")
        return f"10.213.{self.index}.{number}"

    @property
    def path(self) -> Path:
        return Path("/run/netns") / self.name

    def exists(self) -> bool:
        return self.path.exists()

    def create(self) -> None:
        if self.exists():
            raise RuntimeError(
                f"network namespace {self.name} already exists (left over from a crashed run?); "
                f"clean it with: ip netns delete {self.name}"
            )
        try:
            _ip("netns", "add", self.name)
            _ip("-n", self.name, "link", "add", "lan", "type", "bridge")
            _ip("-n", self.name, "link", "set", "lan", "up")
            # The peer is made inside the LAN: a name on the machine could clash with another LAN's.
            _ip("link", "add", self.host_if, "type", "veth", "peer", "name", "uplink", "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/{self.prefix_len}", "dev", self.host_if)
            _ip("link", "set", self.host_if, "up")
            self._attach("uplink")
        except BaseException:
            self.delete()
            raise

    def plug(self, link: str) -> None:
        """Move `link` (a veth end on the machine) into the LAN as a port of its bridge."""
        _ip("link", "set", link, "netns", self.name)
        self._attach(link)

    def _attach(self, link: str) -> None:
        _ip("-n", self.name, "link", "set", link, "master", "lan")
        _ip("-n", self.name, "link", "set", link, "up")

    def delete(self) -> None:
        """Remove the LAN; its ports go with it and take their machine-side ends along."""
        _delete_netns(self.name, self.host_if)


def _delete_netns(name: str, host_if: str) -> None:
    """Remove network namespace `name`, or the machine-side link `host_if` of a setup that failed
    half-way, and wait for that link to go: the kernel destroys a veth pair asynchronously, and a
    quick restart must not find it."""
    host_link = Path("/sys/class/net", host_if)
    if Path("/run/netns", name).exists():
        _ip("netns", "delete", name)
    elif host_link.exists():
        _ip("link", "delete", host_if)
    deadline = time.monotonic() + 5
    while host_link.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
