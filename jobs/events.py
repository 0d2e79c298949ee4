"""GET /api/job/<id>/events: a job's state and progress as Server-Sent Events, woken by Redis pub/sub, not by polling.

Every write that changes a job announces it on the job's channel (services._announce). A stream
subscribes first, then reads the row, and reads it again only when woken: it sends the job as it
is, each change of state or progress, and the final job JSON once the job has finished (or
`removed` if it was deleted), then ends. Streams are async, so a watching client ties up no thread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from celery import current_app
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors
from .api_errors import error_body
from .messages import EVENTS_CHANNEL
from .models import Job, JobState
from .permissions import HasScope
from .throttling import ApiKeyRateThrottle

logger = logging.getLogger(__name__)

# A comment line this often keeps proxies and clients from closing a quiet stream.
KEEP_ALIVE_SECONDS = 15.0
FINISHED = (JobState.COMPLETED, JobState.FAILED)


class JobEventsGate(APIView):
    """Who may watch: the same credentials, scope (job.read), rate limit and ownership as GET /api/job/<id>."""

    permission_classes = [IsAuthenticated, HasScope]
    throttle_classes = [ApiKeyRateThrottle]
    required_scopes = {"get": "job.read"}

    def perform_content_negotiation(self, request, force=False):
        # The client asks for text/event-stream; a refusal still answers in JSON.
        return super().perform_content_negotiation(request, force=True)

    def get(self, request, job_id: str) -> Response:
        from .views import request_owner

        job = selectors.job_get(owner=request_owner(request), job_id=job_id)
        return Response({"pk": job.pk})


gate = JobEventsGate.as_view()


def _admit(request: HttpRequest, job_id: str) -> tuple[str | None, HttpResponse]:
    response = gate(request, job_id=job_id)
    response.render()
    return (response.data["pk"] if response.status_code == 200 else None), response


async def job_events(request: HttpRequest, job_id: str) -> HttpResponse:
    """Stream the job's events (text/event-stream) until it finishes."""
    pk, refusal = await sync_to_async(_admit)(request, job_id)
    if pk is None:
        return refusal
    client = _redis_client()
    if client is None:
        return JsonResponse(error_body(503, "unavailable", "Live job events need a Redis broker."), status=503)
    response = StreamingHttpResponse(_stream(pk, client), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    # Nginx and similar proxies would otherwise hold the events back in their buffers.
    response["X-Accel-Buffering"] = "no"
    return response


def _redis_client() -> Any:
    """An asyncio Redis client of the broker, or None when the broker is not Redis."""
    import redis.asyncio as redis

    url = current_app.conf.broker_url or ""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return redis.Redis.from_url(url)


async def _stream(pk: str, client: Any) -> AsyncIterator[str]:
    pubsub = client.pubsub()
    try:
        # Subscribe before the first read, so no change between them goes unseen.
        await pubsub.subscribe(EVENTS_CHANNEL.format(pk))
        seen: dict[str, Any] | None = None
        while True:
            job = await sync_to_async(_read)(pk)
            if job is None:
                yield _event("removed", {"id": seen["id"] if seen else None})
                return
            if seen is None:
                yield _event("job", job)
            else:
                if job["state"] != seen["state"]:
                    yield _event("state", {"id": job["id"], "state": job["state"]})
                if job["progress"] != seen["progress"]:
                    yield _event("progress", {"id": job["id"], "progress": job["progress"]})
            if job["state"] in FINISHED:
                yield _event("finished", job)
                return
            seen = job
            if await pubsub.get_message(ignore_subscribe_messages=True, timeout=KEEP_ALIVE_SECONDS) is None:
                yield ": keep-alive\n\n"
    finally:
        await pubsub.aclose()
        await client.aclose()


def _read(pk: str) -> dict[str, Any] | None:
    job = Job.objects.filter(pk=pk).first()
    return None if job is None else selectors.job_to_json(job)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
