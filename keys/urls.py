from __future__ import annotations

from django.urls import path

from keys import views

app_name = "keys"
urlpatterns = [
    path("", views.key_list, name="list"),
    path("<int:key_id>/delete/", views.key_delete, name="delete"),
]
