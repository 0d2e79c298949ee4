"""Request and response shapes of the job API."""

from rest_framework import serializers

from .schema import DataField, OptionsField
from .selectors import job_to_json


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
