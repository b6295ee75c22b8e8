from __future__ import annotations

from django.urls import path

from plans import views

app_name = "plans"
urlpatterns = [
    path("", views.plan_page, name="plan"),
    path("checkout/<slug:slug>/", views.checkout, name="checkout"),
    path("paid/", views.checkout_success, name="checkout_success"),
    path("paid/status/", views.checkout_status, name="checkout_status"),
    path("not-paid/", views.checkout_cancel, name="checkout_cancel"),
    path("portal/", views.billing_portal, name="portal"),
    path("cancel/", views.cancel, name="cancel"),
    path("resume/", views.resume, name="resume"),
    path("invoices/", views.invoices, name="invoices"),
]
