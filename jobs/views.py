"""The job API: /api/job and /api/job/<id>."""

from django.utils.module_loading import import_string
from rest_framework import status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from . import conf, selectors, services
from .permissions import HasJobScope
from .serializers import JobCreateSerializer, JobSerializer


def request_owner(request) -> str:
    """Return the tenant the request acts for (JOBS["OWNER_RESOLVER"])."""
    return import_string(conf.get("OWNER_RESOLVER"))(request)


class JobViewSet(viewsets.ViewSet):
    """Add jobs, read them, merge into their data and delete them before they start."""

    permission_classes = [IsAuthenticated, HasJobScope]
    lookup_value_regex = "[^/]+"

    def create(self, request):
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.job_create(owner=request_owner(request), **serializer.validated_data)
        headers = {"Location": f"/api/job/{job.pk}"}
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED, headers=headers)

    def retrieve(self, request, pk: str):
        job = selectors.job_get(job_id=pk, owner=request_owner(request))
        return Response(JobSerializer(job).data)

    def partial_update(self, request, pk: str):
        if not isinstance(request.data, dict):
            raise ValidationError({"data": ["The body must be a JSON object of keys to merge into the job's data."]})
        job = services.job_update_data(job_id=pk, data=dict(request.data), merge=True, owner=request_owner(request))
        return Response(JobSerializer(job).data)

    def destroy(self, request, pk: str):
        services.job_remove(job_id=pk, owner=request_owner(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
