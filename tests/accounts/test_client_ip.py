"""The client's address: X-Forwarded-For counts only when a TRUSTED_PROXIES proxy sent it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from llmapi.client_ip import client_ip

PROXIES = ["10.0.0.0/8", "192.0.2.1"]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "trusted", "expected"),
    [
        # No proxies configured: the peer is the client, whatever header it sends.
        ("127.0.0.1", "203.0.113.9", [], "127.0.0.1"),
        # A peer that is not a listed proxy names nobody.
        ("198.51.100.4", "203.0.113.9", PROXIES, "198.51.100.4"),
        # A listed proxy names its client.
        ("10.1.2.3", "203.0.113.9", PROXIES, "203.0.113.9"),
        # The client's own entries (left of what the proxy appended) are ignored.
        ("10.1.2.3", "1.1.1.1, 2.2.2.2, 203.0.113.9", PROXIES, "203.0.113.9"),
        # A chain of listed proxies is walked back to the first hop that is not one.
        ("192.0.2.1", "203.0.113.9, 10.9.9.9", PROXIES, "203.0.113.9"),
        # Garbage is never the client: the nearest proxy stands in.
        ("10.1.2.3", "203.0.113.9, not-an-address", PROXIES, "10.1.2.3"),
        # Only proxies in the chain: the farthest one.
        ("10.1.2.3", "10.0.0.7", PROXIES, "10.0.0.7"),
        ("10.1.2.3", "[2001:db8::1]:443", PROXIES, "2001:db8::1"),
        ("10.1.2.3", "203.0.113.9:51000", PROXIES, "203.0.113.9"),
        ("10.1.2.3", "", PROXIES, "10.1.2.3"),
        ("not-an-address", None, PROXIES, None),
    ],
)
def test_client_ip(peer, forwarded_for, trusted, expected):
    assert client_ip(peer=peer, forwarded_for=forwarded_for, trusted_proxies=trusted) == expected


def test_a_bad_proxy_entry_is_a_configuration_error():
    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        client_ip(peer="10.0.0.1", forwarded_for="1.2.3.4", trusted_proxies=["10.0.0.0/33"])
