"""The cluster's own network namespace, joined to the host by one veth pair.

House rule: traffic stays on loopback or inside network namespaces this code creates. So the
namespace gets no default route; the host reaches the API server and the registry on the
namespace-side veth address, and nothing in the namespace can reach beyond the host-side address.
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

    def create(self) -> None:
        if self.exists():
            raise RuntimeError(
                f"network namespace {self.name} already exists (left over from a crashed run?); "
                f"clean it with: python -m localsite.cluster clean"
            )
        inner_if = "eth0"  # fine inside the namespace: it is the only interface besides lo
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", inner_if, "netns", self.name)
        _ip("addr", "add", f"{self.host_ip}/{self.prefix_len}", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("-n", self.name, "addr", "add", f"{self.node_ip}/{self.prefix_len}", "dev", inner_if)
        _ip("-n", self.name, "link", "set", inner_if, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")

    def delete(self) -> None:
        """Remove the namespace; its veth end goes with it and takes the host end along."""
        host_link = Path("/sys/class/net", self.host_if)
        if self.exists():
            _ip("netns", "delete", self.name)
        elif host_link.exists():  # a setup that failed half-way
            _ip("link", "delete", self.host_if)
        # The kernel destroys the pair asynchronously; a quick restart must not find it.
        deadline = time.monotonic() + 5
        while host_link.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside the namespace.

        nsenter joins only the network namespace. `ip netns exec` would also give each process
        a private mount namespace with a fresh /sys (hiding /sys/fs/cgroup), and then kubelet
        and containerd would not see each other's volume mounts.
        """
        return ["nsenter", f"--net={self.path}", "--", *argv]


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
