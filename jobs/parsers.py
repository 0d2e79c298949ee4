"""The API's JSON parser: bounded in size and depth, strict about what is JSON."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import exceptions, parsers, status

from . import conf
from .jsonvalues import RULE, json_depth, unstorable_text


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class TooDeep(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The JSON body is nested too deep."
    default_code = "too_deep"


class UnstorableText(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = f"The JSON body holds text that cannot be stored: {RULE}."
    default_code = "invalid"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class BoundedJSONParser(parsers.JSONParser):
    """JSON only, at most JOBS["MAX_BODY_BYTES"] bytes and JOBS["MAX_JSON_DEPTH"] levels, no NaN, no NUL."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = conf.get("MAX_BODY_BYTES")
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"The request body is over the limit of {limit} bytes.")
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise RequestTooLarge(f"The request body is over the limit of {limit} bytes.")
        try:
            text = raw.decode((parser_context or {}).get("encoding") or "utf-8")
            data = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise TooDeep(f"The JSON body is nested deeper than {conf.get('MAX_JSON_DEPTH')} levels.") from None
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        if json_depth(data) > conf.get("MAX_JSON_DEPTH"):
            raise TooDeep(f"The JSON body is nested deeper than {conf.get('MAX_JSON_DEPTH')} levels.")
        # Refused here, before any field is read: such text would fail in the database or in the
        # answer (an error message that echoes it included).
        problem = unstorable_text(data)
        if problem is not None:
            raise UnstorableText(f"The JSON body holds {problem}: {RULE}.")
        return data
