"""Running one job in a worker: claim it, call its job function, record the outcome."""

from __future__ import annotations

import logging
import traceback

from . import registry, services
from .handles import JobHandle
from .models import Job

logger = logging.getLogger(__name__)


def job_execute(*, job_id: str, worker: str) -> str:
    """Run the job if this worker wins the claim; return what happened, for logs and tests."""
    if not services.job_claim(job_id=job_id, worker=worker):
        # Deleted, already claimed by another worker, or a duplicate message: nothing to do.
        logger.info("Job %s was not waiting; message ignored", job_id)
        return "skipped"
    record = Job.objects.get(pk=job_id)
    function = registry.get(record.name)
    if function is None:
        services.job_fail(
            job_id=job_id,
            reason=f"No job function is registered as {record.name!r} in this worker.",
            stacktrace="",
            retry=False,
        )
        return "failed"
    try:
        result = function.func(JobHandle(record))
        services.ensure_json(result, "the return value")
    except Exception as exc:
        logger.exception("Job %s (%s) failed", job_id, record.name)
        state = services.job_fail(
            job_id=job_id,
            reason=str(exc) or type(exc).__name__,
            stacktrace=traceback.format_exc(),
        )
        return str(state)
    services.job_complete(job_id=job_id, return_value=result)
    return "completed"
