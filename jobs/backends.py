"""A backend for Django's Tasks framework (django.tasks): every enqueued task is a job that the job workers run."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core import checks
from django.tasks import DEFAULT_TASK_QUEUE_NAME, Task, TaskContext, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json
from django.utils.module_loading import import_string

from . import conf, registry, services
from .errors import InvalidJob
from .failures import FALLBACK_PATH, exception_path, latest_failure
from .models import Job, JobState
from .options import parse_options

if TYPE_CHECKING:
    from .handles import JobHandle

STATUSES = {
    JobState.WAITING: TaskResultStatus.READY,
    JobState.DELAYED: TaskResultStatus.READY,
    JobState.ACTIVE: TaskResultStatus.RUNNING,
    JobState.COMPLETED: TaskResultStatus.SUCCESSFUL,
    JobState.FAILED: TaskResultStatus.FAILED,
}
# OPTIONS of a JobsBackend: the Bull options every job it makes gets.
KNOWN_OPTIONS = {"ATTEMPTS": "attempts", "BACKOFF": "backoff"}

_owner: ContextVar[str] = ContextVar("jobs_task_owner", default="")


@contextmanager
def for_owner(owner: str) -> Iterator[None]:
    """Make the Django tasks enqueued inside the block jobs of `owner` (an account key such as "account:7")."""
    token = _owner.set(owner)
    try:
        yield
    finally:
        _owner.reset(token)


def bull_priority(priority: int) -> int:
    """Map Django's priority (-100 lowest … 100 highest, 0 by default) onto Bull's 1 (highest) … 9.

    Nine even bands of 25, so each lands on its own Redis priority step: 100…88 → 1, 12…-12 → 5,
    -88…-100 → 9.
    """
    return 1 + (100 - priority + 12) // 25


class JobsBackend(BaseTaskBackend):
    """Django's Tasks on gravity-jobs: enqueue() adds a job (sent after commit), get_result() reads its row."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task: Task) -> None:
        super().validate_task(task)
        # Django builds every Task of this backend through here (@task at import, using()), in the
        # web process and in the worker alike: the worker finds the job function by the task's path.
        registry.register(task.module_path, _job_function(task))

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        # Django's own rule (a TypeError naming the type), then ours: no NaN, NUL or lone surrogates.
        arguments = {"args": normalize_json(args), "kwargs": normalize_json(kwargs)}
        services.ensure_json(arguments, "the task's arguments")
        job = services.job_create(
            name=task.module_path,
            data={
                **arguments,
                # What get_result() gives back as the result's task; the row's own columns are Bull's.
                "task": {
                    "priority": task.priority,
                    "queue_name": task.queue_name,
                    "backend": self.alias,
                    "run_after": None if task.run_after is None else task.run_after.isoformat(),
                },
            },
            opts={
                **self._job_options(),
                "delay": self._delay(task.run_after),
                "priority": bull_priority(task.priority),
            },
            queue=conf.get("QUEUE") if task.queue_name == DEFAULT_TASK_QUEUE_NAME else task.queue_name,
            owner=_owner.get(),
        )
        result = task_result(job, task)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        job = Job.objects.filter(pk=result_id).first()
        task = None if job is None else _task_of(job)
        if task is None:
            raise TaskResultDoesNotExist(result_id)
        return task_result(job, task)

    def check(self, **kwargs: Any) -> Iterator[checks.CheckMessage]:
        yield from super().check(**kwargs)
        unknown = sorted(set(self.options) - set(KNOWN_OPTIONS))
        if unknown:
            yield checks.Error(
                f"TASKS[{self.alias!r}]['OPTIONS'] has unknown keys: {', '.join(unknown)}.",
                hint=f"Known keys: {', '.join(KNOWN_OPTIONS)}.",
                id="jobs.E009",
            )
            return
        try:
            parse_options(self._job_options())
        except InvalidJob as exc:
            yield checks.Error(f"TASKS[{self.alias!r}]['OPTIONS']: {exc}", id="jobs.E009")

    def _job_options(self) -> dict[str, Any]:
        """The Bull options that OPTIONS give every job of this backend."""
        return {option: self.options[key] for key, option in KNOWN_OPTIONS.items() if key in self.options}

    def _delay(self, run_after: datetime | None) -> int:
        if run_after is None:
            return 0
        delay = max(0, math.ceil((run_after - timezone.now()).total_seconds() * 1000))
        if delay > conf.get("MAX_DELAY"):
            raise InvalidTask(f"run_after must be at most {conf.get('MAX_DELAY') // 1000} seconds from now.")
        return delay


