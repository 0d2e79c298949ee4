"""Request and response shapes of the job API."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import JobState
from .schema import DataField, OptionsField
from .selectors import COUNT_GROUPS, job_to_json


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of turning them into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class JobCreateSerializer(serializers.Serializer):
    """POST /api/job: the job's name, data and Bull-style options; rules live in the service."""

    name = StrictCharField(required=False, max_length=200)
    data = DataField(required=False)
    opts = OptionsField(required=False)

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {key: ["Unknown field; expected name, data and opts."] for key in unknown}
            )
        return attrs


@extend_schema_field({"type": "array", "items": {"type": "string", "enum": list(JobState.values)}})
class StatesField(serializers.Field):
    """`state=failed&state=delayed` or `state=failed,delayed`."""

    def get_value(self, dictionary):
        values = dictionary.getlist(self.field_name) if hasattr(dictionary, "getlist") else dictionary.get(self.field_name)
        return serializers.empty if not values else values

    def to_internal_value(self, data):
        states = [state.strip() for value in data for state in str(value).split(",") if state.strip()]
        unknown = sorted(set(states) - set(JobState.values))
        if unknown:
            raise serializers.ValidationError(f"Unknown state {', '.join(map(repr, unknown))}; states are {', '.join(JobState.values)}.")
        return sorted(set(states))


# The last millisecond of year 9999: the latest moment a datetime can hold.
MAX_MS = 253_402_300_799_999


class JobListQuerySerializer(serializers.Serializer):
    """GET /api/job: filters (the cursor and `limit` belong to the pagination)."""

    state = StatesField(required=False, help_text="One or more states, repeated or comma-separated.")
    name = StrictCharField(required=False, max_length=200)
    createdAfter = serializers.IntegerField(required=False, min_value=0, max_value=MAX_MS, help_text="ms since the epoch")
    createdBefore = serializers.IntegerField(required=False, min_value=0, max_value=MAX_MS, help_text="ms since the epoch")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, help_text="Jobs per page (50).")
    cursor = serializers.RegexField(r"^[A-Za-z0-9_=-]{1,500}$", required=False, help_text="From a page's next or previous link.")


class CountsQuerySerializer(serializers.Serializer):
    by = serializers.ChoiceField(choices=COUNT_GROUPS, required=False, help_text="Count per queue or per name.")


class JobSerializer(serializers.Serializer):
    """The job JSON: Bull's job.toJSON() plus state."""

    id = serializers.CharField()
    name = serializers.CharField()
    data = serializers.JSONField()
    opts = serializers.JSONField()
    progress = serializers.JSONField()
    delay = serializers.IntegerField()
    timestamp = serializers.IntegerField()
    attemptsMade = serializers.IntegerField()
    failedReason = serializers.CharField(allow_null=True)
    stacktrace = serializers.ListField(child=serializers.CharField())
    returnvalue = serializers.JSONField(allow_null=True)
    finishedOn = serializers.IntegerField(allow_null=True)
    processedOn = serializers.IntegerField(allow_null=True)
    state = serializers.CharField()

    def to_representation(self, instance):
        return job_to_json(instance)


class ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorSerializer(serializers.Serializer):
    """Every API error: {"error": {"status", "code", "message", "details"}}."""

    error = ErrorDetailSerializer()
