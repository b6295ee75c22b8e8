"""The key endpoints of /api: list, create (the only answer with the full key), read, delete, windows.

Errors (a plan's key allowance, an unverified address, anyone else's key) become responses in one
place, llmapi/api_errors.py.
"""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from gateway.selectors import WindowUsage, api_key_window_usage
from keys.models import ApiKey
from keys.selectors import api_key_get, api_key_list
from keys.services import api_key_create, api_key_revoke


class ApiKeyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    masked = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)


class ApiKeyInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=ApiKey._meta.get_field("name").max_length, trim_whitespace=True)


class WindowSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    limit = serializers.IntegerField()
    used = serializers.IntegerField()
    remaining = serializers.IntegerField()
    resets_at = serializers.DateTimeField()


def windows_data(windows: list[WindowUsage]) -> list[dict[str, object]]:
    return WindowSerializer(windows, many=True).data


class ApiKeyListApi(APIView):
    def get(self, request: Request) -> Response:
        keys = api_key_list(user=request.user)
        return Response(ApiKeyOutputSerializer(keys, many=True).data)

    def post(self, request: Request) -> Response:
        given = ApiKeyInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        created = api_key_create(user=request.user, name=given.validated_data["name"], require_verified_email=True)
        # `key`, the full key, is in this answer only.
        data = {**ApiKeyOutputSerializer(created.api_key).data, "key": created.secret}
        response = Response(data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"  # the full key: no cache may keep this answer
        return response


class ApiKeyDetailApi(APIView):
    def get(self, request: Request, key_id: int) -> Response:
        return Response(ApiKeyOutputSerializer(api_key_get(user=request.user, key_id=key_id)).data)

    def delete(self, request: Request, key_id: int) -> Response:
        api_key_revoke(user=request.user, key_id=key_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiKeyWindowsApi(APIView):
    """One key's minute, 5-hour and weekly windows (empty while the limiter cannot be read)."""

    def get(self, request: Request, key_id: int) -> Response:
        api_key = api_key_get(user=request.user, key_id=key_id)
        return Response(windows_data(api_key_window_usage(api_key=api_key)))


class WindowListApi(APIView):
    """Every active key of the user with its windows."""

    def get(self, request: Request) -> Response:
        keys = api_key_list(user=request.user)
        return Response(
            [
                {"key": ApiKeyOutputSerializer(key).data, "windows": windows_data(api_key_window_usage(api_key=key))}
                for key in keys
            ]
        )
