"""Middleware of the Django side (the gateway has none: see llmapi/asgi.py)."""

from __future__ import annotations

import logging

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.deprecation import MiddlewareMixin

FORM_CONTENT_TYPES = {"multipart/form-data", "application/x-www-form-urlencoded"}
API_PREFIX = "/api/"  # llmapi/urls.py: its answers are JSON, errors in DRF's {"detail": ...}
UNREADABLE_FORM_MESSAGE = "The form in this request cannot be read."


class UnreadableFormMiddleware(MiddlewareMixin):
    """A form body that cannot be parsed (a multipart body without a boundary, too many fields) is a 400.

    Django turns that error into a 400 where a view reads the form, but not where an error page does:
    the 403 and 404 pages run the CSRF check, which reads the form, and the error then escaped as a 500
    (e.g. a multipart POST without a boundary to any unknown URL). Parsing it here, once, before
    anything else reads it, answers every such request alike.
    """

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        if request.method != "POST" or request.content_type not in FORM_CONTENT_TYPES:
            return None
        try:
            request.POST  # noqa: B018 - parsed (and kept) now, so that no later reader meets the error
        except (MultiPartParserError, SuspiciousOperation) as error:
            logging.getLogger(f"django.security.{type(error).__name__}").warning("Unreadable form: %s", error)
            return unreadable_form_response(request)
        return None


def unreadable_form_response(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": UNREADABLE_FORM_MESSAGE}, status=400)
    return HttpResponseBadRequest(UNREADABLE_FORM_MESSAGE, content_type="text/plain")
