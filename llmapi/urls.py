"""URLs of the Django side (everything but `/v1`, which the gateway serves)."""

from __future__ import annotations

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from llmapi import views
from plans.views import stripe_webhook

urlpatterns = [
    path("", views.home, name="home"),
    path("docs/", views.docs, name="docs"),
    path("llmapi-statusline.py", views.statusline_script, name="statusline_script"),
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"))),
    path("api/hello", views.hello),
    path("accounts/", include("allauth.urls")),
    path("dashboard/", include("accounts.urls")),
    path("dashboard/keys/", include("keys.urls")),
    path("dashboard/plan/", include("plans.urls")),
    path("stripe/webhook/", stripe_webhook, name="stripe_webhook"),
    path("api/", include("llmapi.api_urls")),
    path("admin/", admin.site.urls),
]
