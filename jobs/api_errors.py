"""One JSON shape for every API error: {"error": {"status", "code", "message", "details"}}."""

from __future__ import annotations

import logging
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import InvalidJob, JobExists, JobInWrongState, JobIsInternal, JobNotFound, UnknownJobName

logger = logging.getLogger(__name__)

DRF_CODES = {
    exceptions.ParseError: "malformed_json",
    exceptions.ValidationError: "invalid",
    exceptions.NotAuthenticated: "unauthenticated",
    exceptions.AuthenticationFailed: "unauthenticated",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
}


def error_body(status_code: int, code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"status": status_code, "code": code, "message": message, "details": details or {}}}


def error_response(status_code: int, code: str, message: str, details: Any = None, **kwargs: Any) -> Response:
    return Response(error_body(status_code, code, message, details), status=status_code, **kwargs)


def _with_index(details: dict[str, Any], index: int | None) -> dict[str, Any]:
    """Details of an error about one job of a bulk add name its index in the list."""
    return details if index is None else {**details, "index": index}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: job errors and DRF errors as the one error shape."""
    if isinstance(exc, UnknownJobName):
        details = {"field": exc.field, "knownNames": exc.known_names}
        return error_response(400, "unknown_name", str(exc), _with_index(details, exc.index))
    if isinstance(exc, InvalidJob):
        return error_response(400, "invalid", str(exc), _with_index({"field": exc.field}, exc.index))
    if isinstance(exc, JobExists):
        return error_response(409, "job_exists", str(exc), _with_index({"id": exc.job_id}, exc.index))
    if isinstance(exc, JobInWrongState):
        return error_response(409, exc.code, str(exc), {"id": exc.job_id, "state": exc.state})
    if isinstance(exc, JobIsInternal):
        return error_response(403, "job_internal", str(exc), {"id": exc.job_id, "name": exc.name})
    if isinstance(exc, JobNotFound | Http404):
        return error_response(404, "not_found", str(exc) if isinstance(exc, JobNotFound) else "Not found.")
    if isinstance(exc, OperationalError | InterfaceError):
        logger.exception("Database unavailable")
        return error_response(503, "unavailable", "The database is unavailable; try again shortly.", headers={"Retry-After": "5"})
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    code = next((code for kind, code in DRF_CODES.items() if isinstance(exc, kind)), exc.default_code)
    if isinstance(exc, exceptions.ValidationError):
        message = "The request body is not valid."
        details = {"fields": exc.detail} if isinstance(exc.detail, dict) else {"errors": exc.detail}
    else:
        message, details = str(exc.detail), {}
    if isinstance(exc, exceptions.Throttled):
        details = {"retryAfter": exc.wait}
    response.data = error_body(response.status_code, code, message, details)
    return response


@csrf_exempt
def not_found_view(request, exception=None) -> JsonResponse:
    """A JSON 404 for API paths that match no route."""
    return JsonResponse(error_body(404, "not_found", "Not found."), status=status.HTTP_404_NOT_FOUND)


def server_error_view(request) -> JsonResponse:
    """A JSON 500: a bug, but the client still gets the error shape."""
    return JsonResponse(
        error_body(500, "server_error", "Internal server error."), status=status.HTTP_500_INTERNAL_SERVER_ERROR
    )
