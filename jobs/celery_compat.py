"""Celery's side of results for jobs: its state names, AsyncResult, and a result backend that reads the jobs table."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

from celery import current_app, states
from celery.app.base import Celery
from celery.result import AsyncResult
from django_celery_results.backends.database import DatabaseBackend

from .errors import JobNotFound
from .failures import Failure, latest_failure
from .models import Job, JobState

if TYPE_CHECKING:
    from .handles import JobHandle

REVOKED_PATH = "celery.exceptions.TaskRevokedError"


def celery_state(job: Job) -> str:
    """Name the job's state as Celery would: PENDING, STARTED, RETRY, SUCCESS, FAILURE (REVOKED once expired)."""
    if job.state == JobState.COMPLETED:
        return states.SUCCESS
    if job.state == JobState.FAILED:
        failure = latest_failure(job)
        return states.REVOKED if failure and failure.exception_path == REVOKED_PATH else states.FAILURE
    if job.state == JobState.ACTIVE:
        return states.STARTED
    # Waiting or delayed: after a failed (or lost) attempt it is waiting for its retry.
    return states.RETRY if job.attempts_made or job.stalled_count else states.PENDING


def exception_info(failure: Failure) -> dict[str, Any]:
    """The failure as Celery's result backends store an exception, for Backend.exception_to_python."""
    parts = failure.exception_path.split(".")
    # The longest loaded module prefix: Celery looks classes up only in modules already imported.
    prefixes = (".".join(parts[:cut]) for cut in range(len(parts) - 1, 0, -1))
    module = next((prefix for prefix in prefixes if prefix in sys.modules), None)
    name = failure.exception_path[len(module) + 1 :] if module else parts[-1]
    return {"exc_type": name, "exc_module": module, "exc_message": [failure.message]}


def job_task_meta(job: Job) -> dict[str, Any]:
    """Celery's task meta (what a result backend returns for a task id) for the job, before decoding."""
    state = celery_state(job)
    failure = latest_failure(job) if state in states.EXCEPTION_STATES else None
    if state == states.SUCCESS:
        result = job.return_value
    elif failure is not None:
        result = exception_info(failure)
    else:
        # While it runs, `.info` shows the job's progress, as a task's update_state meta would.
        result = job.progress if state == states.STARTED else None
    data = job.data if isinstance(job.data, dict) else {}
    return {
        "task_id": job.pk,
        "status": state,
        "result": result,
        "traceback": (failure.traceback or None) if failure else None,
        "children": [],
        "date_done": job.finished_on,
        "name": job.name,
        "args": data.get("args"),
        "kwargs": data.get("kwargs"),
        "worker": job.worker or None,
        "retries": job.attempts_made,
        "queue": job.queue,
    }


def job_for_task_id(task_id: str) -> Job | None:
    """The job a Celery task id names: its internal id, else a system job's own id (given without owner=)."""
    return Job.objects.filter(pk=task_id).first() or Job.objects.known_as("", task_id).first()


class JobsResultBackend(DatabaseBackend):
    """Celery's result backend: a job's row answers for its id; other tasks' results are django-celery-results'."""

    def _get_task_meta_for(self, task_id: str) -> dict[str, Any]:
        job = job_for_task_id(str(task_id))
        if job is None:
            return super()._get_task_meta_for(task_id)
        return self.meta_from_decoded(job_task_meta(job))


_backends: dict[int, JobsResultBackend] = {}


def jobs_result_backend(app: Celery) -> JobsResultBackend:
    """The app's result backend if it reads jobs (CELERY_RESULT_BACKEND), else one that does."""
    if isinstance(app.backend, JobsResultBackend):
        return app.backend
    if id(app) not in _backends:
        _backends[id(app)] = JobsResultBackend(app=app)
    return _backends[id(app)]


class TrackedResult(AsyncResult):
    """What a tracked task's delay() returns: Celery's AsyncResult of its job, and `.job`, the job's handle.

    `id` is the job's internal id, which Celery's `app.AsyncResult(id)` finds; it is the job's own id
    (`.job.id`) unless one was given (`task_id=` or `job_id=`).
    """

    def __init__(self, id: str, *, app: Celery | None = None):
        app = app or current_app
        super().__init__(id, backend=jobs_result_backend(app), app=app)

    def revoke(self, *args: Any, **kwargs: Any) -> NoReturn:
        # Celery's revoke is a broadcast to workers that a job would ignore: say so, never do nothing.
        raise NotImplementedError(
            "A tracked task's job is not revoked: remove it before it starts, with result.job.remove()."
        )

    @property
    def job(self) -> JobHandle:
        """The job's handle (Bull's API: progress, data, to_json), read now."""
        from .handles import JobHandle

        record = Job.objects.filter(pk=self.id).first()
        if record is None:
            raise JobNotFound(self.id)
        return JobHandle(record)
