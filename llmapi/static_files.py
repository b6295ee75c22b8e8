"""Static files under any ASGI server: WhiteNoise, quiet when collectstatic has not run, never leaking files.

In production `collectstatic` fills STATIC_ROOT; on a laptop or in tests it has not run, and the
app folders (WHITENOISE_USE_FINDERS) serve the same files, so the missing folder is no reason to warn.

Files are answered whole rather than streamed. Django's ASGI handler cancels a response that is
still finishing when the server reports the client gone (uvicorn does so as soon as the last byte is
out), and a cancelled streaming response is never closed: its open file would leak. Our CSS and
JavaScript are a few kilobytes, so reading them is cheap.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware
from whitenoise.responders import StaticFile


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    def add_files(self, root: str, prefix: str | None = None) -> None:
        if str(root) == str(settings.STATIC_ROOT) and not os.path.isdir(root):
            return
        super().add_files(root, prefix=prefix)

    @staticmethod
    def serve(static_file: StaticFile, request: HttpRequest) -> HttpResponse:
        found = static_file.get_response(request.method, request.META)
        body = b""
        if found.file is not None:
            with found.file:
                body = found.file.read()
        response = HttpResponse(body, status=int(found.status))
        for name, value in found.headers:
            response[name] = value
        return response
