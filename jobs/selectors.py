"""Reads of jobs, and the job JSON that clients see."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .errors import JobNotFound
from .models import Job


def job_get(*, owner: str, job_id: str) -> Job:
    """Return the job `owner` knows as `job_id` ("" is the system), or raise JobNotFound: other owners' jobs do not exist."""
    job = Job.objects.known_as(owner, job_id).first()
    if job is None:
        raise JobNotFound(job_id)
    return job


def to_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def job_to_json(job: Job) -> dict[str, Any]:
    """Return Bull's job.toJSON() shape plus `state`."""
    return {
        "id": job.public_id,
        "name": job.name,
        "data": job.data,
        "opts": job.opts,
        "progress": job.progress,
        "delay": job.delay,
        "timestamp": to_ms(job.created_at),
        "attemptsMade": job.attempts_made,
        "stalledCounter": job.stalled_count,
        "failedReason": job.failed_reason,
        "stacktrace": job.stacktrace,
        "returnvalue": job.return_value,
        "finishedOn": to_ms(job.finished_on),
        "processedOn": to_ms(job.processed_on),
        "state": job.state,
    }
