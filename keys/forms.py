"""The key form of the dashboard: a name, checked against the model's length limit."""

from __future__ import annotations

from django import forms

from keys.models import ApiKey


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        max_length=ApiKey._meta.get_field("name").max_length,
        strip=True,
        help_text="Where the key is used, e.g. “laptop” or “CI”, so that you know which one to delete later.",
    )
