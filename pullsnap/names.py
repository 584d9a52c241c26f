"""Names that become paths or addresses (pure): host names, IP address text."""

from __future__ import annotations

import ipaddress
import re

from pullsnap.errors import BindingError

# A host name is a directory name in the repository: lowercase DNS-ish
# labels, no leading dot or dash, no "..", no "/", at most 63 characters.
_HOST_RE = re.compile(
    r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\Z"
)
_RESERVED = frozenset({"latest", "lock", "trash"})


def check_host_name(name: str) -> str:
    """Return `name` if it is safe as `<repository>/<name>`, else refuse."""
    if (
        not isinstance(name, str)
        or len(name) > 63
        or not _HOST_RE.match(name)
        or ".." in name
        or name in _RESERVED
    ):
        raise BindingError(
            f"host name {name!r} is not allowed (use lowercase letters, digits, '-', '.')"
        )
    return name


def normalise_address(address: str) -> str:
    """Canonical text of an IP address; IPv4-mapped IPv6 becomes IPv4."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)
