"""The project's URLs plus the benchmark's baseline: a minimal authenticated DRF endpoint that inserts one row."""

import uuid

from django.urls import path
from django.utils import timezone
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from gravity.urls import urlpatterns as project_urlpatterns
from jobs.models import Job


class InsertOneRow(APIView):
    """What any tracked-job API must do at least: authenticate, parse JSON, insert a row, answer JSON."""

    permission_classes = [IsAuthenticated]

    def post(self, request):
        now = timezone.now()
        pk = uuid.uuid4().hex
        Job.objects.create(
            id=pk, public_id=pk, owner="bench", name="bench.noop", queue="bench", data=request.data.get("data", {}),
            state="completed", created_at=now, run_at=now,
        )
        return Response({"id": pk}, status=201)


urlpatterns = [path("bench/insert", InsertOneRow.as_view()), *project_urlpatterns]
