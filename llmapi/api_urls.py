"""/api: the dashboard's JSON API (session authentication with CSRF; see docs/dashboard.md)."""

from __future__ import annotations

from django.urls import path

from keys.api import ApiKeyDetailApi, ApiKeyListApi, ApiKeyWindowsApi, WindowListApi
from plans.api import CurrentPlanApi

urlpatterns = [
    path("keys/", ApiKeyListApi.as_view(), name="api-keys"),
    path("keys/<int:key_id>/", ApiKeyDetailApi.as_view(), name="api-key"),
    path("keys/<int:key_id>/windows/", ApiKeyWindowsApi.as_view(), name="api-key-windows"),
    path("windows/", WindowListApi.as_view(), name="api-windows"),
    path("plan/", CurrentPlanApi.as_view(), name="api-plan"),
]
