"""URLs of the Django side (everything but `/v1`, which the gateway serves)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from llmapi import views

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
]
