"""The plan endpoint of /api: the current user's plan and its limits."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from plans.selectors import plan_for_user


class PlanOutputSerializer(serializers.Serializer):
    slug = serializers.SlugField()
    name = serializers.CharField()
    requests_per_minute = serializers.IntegerField()
    requests_per_5_hours = serializers.IntegerField()
    requests_per_week = serializers.IntegerField()
    monthly_token_quota = serializers.IntegerField(allow_null=True, help_text="null means unlimited")
    input_tokens_per_minute = serializers.IntegerField(allow_null=True, help_text="null means no limit")
    output_tokens_per_minute = serializers.IntegerField(allow_null=True, help_text="null means no limit")
    max_keys = serializers.IntegerField()
    price_monthly_cents = serializers.IntegerField()


class CurrentPlanApi(APIView):
    def get(self, request: Request) -> Response:
        return Response(PlanOutputSerializer(plan_for_user(user=request.user)).data)
