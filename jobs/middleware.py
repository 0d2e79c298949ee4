"""A 503 in the API's error shape when the database is down outside a view (sessions, auth)."""

import logging

from django.db import InterfaceError, OperationalError
from django.http import JsonResponse

from .api_errors import error_body

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, OperationalError | InterfaceError) and request.path.startswith("/api/"):
            logger.error("Database unavailable: %s", exception)
            response = JsonResponse(
                error_body(503, "unavailable", "The database is unavailable; try again shortly."), status=503
            )
            response["Retry-After"] = "5"
            return response
        return None
