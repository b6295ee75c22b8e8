from __future__ import annotations

from django.apps import AppConfig


class PlansConfig(AppConfig):
    name = "plans"
    verbose_name = "Plans"

    def ready(self) -> None:
        from plans import signals  # noqa: F401 - connects the receivers
