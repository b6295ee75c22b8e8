"""A form body nothing can parse is a 400 everywhere, also where only an error page reads it."""

from __future__ import annotations

import pytest

from tests.fuzz.raw_http import send

CSRF_COOKIE = ("cookie", b"csrftoken=ozxWZOwDzFdVxcH7JTM9IWwiNVKI6kYB")
NO_BOUNDARY = ("content-type", b"multipart/form-data")


@pytest.mark.parametrize("path", ["/nowhere/", "/api/nowhere/", "/accounts/login/"])
def test_a_multipart_body_without_a_boundary_is_a_bad_request(asgi_server, path):
    # Before: the 404 page's CSRF check read the form, and the parser's error escaped as a 500.
    response = send(asgi_server.base_url, "POST", path, [CSRF_COOKIE, NO_BOUNDARY], b"--x\r\n")
    assert response.status == 400


def test_the_api_says_so_in_json(asgi_server):
    response = send(asgi_server.base_url, "POST", "/api/keys/", [CSRF_COOKIE, NO_BOUNDARY], b"--x\r\n")
    assert response.status == 400
    assert response.json() == {"detail": "The form in this request cannot be read."}


def test_too_many_fields_is_a_bad_request(asgi_server):
    body = "&".join(f"field{number}=1" for number in range(1_500)).encode()
    headers = [CSRF_COOKIE, ("content-type", b"application/x-www-form-urlencoded")]
    assert send(asgi_server.base_url, "POST", "/nowhere/", headers, body).status == 400
