"""The dashboard's overview and usage pages (the key pages live in keys/, the plan page in plans/)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.charts import BarChart, Series, bar_chart
from accounts.forms import UsageFilterForm
from accounts.models import User
from accounts.selectors import user_has_verified_email
from gateway.selectors import WindowUsage, api_key_window_usage
from gateway.usage.models import Granularity
from gateway.usage.selectors import (
    DEFAULT_PERIOD,
    PERIODS,
    Period,
    UsageTotals,
    filled_series,
    usage_by_key,
    usage_by_key_and_model,
    usage_by_model,
    usage_export_rows,
    usage_series,
    usage_totals,
)
from keys.models import ApiKey
from keys.selectors import api_key_list
from llmapi.database_router import reads_from_replica
from plans.selectors import plan_for_user

REQUEST_SERIES = [Series("requests", "Requests")]
TOKEN_SERIES = [
    Series("input", "Input"),
    Series("output", "Output"),
    Series("cache-write", "Cache write"),
    Series("cache-read", "Cache read"),
]
MODEL_CHOICE_DAYS = 30


@dataclass(frozen=True)
class KeyWindows:
    api_key: ApiKey
    windows: list[WindowUsage]  # empty when the limiter cannot be read


def key_windows(*, user: User) -> list[KeyWindows]:
    return [KeyWindows(api_key=key, windows=api_key_window_usage(api_key=key)) for key in api_key_list(user=user)]


@require_GET
@login_required
def overview(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard/overview.html",
        {
            "plan": plan_for_user(user=request.user),
            "key_windows": key_windows(user=request.user),
            "email_verified": user_has_verified_email(user=request.user),
        },
    )


@require_GET
@login_required
def windows_panel(request: HttpRequest) -> HttpResponse:
    """The overview's window bars alone: htmx refreshes them while the page is open."""
    return render(request, "dashboard/_windows.html", {"key_windows": key_windows(user=request.user)})


def usage_filter_form(request: HttpRequest, *, now: datetime) -> UsageFilterForm:
    """The usage page's filters, bound to the query string when there is one (the CSV export reads the same)."""
    model_names = [name for name, _ in usage_by_model(user=request.user, since=now - timedelta(days=MODEL_CHOICE_DAYS))]
    return UsageFilterForm(request.GET or None, user=request.user, model_names=model_names)


@require_GET
@login_required
@reads_from_replica
def usage(request: HttpRequest) -> HttpResponse:
    now = datetime.now(UTC)
    form = usage_filter_form(request, now=now)
    if request.GET and not form.is_valid():
        return render(request, "dashboard/usage.html", {"form": form}, status=400)
    filters = form.cleaned_data if form.is_bound else {}
    period = PERIODS[filters.get("period") or DEFAULT_PERIOD]
    api_key = filters.get("key")
    model = filters.get("model") or None
    since = period.start(now)
    series = filled_series(
        period=period,
        now=now,
        points=usage_series(
            user=request.user,
            granularity=period.granularity,
            since=since,
            api_key_id=api_key.pk if api_key else None,
            model=model,
        ),
    )
    return render(
        request,
        "dashboard/usage.html",
        {
            "form": form,
            "period": period,
            "filtered": api_key is not None or model is not None,
            "series": series,
            "request_chart": requests_chart(period=period, series=series),
            "token_chart": tokens_chart(period=period, series=series),
            "totals": usage_totals(user=request.user, since=since),
            "by_key": usage_by_key(user=request.user, since=since),
            "by_model": usage_by_model(user=request.user, since=since),
            "by_key_and_model": usage_by_key_and_model(user=request.user, since=since),
        },
    )


def bucket_label(*, period: Period, start: datetime) -> str:
    return f"{start:%H:%M}" if period.granularity == Granularity.HOUR else f"{start:%b} {start.day}"


def requests_chart(*, period: Period, series: list[tuple[datetime, UsageTotals]]) -> BarChart:
    points = [(bucket_label(period=period, start=start), [totals.requests]) for start, totals in series]
    return bar_chart(title="Requests", series=REQUEST_SERIES, points=points)


def tokens_chart(*, period: Period, series: list[tuple[datetime, UsageTotals]]) -> BarChart:
    points = [
        (
            bucket_label(period=period, start=start),
            [
                totals.input_tokens,
                totals.output_tokens,
                totals.cache_creation_input_tokens,
                totals.cache_read_input_tokens,
            ],
        )
        for start, totals in series
    ]
    return bar_chart(title="Tokens", series=TOKEN_SERIES, points=points)


@require_GET
@login_required
@reads_from_replica
def usage_export(request: HttpRequest) -> HttpResponse:
    """The period's rollups as CSV, one row per hour or day, key and model, with the usage page's filters.

    Built whole rather than streamed: a month of one account's rollups is small, and Django's ASGI
    handler would have to buffer a synchronous stream anyway.
    """
    now = datetime.now(UTC)
    form = usage_filter_form(request, now=now)
    if form.is_bound and not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        return HttpResponse(f"Bad filters: {problems}", status=400, content_type="text/plain")
    filters = form.cleaned_data if form.is_bound else {}
    period = PERIODS[filters.get("period") or DEFAULT_PERIOD]
    api_key = filters.get("key")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="llmapi-usage-{period.slug}.csv"'
    rows = usage_export_rows(
        user=request.user,
        granularity=period.granularity,
        since=period.start(now),
        api_key_id=api_key.pk if api_key else None,
        model=filters.get("model") or None,
    )
    csv.writer(response).writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    return response


def spreadsheet_safe(cell: object) -> object:
    """Key names are the user's text: one starting like a formula is quoted so a spreadsheet shows, not runs, it."""
    if isinstance(cell, str) and cell[:1] in {"=", "+", "-", "@"}:
        return "'" + cell
    return cell
