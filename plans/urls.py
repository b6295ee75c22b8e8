from __future__ import annotations

from django.urls import path

from plans import views

app_name = "plans"
urlpatterns = [
    path("", views.plan_page, name="plan"),
    path("checkout/<slug:slug>/", views.checkout, name="checkout"),
    path("portal/", views.billing_portal, name="portal"),
]
