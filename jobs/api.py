"""The building blocks of the job API that other apps' endpoints share: scopes, parsing, errors, rate limits."""

from .parsers import BoundedJSONParser
from .permissions import HasScope
from .serializers import ErrorSerializer
from .throttling import ApiKeyRateThrottle, SharedRateThrottle, parse_rate

__all__ = [
    "ApiKeyRateThrottle",
    "BoundedJSONParser",
    "ErrorSerializer",
    "HasScope",
    "SharedRateThrottle",
    "parse_rate",
]
