"""Routes for every Claude model name: a listed catalogue of official ids, and family globs.

The routes get no targets here: `manage.py upstream add` (or the admin) attaches upstreams.
A model name is resolved through every route it matches, most specific first, so a new name such
as claude-opus-5-5 is caught by `claude-opus-*` and `claude-*` with no code change.
"""

from datetime import UTC, datetime

from django.db import migrations

# id, display name, release date (None where the id carries no date and none is known)
LISTED_MODELS = [
    ("claude-opus-4-6", "Claude Opus 4.6", None),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", None),
    ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-01"),
    ("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01"),
    ("claude-opus-4-5", "Claude Opus 4.5", "2025-11-01"),
    ("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-01"),
    ("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29"),
    ("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29"),
    ("claude-opus-4-1", "Claude Opus 4.1", "2025-08-05"),
    ("claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05"),
    ("claude-opus-4-0", "Claude Opus 4", "2025-05-14"),
    ("claude-opus-4-20250514", "Claude Opus 4", "2025-05-14"),
    ("claude-sonnet-4-0", "Claude Sonnet 4", "2025-05-14"),
    ("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-14"),
    ("claude-3-7-sonnet-latest", "Claude Sonnet 3.7", "2025-02-19"),
    ("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-19"),
    ("claude-3-5-haiku-latest", "Claude Haiku 3.5", "2024-10-22"),
    ("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22"),
]

FAMILY_GLOBS = ["claude-opus-*", "claude-sonnet-*", "claude-haiku-*", "claude-3-*", "claude-*"]


def seed_routes(apps, schema_editor):
    ModelRoute = apps.get_model("gateway", "ModelRoute")
    for model_id, display_name, released in LISTED_MODELS:
        released_at = datetime.fromisoformat(released).replace(tzinfo=UTC) if released else None
        ModelRoute.objects.update_or_create(
            pattern=model_id,
            defaults={"display_name": display_name, "listed": True, "released_at": released_at},
        )
    for glob in FAMILY_GLOBS:
        ModelRoute.objects.get_or_create(pattern=glob)


def unseed_routes(apps, schema_editor):
    patterns = [model[0] for model in LISTED_MODELS] + FAMILY_GLOBS
    apps.get_model("gateway", "ModelRoute").objects.filter(pattern__in=patterns).delete()


class Migration(migrations.Migration):
    dependencies = [("gateway", "0001_initial")]

    operations = [migrations.RunPython(seed_routes, unseed_routes)]
