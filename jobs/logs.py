"""Log lines written while a job runs carry its id and name, whoever writes them (the job function, the ORM, Celery)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_running: ContextVar[str] = ContextVar("gravity_jobs_running", default="")


@contextmanager
def running(*, job_id: str, name: str) -> Iterator[None]:
    """Mark this thread's log lines, while the block runs, as the job's."""
    reset = _running.set(f" [job={job_id} name={name}]")
    try:
        yield
    finally:
        _running.reset(reset)


class JobContextFilter(logging.Filter):
    """Give every record a `job` attribute: ' [job=<id> name=<name>]' while a job runs here, else ''.

    Put it on a handler (not a logger), so it marks what every logger writes; use %(job)s in the format.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.job = _running.get()
        return True
