"""The dashboard's overview and usage pages (keys and plan pages are mounted beside them by llmapi/urls.py)."""

from __future__ import annotations

from django.urls import path

from accounts import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("windows/", views.windows_panel, name="windows"),
    path("usage/", views.usage, name="usage"),
    path("usage/export.csv", views.usage_export, name="usage_export"),
]
