"""A client that sends exactly the bytes a test gives it: duplicated, huge or non-latin-1 headers, any body."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

Header = tuple[str, bytes]


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name), None)

    def json(self) -> object:
        return orjson.loads(self.body)


def send(base_url: str, method: str, target: str, headers: list[Header], body: bytes = b"") -> RawResponse:
    """One request on a fresh connection (a refused request may close it), the response read whole."""
    location = urlsplit(base_url)
    connection = http.client.HTTPConnection(location.hostname, location.port, timeout=60)
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("host", f"{location.hostname}:{location.port}")
        for name, value in headers:
            connection.putheader(name, value)
        if body or method not in {"GET", "HEAD", "DELETE", "OPTIONS"}:
            connection.putheader("content-length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        return RawResponse(response.status, response.getheaders(), response.read())
    finally:
        connection.close()
