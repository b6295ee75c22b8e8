"""The overview, usage and plan pages, and the public landing and docs pages."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from accounts.charts import Series, bar_chart, nice_ceiling
from gateway.models import ModelRoute
from gateway.usage.record import UsageRecord
from gateway.usage.services import usage_ingest
from keys.services import api_key_create
from plans.models import Plan
from tests.dashboard.conftest import post_form

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC)


def record(request_id: str, api_key, *, model: str = "claude-sonnet-4-6", hours_ago: float = 1, **tokens: int):
    return UsageRecord(
        request_id,
        api_key.pk,
        api_key.user_id,
        model,
        True,
        status=200,
        ended_at=(NOW - timedelta(hours=hours_ago)).timestamp(),
        **tokens,
    )


@pytest.fixture
def usage(alice, bob):
    laptop = api_key_create(user=alice, name="laptop").api_key
    ci = api_key_create(user=alice, name="=ci").api_key  # a formula-looking name, for the CSV test
    bobs = api_key_create(user=bob, name="bobs-secret-key").api_key
    usage_ingest(
        records=[
            record("r1", laptop, input_tokens=1200, output_tokens=340, cache_read_input_tokens=5000),
            record("r2", laptop, model="claude-opus-4-6", input_tokens=800, output_tokens=60),
            record("r3", ci, hours_ago=2, input_tokens=100, cache_creation_input_tokens=70),
            record("r4", laptop, hours_ago=24 * 10, input_tokens=9),  # only in the 30-day view
            record("r5", bobs, input_tokens=987_654),
        ]
    )
    return {"laptop": laptop, "ci": ci, "bobs": bobs}


# Overview


def test_overview_shows_plan_windows_and_the_variables(alice, alice_client, settings):
    api_key_create(user=alice, name="laptop")
    page = alice_client.get(reverse("dashboard:overview")).content.decode()
    assert "Your plan: Free" in page
    assert f"export ANTHROPIC_BASE_URL={settings.PUBLIC_BASE_URL}" in page
    assert "export ANTHROPIC_API_KEY=sk-llmapi-..." in page
    assert "laptop" in page
    for label in ("Per minute", "Per 5 hours", "Per week"):
        assert label in page
    assert "/ 10 used" in page
    assert "/ 40 used" in page
    assert "/ 200 used" in page


def test_overview_of_someone_without_keys_points_to_the_key_page(alice_client):
    page = alice_client.get(reverse("dashboard:overview")).content.decode()
    assert "No keys yet." in page


def test_the_windows_panel_is_the_users_own(alice, bob, bob_client):
    api_key_create(user=alice, name="alices")
    assert "alices" not in bob_client.get(reverse("dashboard:windows")).content.decode()


def test_dashboard_pages_need_a_login(client):
    for name in ("dashboard:overview", "dashboard:windows", "dashboard:usage", "dashboard:usage_export", "plans:plan"):
        response = client.get(reverse(name))
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("account_login"))


# Usage


def test_usage_page_shows_totals_charts_and_tables(alice_client, usage):
    response = alice_client.get(reverse("dashboard:usage"), {"period": "24h"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Last 24 hours, by hour" in page
    assert "2,100" in page  # input tokens of r1..r3
    assert "5,000" in page  # cache reads
    assert page.count("<svg") == 2
    assert "laptop" in page
    assert "claude-opus-4-6" in page
    assert "987,654" not in page  # Bob's usage
    assert "bobs-secret-key" not in page


def test_usage_page_shows_the_cache_hit_rate_per_key_and_model(alice_client, usage):
    """laptop on Sonnet read 5,000 of its 6,200 prompt tokens from the cache: 81%; ci wrote 70 of 170, read none."""
    page = alice_client.get(reverse("dashboard:usage"), {"period": "24h"}).content.decode()
    table = re.sub(r"\s+", "", page[page.index("Prompt cache, by key and model") :])
    cells = "<td><code>{model}</code></td><td>1</td><td>{uncached}</td><td>{write}</td><td>{read}</td><td>{rate}</td>"
    laptop, ci = table.index("laptop"), table.index("=ci")
    sonnet_on_laptop = cells.format(model="claude-sonnet-4-6", uncached="1,200", write=0, read="5,000", rate="81%")
    opus_on_laptop = cells.format(model="claude-opus-4-6", uncached=800, write=0, read=0, rate="0%")
    sonnet_on_ci = cells.format(model="claude-sonnet-4-6", uncached=100, write=70, read=0, rate="0%")
    assert table.index(sonnet_on_laptop) > laptop
    assert table.index(opus_on_laptop) > laptop
    assert table.index(sonnet_on_ci) > ci


def test_usage_periods(alice_client, usage):
    week = alice_client.get(reverse("dashboard:usage"), {"period": "7d"})
    month = alice_client.get(reverse("dashboard:usage"), {"period": "30d"})
    assert week.context["totals"].requests == 3
    assert month.context["totals"].requests == 4
    assert len(week.context["series"]) == 7
    assert len(month.context["series"]) == 30
    assert sum(totals.requests for _, totals in month.context["series"]) == 4
    hourly = alice_client.get(reverse("dashboard:usage"), {"period": "24h"}).context["series"]
    assert len(hourly) == 24
    assert sum(totals.requests for _, totals in hourly) == 3


def test_usage_filtered_by_key_and_model(alice_client, usage):
    by_key = alice_client.get(reverse("dashboard:usage"), {"period": "24h", "key": usage["ci"].pk}).context["series"]
    assert sum(totals.requests for _, totals in by_key) == 1
    by_model = alice_client.get(reverse("dashboard:usage"), {"period": "24h", "model": "claude-opus-4-6"})
    assert sum(totals.requests for _, totals in by_model.context["series"]) == 1


def test_usage_filter_with_someone_elses_key_is_a_form_error(alice_client, usage):
    response = alice_client.get(reverse("dashboard:usage"), {"key": usage["bobs"].pk})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Select a valid choice" in page
    assert "987,654" not in page


@pytest.mark.parametrize("query", [{"period": "1y"}, {"key": "abc"}, {"model": "not-a-model-i-used"}])
def test_bad_usage_filters_are_form_errors(alice_client, usage, query):
    response = alice_client.get(reverse("dashboard:usage"), query)
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_usage_page_with_no_usage(alice_client):
    page = alice_client.get(reverse("dashboard:usage")).content.decode()
    assert "nothing used in this period" in page
    assert "No requests in this period." in page


def test_csv_export_is_the_users_own(alice_client, usage):
    response = alice_client.get(reverse("dashboard:usage_export"), {"period": "30d"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="llmapi-usage-30d.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["period_start", "key", "model"]
    assert {row[1] for row in rows[1:]} == {"laptop", "'=ci"}  # a formula-looking name is quoted
    assert sum(int(row[3]) for row in rows[1:]) == 4
    assert "bobs-secret-key" not in response.content.decode()


def test_csv_export_honours_the_key_and_model_filters(alice_client, usage):
    def exported(**filters: object) -> list[list[str]]:
        response = alice_client.get(reverse("dashboard:usage_export"), {"period": "30d", **filters})
        assert response.status_code == 200
        return list(csv.reader(io.StringIO(response.content.decode())))[1:]

    assert {row[1] for row in exported(key=usage["ci"].pk)} == {"'=ci"}
    assert {(row[1], row[2]) for row in exported(model="claude-opus-4-6")} == {("laptop", "claude-opus-4-6")}
    assert alice_client.get(reverse("dashboard:usage_export"), {"key": usage["bobs"].pk}).status_code == 400


def test_the_usage_pages_csv_link_carries_its_filters(alice_client, usage):
    page = alice_client.get(reverse("dashboard:usage"), {"period": "7d", "key": usage["ci"].pk}).content.decode()
    assert f"{reverse('dashboard:usage_export')}?period=7d&amp;key={usage['ci'].pk}" in page


def test_csv_export_of_an_unknown_period_is_400(alice_client):
    assert alice_client.get(reverse("dashboard:usage_export"), {"period": "forever"}).status_code == 400


def test_last_used_comes_from_recorded_requests(alice_client, usage):
    page = alice_client.get(reverse("keys:list")).content.decode()
    assert page.count("Never") == 0  # both of Alice's keys have recorded requests


def test_axis_tops_are_round_numbers_with_whole_ticks():
    assert [nice_ceiling(value) for value in (0, 1, 3, 7, 10, 11, 450, 5001)] == [1, 1, 5, 10, 10, 20, 500, 10000]
    chart = bar_chart(title="Requests", series=[Series("requests", "Requests")], points=[("a", [3]), ("b", [0])])
    assert [tick.label for tick in chart.y_ticks] == ["0", "1", "2", "3", "4", "5"]
    assert chart.bars[0].segments[0].height > 0
    assert chart.bars[1].segments[0].height == 0


# Plan & billing


def test_plan_page_without_billing(alice_client, settings):
    settings.STRIPE_SECRET_KEY = ""
    page = alice_client.get(reverse("plans:plan")).content.decode()
    assert "You are on the Free plan" in page
    assert "Billing is not configured on this deployment yet" in page
    for plan in Plan.objects.filter(is_public=True):
        assert plan.name in page
    assert page.count("disabled") >= 4  # manage billing and the three upgrades


def test_plan_page_with_billing_configured_enables_the_buttons(alice_client, settings):
    settings.STRIPE_SECRET_KEY = "sk_test_configured"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_configured"
    page = alice_client.get(reverse("plans:plan")).content.decode()
    assert "Billing is not configured" not in page
    assert " disabled" not in page


def test_billing_buttons_change_nothing_until_billing_is_connected(alice, alice_client):
    response = post_form(alice_client, reverse("plans:checkout", args=["pro"]))
    assert response.status_code == 302
    assert "Online payment is not available" in alice_client.get(reverse("plans:plan")).content.decode()
    alice.refresh_from_db()
    assert alice.plan is None
    assert post_form(alice_client, reverse("plans:portal")).status_code == 302
    assert post_form(alice_client, reverse("plans:checkout", args=["gold"])).status_code == 404
    assert alice_client.post(reverse("plans:checkout", args=["pro"])).status_code == 403  # CSRF
    assert alice_client.get(reverse("plans:checkout", args=["pro"])).status_code == 405


# Public pages


def test_home_has_pricing_and_signup(client):
    page = client.get("/").content.decode()
    assert 'id="pricing"' in page
    assert reverse("account_signup") in page
    assert page.index("Free") < page.index("Pro") < page.index("Max 5x") < page.index("Max 20x")


def test_docs_page_uses_this_deployments_base_url(client, settings):
    page = html.unescape(client.get(reverse("docs")).content.decode())  # the text a reader copies
    base_url = settings.PUBLIC_BASE_URL
    assert f"export ANTHROPIC_BASE_URL={base_url}" in page  # macOS / Linux, temporary
    assert f"echo 'export ANTHROPIC_BASE_URL={base_url}' >> ~/.zshrc" in page  # permanent
    assert f'$env:ANTHROPIC_BASE_URL="{base_url}"' in page  # PowerShell, temporary
    assert f'SetEnvironmentVariable("ANTHROPIC_BASE_URL", "{base_url}", "User")' in page  # permanent
    assert f"curl {base_url}/v1/messages" in page
    assert "claude-sonnet-4-6" in page
    for error_type in ("invalid_request_error", "authentication_error", "rate_limit_error", "overloaded_error"):
        assert error_type in page
    for header in (
        "anthropic-ratelimit-requests-limit",
        "x-ratelimit-limit",
        "llmapi-ratelimit-requests-5h-limit",
        "llmapi-ratelimit-requests-week-limit",
    ):
        assert header in page


def test_docs_page_follows_the_database(client):
    Plan.objects.filter(slug="pro").update(requests_per_minute=23)
    ModelRoute.objects.create(pattern="claude-test-9", display_name="Claude Test 9", listed=True)
    ModelRoute.objects.filter(pattern="claude-3-5-haiku-latest").update(enabled=False)
    page = client.get(reverse("docs")).content.decode()
    assert "<td>23</td>" in page
    assert "claude-test-9" in page
    assert "claude-3-5-haiku-latest" not in page
