"""The Bull-like Python API: Queue, JobHandle and @jobs.job (tracked tasks, Celery's idiom, are in jobs.tracked)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import conf, registry, selectors, services
from .errors import JobNotFound
from .models import Job

logger = logging.getLogger(__name__)

_UNSET: Any = object()


def _field(attribute: str, doc: str) -> property:
    return property(lambda handle: getattr(handle._record, attribute), doc=doc)


class JobHandle:
    """A job as job functions and Python callers see it (Bull's Job)."""

    def __init__(self, record: Job, *, token: str | None = None):
        self._record = record
        # Set in a worker: progress writes then count only while this worker holds the job.
        self._token = token

    def __repr__(self) -> str:
        return f"<JobHandle {self.name} #{self.id} {self.state}>"

    id = _field("public_id", "The job's id as its owner knows it (a string): the custom jobId, or one made for it.")
    owner = _field("owner", 'The account the job belongs to; "" for the system.')
    name = _field("name", "The name of the job function.")
    queue = _field("queue", "The queue the job went to: its job function's, else the Queue's it was added through.")
    data = _field("data", "The job's data, as loaded (see `reload`).")
    opts = _field("opts", "Bull's options of the job.")
    state = _field("state", "The state when this handle was last loaded (see `reload`).")
    attempts_made = _field("attempts_made", "Failed attempts so far.")
    return_value = _field("return_value", "What the job function returned, once completed.")
    failed_reason = _field("failed_reason", "The message of the latest failure.")

    def progress(self, value: Any = _UNSET) -> Any:
        """Report progress (a number, string or JSON object); with no argument, return it."""
        if value is _UNSET:
            return self._record.progress
        services.job_set_progress(job_id=self._record.pk, progress=value, token=self._token)
        self._record.progress = value
        return value

    def update(self, data: dict[str, Any]) -> None:
        """Replace the job's data (Bull's job.update).

        Inside a running job only the lock holder's write counts: a worker that lost the job
        (its lock ran out and the job runs elsewhere) changes nothing.
        """
        if self._token is None:
            self._record = services.job_update_data(owner=self.owner, job_id=self.id, data=data, merge=False)
        elif services.job_set_data(job_id=self._record.pk, token=self._token, data=data):
            self._record.data = data
        else:
            logger.warning("Job %s: lock lost; job.update() ignored", self._record.pk)

    def remove(self) -> None:
        """Delete the job; raises JobStarted if it is active or finished."""
        services.job_remove(owner=self.owner, job_id=self.id)

    def reload(self) -> JobHandle:
        """Read the job again from the database."""
        self._record = selectors.job_get(owner=self.owner, job_id=self.id)
        return self

    def get_state(self) -> str:
        return self.reload().state

    def to_json(self) -> dict[str, Any]:
        return selectors.job_to_json(self._record)


class Queue:
    """A named job queue (Bull's Queue): add jobs, find them, register job functions."""

    def __init__(self, name: str | None = None):
        self.name = name or conf.get("QUEUE")

    def __repr__(self) -> str:
        return f"<Queue {self.name}>"

    def add(
        self,
        data: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        delay: int | None = None,
        attempts: int | None = None,
        backoff: int | dict[str, Any] | None = None,
        priority: int | None = None,
        job_id: str | None = None,
        owner: str = "",
    ) -> JobHandle:
        """Add a job; it is sent to the workers when the surrounding transaction commits.

        The job goes to the queue its job function names, if it names one, else to this queue.
        `owner` is the account the job is for ("" for the system's own jobs); `job_id` is unique
        within that owner.
        """
        opts = {
            key: value
            for key, value in {
                "delay": delay,
                "attempts": attempts,
                "backoff": backoff,
                "priority": priority,
                "jobId": job_id,
            }.items()
            if value is not None
        }
        record = services.job_create(name=name, data=data, opts=opts, queue=self.name, owner=owner)
        return JobHandle(record)

    def get_job(self, job_id: str, *, owner: str = "") -> JobHandle | None:
        """Return `owner`'s job with this id ("" is the system), or None if there is none."""
        try:
            return JobHandle(selectors.job_get(owner=owner, job_id=job_id))
        except JobNotFound:
            return None

    def process(self, name: str = registry.DEFAULT_JOB_NAME, *, public: bool = False) -> Callable[[Callable], Callable]:
        """Register the decorated function as the job function for `name` on this queue."""
        return job(name, queue=self.name, public=public)


def job(
    name: str = registry.DEFAULT_JOB_NAME, *, queue: str | None = None, public: bool = False
) -> Callable[[Callable], Callable]:
    """Register the decorated function(job) as the job function called `name`.

    With public=True, API clients may add jobs for it (POST /api/job); otherwise only code can.
    """

    def decorator(func: Callable[[JobHandle], Any]) -> Callable[[JobHandle], Any]:
        registry.register(name, func, queue=queue, public=public)
        return func

    return decorator
