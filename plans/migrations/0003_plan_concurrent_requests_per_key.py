"""Requests in flight per key, per plan: generous, since Claude Code runs subagents in parallel."""

from django.db import migrations, models

CONCURRENT_REQUESTS_PER_KEY = {"free": 4, "pro": 8, "max-5x": 16, "max-20x": 32}


def seed_concurrency(apps, schema_editor):
    Plan = apps.get_model("plans", "Plan")
    for slug, concurrent in CONCURRENT_REQUESTS_PER_KEY.items():
        Plan.objects.filter(slug=slug).update(concurrent_requests_per_key=concurrent)


class Migration(migrations.Migration):
    dependencies = [("plans", "0002_seed_plans")]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="concurrent_requests_per_key",
            field=models.PositiveIntegerField(
                default=8,
                help_text="Requests one key may have in flight at once (Claude Code runs subagents in parallel).",
            ),
        ),
        migrations.RunPython(seed_concurrency, migrations.RunPython.noop),
    ]
