"""The four plans of the product page (product.md), Free being the default."""

from django.db import migrations

PLANS = [
    # slug, name, per minute, per 5 hours, per week, price in cents, max keys, description
    ("free", "Free", 10, 40, 200, 0, 2, "Try the API and Claude Code at no cost."),
    ("pro", "Pro", 20, 400, 2_000, 2_000, 5, "For everyday coding with Claude Code."),
    ("max-5x", "Max 5x", 60, 1_200, 6_000, 10_000, 10, "Five times Pro, for heavy daily use."),
    ("max-20x", "Max 20x", 120, 3_000, 15_000, 20_000, 20, "Twenty times Pro, for teams of agents."),
]


def seed_plans(apps, schema_editor):
    Plan = apps.get_model("plans", "Plan")
    for order, (slug, name, per_minute, per_5_hours, per_week, price, max_keys, description) in enumerate(PLANS):
        Plan.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "description": description,
                "requests_per_minute": per_minute,
                "requests_per_5_hours": per_5_hours,
                "requests_per_week": per_week,
                "monthly_token_quota": None,
                "price_monthly_cents": price,
                "max_keys": max_keys,
                "display_order": order,
                "is_public": True,
                "is_default": slug == "free",
            },
        )


def unseed_plans(apps, schema_editor):
    apps.get_model("plans", "Plan").objects.filter(slug__in=[plan[0] for plan in PLANS]).delete()


class Migration(migrations.Migration):
    dependencies = [("plans", "0001_initial")]

    operations = [migrations.RunPython(seed_plans, unseed_plans)]
