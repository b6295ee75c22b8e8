"""Public pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from plans.selectors import plan_list_public


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "pages/home.html", {"plans": plan_list_public()})
