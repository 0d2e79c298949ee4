"""The registry of job functions, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import AlreadyRegistered

DEFAULT_JOB_NAME = "__default__"


@dataclass(frozen=True)
class JobFunction:
    """A registered job function: it receives a JobHandle and returns a JSON value."""

    name: str
    func: Callable[[Any], Any]
    queue: str | None = None


_functions: dict[str, JobFunction] = {}


def register(name: str, func: Callable[[Any], Any], *, queue: str | None = None) -> JobFunction:
    """Register `func` under `name`; registering the same function twice is harmless."""
    existing = _functions.get(name)
    if existing is not None and _qualname(existing.func) != _qualname(func):
        raise AlreadyRegistered(
            f"A job function is already registered as {name!r}: {_qualname(existing.func)}."
        )
    entry = JobFunction(name=name, func=func, queue=queue)
    _functions[name] = entry
    return entry


def unregister(name: str) -> None:
    """Forget the job function registered under `name`, if any."""
    _functions.pop(name, None)


def get(name: str) -> JobFunction | None:
    return _functions.get(name)


def names() -> list[str]:
    return sorted(_functions)


def _qualname(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"
