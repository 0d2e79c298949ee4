"""Tracked tasks: Celery's task idiom (@shared_task, delay, apply_async, self.retry) where every call is a job."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from celery.exceptions import MaxRetriesExceededError, Retry, TaskRevokedError
from celery.utils.time import get_exponential_backoff_interval
from django.utils import timezone

from . import conf, registry, services
from .celery_compat import TrackedResult
from .errors import InvalidJob
from .handles import JobHandle, Queue
from .options import parse_options

# Celery's defaults (celery.app.task.Task), so a task moved from @shared_task retries as it did.
CELERY_MAX_RETRIES = 3
CELERY_RETRY_DELAY = 180
CELERY_BACKOFF_MAX = 600
# Celery's priorities on Redis: 0 is the highest. Each becomes Bull's p + 1, which lands on Redis
# step p (9 shares step 8: jobs.services keeps step 9 for jobs without a priority).
CELERY_PRIORITIES = range(10)
_UNSET: Any = object()


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryRules:
    """When a tracked task's failures run again: Bull's (attempts=, backoff=) or Celery's (max_retries, …)."""

    # Bull's: any failure is retried after the backoff while attempts are left. Celery's: only
    # self.retry() and the exceptions in autoretry_for are; any other fails the job at once.
    any_failure: bool
    attempts: int | None = None
    backoff: int | dict[str, Any] | None = None
    # Celery's: None retries without end (up to JOBS["MAX_ATTEMPTS"] runs in all).
    max_retries: int | None = CELERY_MAX_RETRIES
    autoretry_for: tuple[type[Exception], ...] = ()
    retry_backoff: bool | int = False
    retry_backoff_max: int = CELERY_BACKOFF_MAX
    retry_jitter: bool = True
    # Seconds before a self.retry() that names no countdown or eta; None: the job's backoff.
    default_retry_delay: float | None = None

    def job_attempts(self) -> int | None:
        """The attempts of each job the task makes (None: the job's default, 1)."""
        if self.any_failure:
            return self.attempts
        return conf.get("MAX_ATTEMPTS") if self.max_retries is None else self.max_retries + 1

    def autoretry_countdown(self, retries: int) -> int | None:
        """Celery's wait before an autoretry after `retries` retries: exponential with retry_backoff, else None."""
        if not self.retry_backoff:
            return None
        return get_exponential_backoff_interval(
            factor=int(max(1, self.retry_backoff)),
            retries=retries,
            maximum=self.retry_backoff_max,
            full_jitter=self.retry_jitter,
        )


