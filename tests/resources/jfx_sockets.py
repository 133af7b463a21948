"""What a server process really listens on, read from the kernel (``/proc/net/tcp``, ``tcp6``).

A server's printed URL is built from the host it was asked for; only the socket
table shows the address it bound.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from pathlib import Path

_LISTEN = "0A"


def _address(hex_ip: str) -> str:
    raw = bytes.fromhex(hex_ip)
    # the kernel prints each 32-bit word of the address in host byte order
    words = b"".join(struct.pack("=I", int.from_bytes(raw[i:i + 4], "big")) for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def listening_addresses(port: int) -> set[str]:
    """The local addresses of every TCP socket listening on ``port`` (IPv4 and IPv6)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            hex_ip, hex_port = local.split(":")
            if state == _LISTEN and int(hex_port, 16) == port:
                found.add(_address(hex_ip))
    return found


def can_read_proc_net() -> bool:
    """Whether this machine has a Linux socket table to read."""
    return Path("/proc/net/tcp").exists() and hasattr(socket, "AF_INET")
