"""Public pages: the landing page with the pricing table, and the quickstart docs for this deployment."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from llmapi.docs_content import ERRORS, MODEL_NOTES, RATE_LIMIT_HEADERS
from llmapi.selectors import listed_model_list
from plans.selectors import plan_list_public


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/home.html", {"plans": plan_list_public()})


@require_safe
def hello(request: HttpRequest) -> HttpResponse:
    """Claude Code sends `HEAD /api/hello` to its base URL at every start, without credentials, to warm its
    connection: answer at once, with no body and nothing logged."""
    return HttpResponse(status=204)


STATUS_LINE_SCRIPT = Path(settings.BASE_DIR) / "keys" / "statusline_script.py"


@require_safe
def statusline_script(request: HttpRequest) -> HttpResponse:
    """The Claude Code status line script (docs/claude-code.md), to download and run as it is."""
    response = HttpResponse(STATUS_LINE_SCRIPT.read_bytes(), content_type="text/x-python; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="llmapi-statusline.py"'
    return response


@require_safe
def docs(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "pages/docs.html",
        {
            "base_url": settings.PUBLIC_BASE_URL,
            "featured_models": MODEL_NOTES.items(),
            "models": listed_model_list(),
            "plans": plan_list_public(),
            "errors": ERRORS,
            "rate_limit_headers": RATE_LIMIT_HEADERS,
        },
    )
