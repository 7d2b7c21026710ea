"""Which address a request comes from, for the lookup throttle's per-source counter.

Azure App Service's front end appends the address it received the connection from to
``X-Forwarded-For``; everything to the left of that entry was written by the client and proves
nothing. ``TRUSTED_FORWARDED_HOPS`` says how many proxies we trust to have appended an entry:
1 on App Service (the front end), 0 with nothing trustworthy in front. We read the entry that the
outermost trusted proxy wrote, which is the hop'th entry from the right.

With 0 hops, or when the header is missing or shorter than the trusted hops (the front end
always writes one, so this is a misconfiguration or a bypass), there is no address to trust:
``None``, and the caller counts per booking code only. A malformed trusted entry is ``None`` too.
IPv6 addresses count per /64, the block one subscriber gets.
"""

from __future__ import annotations

import ipaddress

MAX_HEADER = 4096  # the trusted entries are at the right end; a longer header is cut from the left


def _host(entry: str) -> str:
    entry = entry.strip()
    if entry.startswith("["):  # [2001:db8::1]:443
        return entry[1:].split("]", 1)[0]
    if entry.count(":") == 1:  # 203.0.113.7:443
        return entry.split(":", 1)[0]
    return entry


def source_address(header: str | None, trusted_hops: int) -> str | None:
    """The caller's address as the trusted proxy saw it, normalised, or None."""
    if trusted_hops <= 0 or not header:
        return None
    entries = header[-MAX_HEADER:].split(",")
    if len(entries) < trusted_hops or (len(header) > MAX_HEADER and len(entries) == trusted_hops):
        return None  # cut mid-entry: the one we would read is not whole
    try:
        address = ipaddress.ip_address(_host(entries[-trusted_hops]))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, 64), strict=False)
        return f"{network.network_address}_64"  # "/" is not allowed in a Table key
    return str(address)
