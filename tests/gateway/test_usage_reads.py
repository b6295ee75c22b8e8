"""What pages read of usage: series, breakdowns, totals, CSV rows, and the admin summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.usage.models import Granularity
from gateway.usage.record import UsageRecord
from gateway.usage.selectors import (
    UsageTotals,
    usage_by_key,
    usage_by_key_and_model,
    usage_by_model,
    usage_export_rows,
    usage_series,
    usage_totals,
)
from gateway.usage.services import usage_ingest
from keys.services import api_key_create

pytestmark = pytest.mark.django_db

# Recent days, so that "the last 30 days" of the admin summary include them whenever the tests run.
DAY_ONE = (datetime.now(UTC) - timedelta(days=3)).replace(hour=10, minute=30, second=0, microsecond=0)
DAY_TWO = DAY_ONE + timedelta(days=1)
SINCE = DAY_ONE - timedelta(days=7)


@pytest.fixture
def usage(alice, bob):
    laptop = api_key_create(user=alice, name="laptop").api_key
    ci = api_key_create(user=alice, name="ci").api_key
    bobs = api_key_create(user=bob, name="bob's").api_key

    def record(request_id: str, key, model: str, hours: int, tokens: int) -> UsageRecord:
        ended_at = DAY_ONE.timestamp() + hours * 3600
        return UsageRecord(
            request_id,
            key.pk,
            key.user_id,
            model,
            True,
            status=200,
            input_tokens=tokens,
            output_tokens=1,
            ended_at=ended_at,
        )

    usage_ingest(
        records=[
            record("r1", laptop, "claude-sonnet-4-6", 0, 100),
            record("r2", laptop, "claude-opus-4-6", 0, 200),
            record("r3", ci, "claude-sonnet-4-6", 1, 300),
            record("r4", laptop, "claude-sonnet-4-6", 24, 400),
            record("r5", bobs, "claude-sonnet-4-6", 0, 9999),
        ]
    )
    return {"laptop": laptop, "ci": ci}


def test_totals_are_the_users_own(alice, usage):
    totals = usage_totals(user=alice, since=SINCE)
    assert (totals.requests, totals.input_tokens, totals.output_tokens) == (4, 1000, 4)


def test_daily_and_hourly_series(alice, usage):
    daily = usage_series(user=alice, granularity=Granularity.DAY, since=SINCE)
    assert [(point.day, totals.requests, totals.input_tokens) for point, totals in daily] == [
        (DAY_ONE.day, 3, 600),
        (DAY_TWO.day, 1, 400),
    ]
    hourly = usage_series(user=alice, granularity=Granularity.HOUR, since=SINCE, api_key_id=usage["laptop"].pk)
    assert [(point.hour, totals.requests) for point, totals in hourly] == [(10, 2), (10, 1)]
    sonnet = usage_series(user=alice, granularity=Granularity.DAY, since=SINCE, model="claude-sonnet-4-6")
    assert [totals.requests for _, totals in sonnet] == [2, 1]


def test_breakdowns_by_key_and_model(alice, usage):
    assert [(key.name, totals.requests) for key, totals in usage_by_key(user=alice, since=SINCE)] == [
        ("laptop", 3),
        ("ci", 1),
    ]
    assert [(model, totals.input_tokens) for model, totals in usage_by_model(user=alice, since=SINCE)] == [
        ("claude-sonnet-4-6", 800),
        ("claude-opus-4-6", 200),
    ]


def test_breakdown_by_key_and_model(alice, usage):
    rows = usage_by_key_and_model(user=alice, since=SINCE)
    assert [(key.name, model, totals.requests) for key, model, totals in rows] == [
        ("laptop", "claude-sonnet-4-6", 2),
        ("laptop", "claude-opus-4-6", 1),
        ("ci", "claude-sonnet-4-6", 1),
    ]


def test_the_cache_hit_rate_is_the_share_of_the_prompt_read_from_the_cache():
    assert (
        UsageTotals(input_tokens=100, cache_creation_input_tokens=100, cache_read_input_tokens=800).cache_hit_rate
        == 0.8
    )
    assert UsageTotals(output_tokens=5).cache_hit_rate is None


def test_export_rows(alice, usage):
    rows = list(usage_export_rows(user=alice, granularity=Granularity.DAY, since=SINCE))
    assert rows[0][:3] == ["period_start", "key", "model"]
    assert len(rows) == 1 + 4  # (laptop, sonnet), (laptop, opus), (ci, sonnet) on day one; laptop on day two
    assert all("bob's" not in row for row in rows)


def test_admin_usage_summary(admin_client, usage):
    page = admin_client.get("/admin/gateway/usagerollup/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "top users" in text
    assert "alice@example.com" in text
    assert "bob@example.com" in text
    assert admin_client.get("/admin/gateway/usageevent/").status_code == 200
