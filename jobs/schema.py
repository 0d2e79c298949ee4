"""OpenAPI details drf-spectacular cannot infer: the options' shape and the registered job names."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from . import conf, registry
from .options import JOB_ID_CHARS, MAX_AGE, MAX_KEEP, MAX_PRIORITY


def _whole(low: int, high: int) -> dict:
    return {"type": "integer", "minimum": low, "maximum": high}


def retention_schema() -> dict:
    """true (remove at once), false (keep), a count of the newest to keep, or {age, count}."""
    return {
        "oneOf": [
            {"type": "boolean"},
            _whole(0, MAX_KEEP),
            {
                "type": "object",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {"age": _whole(0, MAX_AGE), "count": _whole(0, MAX_KEEP)},
            },
        ]
    }


def options_schema() -> dict:
    max_delay = conf.get("MAX_DELAY")
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "delay": {**_whole(0, max_delay), "description": "Milliseconds before the job may run."},
            "attempts": {**_whole(1, conf.get("MAX_ATTEMPTS")), "description": "Runs allowed in all."},
            "backoff": {
                "oneOf": [
                    _whole(0, max_delay),
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type"],
                        "properties": {"type": {"enum": ["fixed", "exponential"]}, "delay": _whole(0, max_delay)},
                    },
                ],
                "description": "Wait before a retry: ms, or {type, delay}.",
            },
            "priority": {**_whole(1, MAX_PRIORITY), "description": "1 is the highest."},
            "jobId": {"type": "string", "pattern": f"^{JOB_ID_CHARS}$", "description": "Your own id."},
            "timeout": {**_whole(1, max_delay), "description": "Milliseconds after which the job is stopped and fails."},
            "removeOnComplete": {**retention_schema(), "description": "How long the job is kept once completed (default: JOBS['REMOVE_ON_COMPLETE'])."},
            "removeOnFail": {**retention_schema(), "description": "How long the job is kept once failed (default: JOBS['REMOVE_ON_FAIL'])."},
        },
    }


@extend_schema_field({"type": "object", "additionalProperties": True, "description": "The job's data."})
class DataField(serializers.JSONField):
    pass


@extend_schema_field(options_schema())
class OptionsField(serializers.JSONField):
    pass


def add_job_names(result, generator, request, public):
    """Postprocessing hook: list the registered job functions as the values `name` may take."""
    request_schema = result.get("components", {}).get("schemas", {}).get("JobCreateRequest")
    if request_schema is not None:
        request_schema["properties"]["name"]["enum"] = registry.names(public_only=True)
    return result


