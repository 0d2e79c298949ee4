"""The job API: /api/job (add, list), /api/job/counts, /api/job/<id> (read, merge data, delete), retry and promote."""

from datetime import UTC, datetime

from django.utils.module_loading import import_string
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from . import conf, selectors, services
from .models import JobState
from .options import JOB_ID_CHARS
from .parsers import BoundedJSONParser
from .permissions import HasScope
from .serializers import (
    MAX_MS,
    CountsQuerySerializer,
    ErrorSerializer,
    JobCreateSerializer,
    JobListQuerySerializer,
    JobSerializer,
)
from .throttling import ApiKeyRateThrottle


def request_owner(request) -> str:
    """Return the tenant the request acts for (JOBS["OWNER_RESOLVER"]); never the system's ""."""
    owner = import_string(conf.get("OWNER_RESOLVER"))(request)
    if not owner:
        # "" names the system's own jobs, which no request may reach.
        raise PermissionDenied("These credentials act for no account.")
    return owner


class NewestFirst(CursorPagination):
    """Pages of jobs, newest first, by a cursor on created_at: no OFFSET, no COUNT, fast at any depth."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({"cursor": ["Invalid cursor: use the next or previous link of a page."]}) from None


def from_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


ERRORS = {status: ErrorSerializer for status in (400, 401, 403, 404, 409, 413, 415, 429, 503)}
JOB_ID = OpenApiParameter("id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The job's id.")
COUNTS = {
    "type": "object",
    "description": "Jobs per state; with ?by=queue or ?by=name, an object of such counts per queue or name.",
    "additionalProperties": True,
    "properties": {state: {"type": "integer"} for state in JobState.values},
}


@extend_schema_view(
    create=extend_schema(summary="Add a job", request=JobCreateSerializer, responses={201: JobSerializer, **ERRORS}),
    # The list is paged: drf-spectacular wraps JobSerializer in NewestFirst's page shape.
    list=extend_schema(summary="List jobs, newest first", parameters=[JobListQuerySerializer], responses={200: JobSerializer, **ERRORS}),
    retrieve=extend_schema(summary="Read a job", parameters=[JOB_ID], responses={200: JobSerializer, **ERRORS}),
    partial_update=extend_schema(
        summary="Merge keys into a job's data",
        parameters=[JOB_ID],
        request=OpenApiTypes.OBJECT,
        responses={200: JobSerializer, **ERRORS},
    ),
    destroy=extend_schema(summary="Delete a job that has not started", parameters=[JOB_ID], responses={204: None, **ERRORS}),
    counts=extend_schema(summary="Count jobs per state", parameters=[CountsQuerySerializer], responses={200: COUNTS, **ERRORS}),
    retry=extend_schema(summary="Run a failed job again", parameters=[JOB_ID], request=None, responses={200: JobSerializer, **ERRORS}),
    promote=extend_schema(summary="Run a delayed job now", parameters=[JOB_ID], request=None, responses={200: JobSerializer, **ERRORS}),
)
class JobViewSet(viewsets.ViewSet):
    """Add, list, count, read, change, delete, retry and promote the jobs of the caller's account."""

    # Explicit, not the project's defaults: the job API stays closed in any project.
    permission_classes = [IsAuthenticated, HasScope]
    throttle_classes = [ApiKeyRateThrottle]
    required_scopes = {
        "create": "job.create",
        "list": "job.read",
        "counts": "job.read",
        "retrieve": "job.read",
        "partial_update": "job.update",
        "retry": "job.update",
        "promote": "job.update",
        "destroy": "job.delete",
    }
    parser_classes = [BoundedJSONParser]
    pagination_class = NewestFirst
    # Only what a job id can be; anything else is a JSON 404 from the catch-all route.
    lookup_value_regex = JOB_ID_CHARS

    def create(self, request):
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.job_create(owner=request_owner(request), public_only=True, **serializer.validated_data)
        headers = {"Location": f"/api/job/{job.public_id}"}
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED, headers=headers)

    def list(self, request):
        query = JobListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filters = query.validated_data
        jobs = selectors.jobs_list(
            owner=request_owner(request),
            states=filters.get("state"),
            name=filters.get("name"),
            # Job timestamps are whole ms: "after T" starts at the next millisecond.
            created_after=from_ms(min(filters["createdAfter"] + 1, MAX_MS)) if "createdAfter" in filters else None,
            created_before=from_ms(filters.get("createdBefore")),
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(JobSerializer(page, many=True).data)

    @action(detail=False, methods=["get"])
    def counts(self, request):
        query = CountsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(selectors.job_counts(owner=request_owner(request), by=query.validated_data.get("by")))

    def retrieve(self, request, pk: str):
        job = selectors.job_get(owner=request_owner(request), job_id=pk)
        return Response(JobSerializer(job).data)

    def partial_update(self, request, pk: str):
        if not isinstance(request.data, dict):
            raise ValidationError({"data": ["The body must be a JSON object of keys to merge into the job's data."]})
        job = services.job_update_data(
            owner=request_owner(request), job_id=pk, data=dict(request.data), merge=True, public_only=True
        )
        return Response(JobSerializer(job).data)

    def destroy(self, request, pk: str):
        services.job_remove(owner=request_owner(request), job_id=pk, public_only=True)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def retry(self, request, pk: str):
        job = services.job_retry(owner=request_owner(request), job_id=pk, public_only=True)
        return Response(JobSerializer(job).data)

    @action(detail=True, methods=["post"])
    def promote(self, request, pk: str):
        job = services.job_promote(owner=request_owner(request), job_id=pk, public_only=True)
        return Response(JobSerializer(job).data)
