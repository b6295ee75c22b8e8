"""The one place where /api turns domain errors into responses (DRF's EXCEPTION_HANDLER)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from keys.services import ApiKeyCreationThrottledError, ApiKeyLimitError, EmailNotVerifiedError


def api_exception_handler(error: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(error, ApiKeyCreationThrottledError):
        error = exceptions.Throttled(detail=str(error))
    elif isinstance(error, ApiKeyLimitError):
        error = exceptions.ValidationError({"detail": str(error)})
    elif isinstance(error, EmailNotVerifiedError):
        error = exceptions.PermissionDenied(str(error))
    elif isinstance(error, ObjectDoesNotExist):
        # Anyone else's object answers exactly like a missing one: no 403 that confirms it exists.
        error = exceptions.NotFound()
    return exception_handler(error, context)