def task_result(job: Job, task: Task) -> TaskResult:
    """The job as Django's TaskResult of `task` (its priority, queue and run_after as enqueued)."""
    enqueued = _as_enqueued(task, job)
    result = TaskResult(
        task=enqueued,
        id=job.pk,
        status=STATUSES[job.state],
        enqueued_at=job.created_at,
        started_at=job.processed_on,
        finished_at=job.finished_on,
        last_attempted_at=job.processed_on,
        args=job.data.get("args", []),
        kwargs=job.data.get("kwargs", {}),
        backend=enqueued.backend,
        errors=_errors(job),
        worker_ids=_worker_ids(job),
    )
    if job.state == JobState.COMPLETED:
        # Django keeps the value in a field that is not an init argument, as its own backends set it.
        object.__setattr__(result, "_return_value", job.return_value)
    return result


def _as_enqueued(task: Task, job: Job) -> Task:
    """The task with the priority, queue, run_after and backend it was enqueued with (kept in the job's data)."""
    stored = job.data.get("task")
    if not isinstance(stored, dict):
        return task
    try:
        run_after = stored.get("run_after")
        return task.using(
            priority=stored.get("priority"),
            queue_name=stored.get("queue_name"),
            run_after=None if run_after is None else datetime.fromisoformat(run_after),
            backend=stored.get("backend"),
        )
    except (InvalidTask, InvalidTaskBackend, TypeError, ValueError):
        # The job's owner may change its data (PATCH): then report the task as declared.
        return task


def _errors(job: Job) -> list[TaskError]:
    errors = [
        TaskError(exception_class_path=exception_path(text) or FALLBACK_PATH, traceback=text) for text in job.stacktrace
    ]
    failure = latest_failure(job)
    if job.state == JobState.FAILED and failure is not None and not failure.traceback:
        # Failed by the sweep (its workers kept dying): no exception, so the reason stands in.
        errors.append(TaskError(exception_class_path=FALLBACK_PATH, traceback=failure.message))
    return errors


def _worker_ids(job: Job) -> list[str]:
    """One entry per attempt, as Django counts them: the latest's worker, "" for earlier ones (the row keeps one)."""
    ran = job.attempts_made + job.stalled_count + (job.state in (JobState.ACTIVE, JobState.COMPLETED))
    return [""] * (ran - 1) + [job.worker] if ran else []


def _task_of(job: Job) -> Task | None:
    """The Django Task whose job this is, or None for any other job."""
    function = registry.get(job.name)
    if function is not None:
        return getattr(function.func, "django_task", None)
    # A process that never imported the task's module (its name is the task's path). Only code
    # can add jobs of names no job function has, so this never imports a name a tenant chose.
    try:
        task = import_string(job.name)
    except ImportError:
        return None
    return task if isinstance(task, Task) and isinstance(job.data.get("task"), dict) else None


def _job_function(task: Task) -> Callable[[JobHandle], Any]:
    """The job function that runs `task` in a worker, with Django's signals and, if it takes one, its context."""

    def run(handle: JobHandle) -> Any:
        # The worker's handle holds the row it just claimed: the attempt's start, worker and count.
        result = task_result(handle._record, task)
        backend = type(result.task.get_backend())
        task_started.send(sender=backend, task_result=result)
        try:
            if result.task.takes_context:
                value = result.task.call(TaskContext(task_result=result), *result.args, **result.kwargs)
            else:
                value = result.task.call(*result.args, **result.kwargs)
            value = normalize_json(value)
        except Exception:
            _finish(result, TaskResultStatus.FAILED)
            task_finished.send(sender=backend, task_result=result)
            raise
        _finish(result, TaskResultStatus.SUCCESSFUL, value)
        task_finished.send(sender=backend, task_result=result)
        return value

    # Named as the task function, so the registry tells two functions under one name apart.
    functools.update_wrapper(run, task.func)
    run.django_task = task  # type: ignore[attr-defined]
    return run


def _finish(result: TaskResult, status: TaskResultStatus, value: Any = None) -> None:
    # What the signal's receivers see; the row is written by the runner right after.
    object.__setattr__(result, "status", status)
    object.__setattr__(result, "finished_at", timezone.now())
    object.__setattr__(result, "_return_value", value)
