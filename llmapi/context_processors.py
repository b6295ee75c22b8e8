"""Values every template may use."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, str]:
    return {"PUBLIC_BASE_URL": settings.PUBLIC_BASE_URL}
