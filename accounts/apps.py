from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from accounts import signals  # noqa: F401 - connects the receivers


class StaffAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with our site: staff only, after allauth's login and a second factor."""

    default = False  # "accounts" in INSTALLED_APPS means AccountsConfig; this one is named in full
    default_site = "accounts.admin_site.StaffAdminSite"
