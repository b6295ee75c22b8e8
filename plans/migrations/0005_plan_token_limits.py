"""Input and output tokens per minute, per key (issue 15). Generous: the request windows stay what
a plan sells; these stop one key from pushing huge prompts through every one of its requests."""

import django.core.validators
from django.db import migrations, models

# slug: (input tokens per minute, output tokens per minute)
TOKENS_PER_MINUTE = {
    "free": (200_000, 40_000),
    "pro": (400_000, 80_000),
    "max-5x": (800_000, 160_000),
    "max-20x": (1_600_000, 320_000),
}


def seed_token_limits(apps, schema_editor):
    Plan = apps.get_model("plans", "Plan")
    for slug, (input_tokens, output_tokens) in TOKENS_PER_MINUTE.items():
        Plan.objects.filter(slug=slug).update(
            input_tokens_per_minute=input_tokens, output_tokens_per_minute=output_tokens
        )


class Migration(migrations.Migration):
    dependencies = [("plans", "0004_subscription")]

    operations = [
        migrations.AddField(
            model_name="plan",
            name="input_tokens_per_minute",
            field=models.PositiveIntegerField(
                blank=True,
                null=True,
                validators=[django.core.validators.MinValueValidator(1)],
                help_text="Input tokens one key may send per minute (cache reads are free); empty means no limit.",
            ),
        ),
        migrations.AddField(
            model_name="plan",
            name="output_tokens_per_minute",
            field=models.PositiveIntegerField(
                blank=True,
                null=True,
                validators=[django.core.validators.MinValueValidator(1)],
                help_text="Output tokens one key may receive per minute; empty means no limit.",
            ),
        ),
        migrations.RunPython(seed_token_limits, migrations.RunPython.noop),
    ]
