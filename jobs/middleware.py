"""Request bodies sent without a Content-Length (chunked) are read in full, never taken as empty."""

from __future__ import annotations

import io

from django.core.handlers.wsgi import LimitedStream, WSGIRequest
from django.http import JsonResponse

from . import conf
from .api_errors import error_body


class ChunkedBodyMiddleware:
    """Read a chunked request body up to JOBS["MAX_BODY_BYTES"], or refuse it (411, 413).

    Django's WSGI request reads CONTENT_LENGTH bytes, 0 when it is missing, so a chunked body would
    otherwise look empty and a POST would create a job from data the server never read. Servers
    that end the input stream themselves (gunicorn sets wsgi.input_terminated) can be read to the
    end; with any other server the client must send a Content-Length.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        # ASGI servers hand Django the whole body whatever its framing; only WSGI needs this.
        chunked = "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower() and not meta.get("CONTENT_LENGTH")
        if chunked and isinstance(request, WSGIRequest):
            refused = self._read_whole_body(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    def _read_whole_body(self, request) -> JsonResponse | None:
        # gunicorn's sync workers say their stream ends with the body; an ASGI server behind an
        # ASGI-to-WSGI adapter (a2wsgi, which puts the scope in the environ) always ends it there.
        if not (request.META.get("wsgi.input_terminated") or "asgi.scope" in request.META):
            message = "This server cannot read a chunked body: send a Content-Length."
            return JsonResponse(error_body(411, "length_required", message), status=411)
        limit = conf.get("MAX_BODY_BYTES")
        body = request.META["wsgi.input"].read(limit + 1)
        if len(body) > limit:
            message = f"The request body is over the limit of {limit} bytes."
            return JsonResponse(error_body(413, "too_large", message), status=413)
        request._stream = LimitedStream(io.BytesIO(body), len(body))
        request.META["CONTENT_LENGTH"] = str(len(body))
        return None
