"""The job API: /api/job and /api/job/<id>."""

from django.utils.module_loading import import_string
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from . import conf, selectors, services
from .options import JOB_ID_CHARS
from .parsers import BoundedJSONParser
from .permissions import HasScope
from .serializers import ErrorSerializer, JobCreateSerializer, JobSerializer
from .throttling import ApiKeyRateThrottle


def request_owner(request) -> str:
    """Return the tenant the request acts for (JOBS["OWNER_RESOLVER"]); never the system's ""."""
    owner = import_string(conf.get("OWNER_RESOLVER"))(request)
    if not owner:
        # "" names the system's own jobs, which no request may reach.
        raise PermissionDenied("These credentials act for no account.")
    return owner


ERRORS = {status: ErrorSerializer for status in (400, 401, 403, 404, 409, 413, 415, 429, 503)}
JOB_ID = OpenApiParameter("id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The job's id.")


@extend_schema_view(
    create=extend_schema(summary="Add a job", request=JobCreateSerializer, responses={201: JobSerializer, **ERRORS}),
    retrieve=extend_schema(summary="Read a job", parameters=[JOB_ID], responses={200: JobSerializer, **ERRORS}),
    partial_update=extend_schema(
        summary="Merge keys into a job's data",
        parameters=[JOB_ID],
        request=OpenApiTypes.OBJECT,
        responses={200: JobSerializer, **ERRORS},
    ),
    destroy=extend_schema(summary="Delete a job that has not started", parameters=[JOB_ID], responses={204: None, **ERRORS}),
)
class JobViewSet(viewsets.ViewSet):
    """Add jobs, read them, merge into their data and delete them before they start."""

    # Explicit, not the project's defaults: the job API stays closed in any project.
    permission_classes = [IsAuthenticated, HasScope]
    throttle_classes = [ApiKeyRateThrottle]
    required_scopes = {
        "create": "job.create",
        "retrieve": "job.read",
        "partial_update": "job.update",
        "destroy": "job.delete",
    }
    parser_classes = [BoundedJSONParser]
    # Only what a job id can be; anything else is a JSON 404 from the catch-all route.
    lookup_value_regex = JOB_ID_CHARS

    def create(self, request):
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.job_create(owner=request_owner(request), public_only=True, **serializer.validated_data)
        headers = {"Location": f"/api/job/{job.public_id}"}
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED, headers=headers)

    def retrieve(self, request, pk: str):
        job = selectors.job_get(owner=request_owner(request), job_id=pk)
        return Response(JobSerializer(job).data)

    def partial_update(self, request, pk: str):
        if not isinstance(request.data, dict):
            raise ValidationError({"data": ["The body must be a JSON object of keys to merge into the job's data."]})
        job = services.job_update_data(owner=request_owner(request), job_id=pk, data=dict(request.data), merge=True)
        return Response(JobSerializer(job).data)

    def destroy(self, request, pk: str):
        services.job_remove(owner=request_owner(request), job_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
