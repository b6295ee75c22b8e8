"""Set up the bench's own database: schema, a plan that never limits, the two stand-ins, API keys.

Run by bench/run.py as `python -m bench.provision --nginx-url ... --paced-url ... --keys N` with
DATABASE_URL naming the bench database (which is dropped and created anew) and without REDIS_URL
(so that nothing is published to other gateways sharing the Redis). Prints a JSON object:
{"keys": [...]}.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import orjson

from bench.bodies import FIXED_MODEL, PACED_MODEL

HUGE = 1_000_000_000  # well inside PositiveIntegerField, far above anything a bench can send
BENCH_EMAIL = "bench@bench.invalid"
PROJECT_DIR = Path(__file__).resolve().parent.parent


def recreate_database(database_url: str) -> None:
    """Drop and create the database the URL names (PostgreSQL), or delete the SQLite file."""
    parts = urlsplit(database_url)
    if parts.scheme.startswith("sqlite"):
        Path(parts.path).unlink(missing_ok=True)
        return
    import psycopg
    from psycopg import sql

    name = parts.path.lstrip("/")
    if not name or name in {"postgres", "template0", "template1"}:
        raise SystemExit(f"refusing to recreate database {name!r}")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def set_up_django() -> None:
    sys.path.insert(0, str(PROJECT_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmapi.settings")
    import django

    django.setup()


def provision(nginx_url: str, paced_url: str, key_count: int) -> list[str]:
    from django.core.management import call_command

    from accounts.models import User
    from gateway.services import upstream_add
    from keys.services import api_key_create
    from plans.models import Plan

    call_command("migrate", verbosity=0, interactive=False)
    plan, _ = Plan.objects.update_or_create(
        slug="bench",
        defaults={
            "name": "Bench",
            "requests_per_minute": HUGE,
            "requests_per_5_hours": HUGE,
            "requests_per_week": HUGE,
            "max_keys": 10_000,
            "concurrent_requests_per_key": HUGE,
            # Limits never reached, but kept: the seeded plans all limit tokens, so requests pay for it.
            "input_tokens_per_minute": HUGE,
            "output_tokens_per_minute": HUGE,
            "is_public": False,
        },
    )
    user = User.objects.create_user(BENCH_EMAIL, plan=plan)
    upstream_add(name="bench-nginx", base_url=nginx_url, credentials=["sk-ant-bench-nginx"], model_globs=[FIXED_MODEL])
    upstream_add(name="bench-paced", base_url=paced_url, credentials=["sk-ant-bench-paced"], model_globs=[PACED_MODEL])
    return [api_key_create(user=user, name=f"bench {number}").secret for number in range(key_count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nginx-url", required=True)
    parser.add_argument("--paced-url", required=True)
    parser.add_argument("--keys", type=int, default=8)
    args = parser.parse_args()
    recreate_database(os.environ["DATABASE_URL"])
    set_up_django()
    keys = provision(args.nginx_url, args.paced_url, args.keys)
    sys.stdout.write(orjson.dumps({"keys": keys}).decode() + "\n")


if __name__ == "__main__":
    main()
