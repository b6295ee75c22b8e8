"""The dashboard's usage filters: a period, and optionally one key and one model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms

from accounts.models import User
from gateway.usage.selectors import DEFAULT_PERIOD, PERIODS
from keys.selectors import api_key_list_including_revoked


class ApiKeyChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.name if obj.is_active else f"{obj.name} (deleted)"


class UsageFilterForm(forms.Form):
    period = forms.ChoiceField(
        choices=[(slug, period.label) for slug, period in PERIODS.items()], initial=DEFAULT_PERIOD, required=False
    )
    key = ApiKeyChoiceField(queryset=None, required=False, empty_label="All keys")
    model = forms.ChoiceField(required=False)

    def __init__(self, *args: Any, user: User, model_names: Sequence[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only the user's own keys are choices: anyone else's id is "not one of the available choices".
        self.fields["key"].queryset = api_key_list_including_revoked(user=user)
        self.fields["model"].choices = [("", "All models"), *((name, name) for name in model_names)]

    def clean_period(self) -> str:
        return self.cleaned_data["period"] or DEFAULT_PERIOD