def retry_rules(
    *, attempts: int | None, backoff: int | dict[str, Any] | None, **celery_options: Any
) -> RetryRules:
    """Choose Bull's rules (attempts=, backoff=) or Celery's (the options given, Celery's defaults for the rest)."""
    given = {key: value for key, value in celery_options.items() if value is not _UNSET}
    if attempts is not None or backoff is not None:
        if given:
            raise TypeError(
                "Give attempts/backoff (Bull's: every failure is retried) or Celery's retry options "
                f"({', '.join(given)}: only self.retry() and autoretry_for retry), not both."
            )
        # Checked now, so a bad value fails at import rather than at the first delay().
        parse_options({"attempts": 1 if attempts is None else attempts, "backoff": backoff})
        return RetryRules(any_failure=True, attempts=attempts, backoff=backoff)
    max_retries = given.get("max_retries", CELERY_MAX_RETRIES)
    most = conf.get("MAX_ATTEMPTS") - 1
    whole = isinstance(max_retries, int) and not isinstance(max_retries, bool)
    if max_retries is not None and not (whole and 0 <= max_retries <= most):
        raise InvalidJob(f"max_retries must be a whole number from 0 to {most}, or None; got {max_retries!r}.")
    autoretry_for = tuple(given.get("autoretry_for", ()))
    if not all(isinstance(kind, type) and issubclass(kind, Exception) for kind in autoretry_for):
        raise InvalidJob(f"autoretry_for must be a tuple of exception classes; got {autoretry_for!r}.")
    return RetryRules(
        any_failure=False,
        max_retries=max_retries,
        autoretry_for=autoretry_for,
        retry_backoff=given.get("retry_backoff", False),
        retry_backoff_max=given.get("retry_backoff_max", CELERY_BACKOFF_MAX),
        retry_jitter=given.get("retry_jitter", True),
        default_retry_delay=given.get("default_retry_delay", CELERY_RETRY_DELAY),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRequest:
    """Celery's `self.request` for the running call of a bound tracked task."""

    id: str
    retries: int
    args: list[Any]
    kwargs: dict[str, Any]
    hostname: str


class TaskHandle(JobHandle):
    """What a bound tracked task receives first: the job handle, plus Celery's `retry`, `request` and `max_retries`."""

    def __init__(self, handle: JobHandle, *, task: TrackedTask):
        # The same row and lock token as the worker's handle, so progress writes stay fenced.
        super().__init__(handle._record, token=handle._token)
        self.task = task

    @property
    def request(self) -> TaskRequest:
        return TaskRequest(
            # The id its result gave (result.id): the job's internal id.
            id=self._record.pk,
            retries=self.attempts_made,
            args=list(self.data.get("args", [])),
            kwargs=dict(self.data.get("kwargs", {})),
            hostname=self._record.worker,
        )

    @property
    def max_retries(self) -> int:
        return self._record.attempts - 1

    def retry(
        self, exc: BaseException | None = None, countdown: float | None = None, eta: datetime | None = None
    ) -> NoReturn:
        """Fail this attempt and run again after `countdown` seconds or at `eta` (Celery's Task.retry).

        Without either, Celery's default_retry_delay (or, under attempts=, the job's backoff) applies.
        With no attempts left, `exc` is raised instead (MaxRetriesExceededError without one): the job fails.
        """
        if self._record.attempts_made + 1 >= self._record.attempts:
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{self.request.id}] args:{self.request.args} kwargs:{self.request.kwargs}"
            )
        if eta is not None:
            _ensure_aware(eta, "eta")
        if countdown is None and eta is None:
            countdown = self.task.rules.default_retry_delay
        when = eta if countdown is None else countdown
        # Celery's Retry, so `except Retry` and `raise self.retry(...)` read as they did.
        raise Retry(message=None if when is not None else _backoff_message(exc), exc=exc, when=when)


def _backoff_message(exc: BaseException | None) -> str:
    return "Retry after the job's backoff" + (f": {exc!r}" if exc is not None else "")


def retry_delay_ms(when: Any) -> int | None:
    """Milliseconds until a Retry's `when` (seconds, or an aware moment); None leaves the job's backoff."""
    if isinstance(when, datetime) and timezone.is_aware(when):
        return max(0, math.ceil((when - timezone.now()).total_seconds() * 1000))
    if isinstance(when, int | float) and not isinstance(when, bool):
        return max(0, math.ceil(when * 1000))
    return None


