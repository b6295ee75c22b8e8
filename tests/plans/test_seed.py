"""The data migration seeds the four plans of the product page."""

from __future__ import annotations

import pytest

from plans.models import Plan
from plans.selectors import plan_get_default, plan_list_public

pytestmark = pytest.mark.django_db


def test_four_plans_with_the_product_limits():
    limits = [
        (plan.name, plan.requests_per_minute, plan.requests_per_5_hours, plan.requests_per_week)
        for plan in plan_list_public()
    ]
    assert limits == [
        ("Free", 10, 40, 200),
        ("Pro", 20, 400, 2_000),
        ("Max 5x", 60, 1_200, 6_000),
        ("Max 20x", 120, 3_000, 15_000),
    ]


def test_token_quota_is_unlimited_on_every_plan():
    assert all(plan.has_unlimited_tokens for plan in Plan.objects.all())


def test_new_accounts_get_free():
    assert plan_get_default().slug == "free"


def test_only_one_plan_can_be_the_default():
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Plan.objects.filter(slug="pro").update(is_default=True)
