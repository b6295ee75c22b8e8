"""Who the client is: the TCP peer, unless that peer is one of the configured TRUSTED_PROXIES.

Login lockouts count per client address, so an address a client can choose (an X-Forwarded-For it
sends itself) would let it rotate past them. Only a listed proxy is believed about who it forwards for.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def trusted_networks(proxies: tuple[str, ...]) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(proxy.strip(), strict=False) for proxy in proxies)
    except ValueError as error:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES holds an address that is not an IP or CIDR: {error}") from None


def parse_address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:443", as some proxies write IPv6 with a port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "203.0.113.7:51000"
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_trusted(address: Address, networks: Iterable[Network]) -> bool:
    return any(address in network for network in networks)


def client_ip(*, peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[str]) -> str | None:
    """The client's address as a string, or None when not even the peer's address is known.

    X-Forwarded-For is read from the right: every entry a trusted proxy appended names the hop before
    it, so the first entry that is not itself a trusted proxy is the client. Entries left of it were
    written by the client and are ignored, whatever they say.
    """
    peer_address = parse_address(peer or "")
    if peer_address is None:
        return None
    networks = trusted_networks(tuple(trusted_proxies))
    if not forwarded_for or not is_trusted(peer_address, networks):
        return str(peer_address)
    nearest = peer_address
    for entry in reversed(forwarded_for.split(",")):
        address = parse_address(entry)
        if address is None:
            # Proxies write addresses only: this one passed on what its client sent, so trust no further.
            return str(nearest)
        if not is_trusted(address, networks):
            return str(address)
        nearest = address
    return str(nearest)