class TrackedTask:
    """A task function whose `.delay()` creates a Job (shown by the API and admin) after commit."""

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str,
        queue: str | None,
        bind: bool = False,
        rules: RetryRules | None = None,
        ignore_result: bool = False,
    ):
        self.func = func
        self.name = name
        self.queue = queue
        self.bind = bind
        self.rules = rules or retry_rules(attempts=None, backoff=None)
        self.ignore_result = ignore_result
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

        def run(handle: JobHandle) -> Any:
            return self._run(handle)

        # Named as the task function, so the registry tells two functions under one name apart.
        registry.register(name, functools.update_wrapper(run, func), queue=queue, retry_policy=self._retry_choice)

    def __repr__(self) -> str:
        return f"<TrackedTask {self.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function here and now, without a job."""
        return self.func(*args, **kwargs)

    def _run(self, handle: JobHandle) -> Any:
        expires = handle.data.get("expires")
        if expires is not None and timezone.now() > datetime.fromisoformat(expires):
            raise TaskRevokedError(f"expired: the task had not started by {expires}")
        bound = TaskHandle(handle, task=self)
        args, kwargs = bound.request.args, bound.request.kwargs
        try:
            result = self.func(bound, *args, **kwargs) if self.bind else self.func(*args, **kwargs)
        except Retry:
            raise
        except self.rules.autoretry_for as exc:
            # As Celery's autoretry_for: retry through self.retry, which raises exc once retries run out.
            bound.retry(exc=exc, countdown=self.rules.autoretry_countdown(bound.attempts_made))
        return None if self.ignore_result else result

    def _retry_choice(self, exc: Exception) -> registry.RetryChoice:
        if isinstance(exc, Retry):
            return registry.RetryChoice(delay=retry_delay_ms(exc.when))
        if isinstance(exc, TaskRevokedError):
            return registry.RetryChoice(retry=False)
        return registry.RETRY_WITH_BACKOFF if self.rules.any_failure else registry.RetryChoice(retry=False)

    def delay(self, *args: Any, **kwargs: Any) -> TrackedResult:
        """Create a job that runs the function with these arguments (they must be JSON)."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: tuple | list = (),
        kwargs: dict[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: datetime | None = None,
        expires: float | datetime | None = None,
        priority: int | None = None,
        queue: str | None = None,
        task_id: str | None = None,
        job_id: str | None = None,
        owner: str = "",
        attempts: int | None = None,
        backoff: int | dict[str, Any] | None = None,
    ) -> TrackedResult:
        """Celery's apply_async: the job runs after `countdown` seconds or at `eta`, not after `expires`.

        `priority` is Celery's on Redis (0 highest … 9); `task_id` (or `job_id`) is the job's own id,
        unique within `owner`. `attempts` and `backoff` replace the task's own for this job.
        """
        now = timezone.now()
        data: dict[str, Any] = {"args": list(args), "kwargs": dict(kwargs or {})}
        services.ensure_json(data, "the task's arguments")
        if countdown is not None and eta is not None:
            raise InvalidJob("Give countdown or eta, not both.", field="eta")
        if eta is not None:
            _ensure_aware(eta, "eta")
            countdown = (eta - now).total_seconds()
        if expires is not None:
            if isinstance(expires, datetime):
                _ensure_aware(expires, "expires")
            else:
                expires = now + timedelta(seconds=expires)
            data["expires"] = expires.isoformat()
        if priority is not None and (isinstance(priority, bool) or priority not in CELERY_PRIORITIES):
            raise InvalidJob(
                f"priority must be a whole number from 0 (the highest) to 9, as Celery's on Redis; got {priority!r}.",
                field="priority",
            )
        if task_id is not None and job_id is not None and task_id != job_id:
            raise InvalidJob("Give task_id or job_id (the same thing), not both.", field="task_id")
        handle = Queue(queue or self.queue).add(
            data,
            name=self.name,
            delay=None if countdown is None else max(0, math.ceil(countdown * 1000)),
            attempts=self.rules.job_attempts() if attempts is None else attempts,
            backoff=self.rules.backoff if backoff is None else backoff,
            priority=None if priority is None else priority + 1,
            job_id=task_id or job_id,
            owner=owner,
        )
        return TrackedResult(handle._record.pk)

    def AsyncResult(self, task_id: str) -> TrackedResult:  # noqa: N802 - Celery's name
        """The result of one of this task's jobs, by the id its result gave (Celery's Task.AsyncResult)."""
        return TrackedResult(task_id)


def _ensure_aware(moment: datetime, what: str) -> None:
    if timezone.is_naive(moment):
        raise InvalidJob(f"{what} must be an aware datetime.", field=what)


def task(
    func: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    queue: str | None = None,
    bind: bool = False,
    attempts: int | None = None,
    backoff: int | dict[str, Any] | None = None,
    max_retries: int | None = _UNSET,
    autoretry_for: tuple[type[Exception], ...] = _UNSET,
    retry_backoff: bool | int = _UNSET,
    retry_backoff_max: int = _UNSET,
    retry_jitter: bool = _UNSET,
    default_retry_delay: float = _UNSET,
    ignore_result: bool = False,
) -> Any:
    """Declare a tracked task: `@jobs.task`, or `@jobs.task(bind=True, max_retries=5, …)` as Celery's @shared_task.

    Retries follow Celery's rules (self.retry(), autoretry_for, max_retries default 3, other
    exceptions fail the job) unless `attempts`/`backoff` are given: then Bull's (every failure is
    retried, `attempts` runs in all). With bind=True the function receives a TaskHandle first.
    """
    rules = retry_rules(
        attempts=attempts,
        backoff=backoff,
        max_retries=max_retries,
        autoretry_for=autoretry_for,
        retry_backoff=retry_backoff,
        retry_backoff_max=retry_backoff_max,
        retry_jitter=retry_jitter,
        default_retry_delay=default_retry_delay,
    )

    def decorator(inner: Callable[..., Any]) -> TrackedTask:
        return TrackedTask(
            inner,
            name=name or f"{inner.__module__}.{inner.__name__}",
            queue=queue,
            bind=bind,
            rules=rules,
            ignore_result=ignore_result,
        )

    return decorator(func) if func is not None else decorator
