"""The registry of job functions, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import AlreadyRegistered

DEFAULT_JOB_NAME = "__default__"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryChoice:
    """How a failed attempt is retried: `retry=False` fails the job now; `delay` (ms) replaces its backoff."""

    retry: bool = True
    delay: int | None = None


# Bull's rule: any failure is retried while attempts are left, after the job's backoff.
RETRY_WITH_BACKOFF = RetryChoice()


@dataclass(frozen=True)
class JobFunction:
    """A registered job function: it receives a JobHandle and returns a JSON value."""

    name: str
    func: Callable[[Any], Any]
    queue: str | None = None
    # Public functions may be named in POST /api/job; the rest only by code (the system's own
    # jobs, tracked tasks), so a tenant can never start them.
    public: bool = False
    # Decides how an exception of `func` is retried; tracked tasks follow Celery's rules
    # (self.retry(countdown=…), autoretry_for). None: Bull's rule.
    retry_policy: Callable[[Exception], RetryChoice] | None = None

    def retry_choice(self, exc: Exception) -> RetryChoice:
        """Return how the attempt that raised `exc` is retried."""
        return RETRY_WITH_BACKOFF if self.retry_policy is None else self.retry_policy(exc)


_functions: dict[str, JobFunction] = {}


def register(
    name: str,
    func: Callable[[Any], Any],
    *,
    queue: str | None = None,
    public: bool = False,
    retry_policy: Callable[[Exception], RetryChoice] | None = None,
) -> JobFunction:
    """Register `func` under `name`; registering the same function twice is harmless."""
    existing = _functions.get(name)
    if existing is not None and _qualname(existing.func) != _qualname(func):
        raise AlreadyRegistered(
            f"A job function is already registered as {name!r}: {_qualname(existing.func)}."
        )
    entry = JobFunction(name=name, func=func, queue=queue, public=public, retry_policy=retry_policy)
    _functions[name] = entry
    return entry


def unregister(name: str) -> None:
    """Forget the job function registered under `name`, if any."""
    _functions.pop(name, None)


def get(name: str, *, public_only: bool = False) -> JobFunction | None:
    """Return the job function registered as `name`; with public_only, only a public one."""
    function = _functions.get(name)
    return None if function is None or (public_only and not function.public) else function


def names(*, public_only: bool = False) -> list[str]:
    return sorted(name for name, function in _functions.items() if function.public or not public_only)


def queues() -> list[str]:
    """The queues that registered job functions name (not the default queue, which functions need not name)."""
    return sorted({function.queue for function in _functions.values() if function.queue})


def _qualname(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"
