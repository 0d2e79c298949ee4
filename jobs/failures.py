"""A job's failures read back as exceptions: the class each stored traceback names, and the message."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .models import Job
from .services import STALLED_REASON

TRACEBACK_HEADER = "Traceback (most recent call last):"
# What traceback.format_exception_only puts before ": message": the class's module (left out for
# builtins) and qualified name.
EXCEPTION_NAME = re.compile(r"[A-Za-z_][\w.]*")
# Stands for a failure without an exception of its own.
FALLBACK_PATH = "jobs.errors.JobFailed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """One failed attempt: the dotted path of its exception's class, its message and traceback."""

    exception_path: str
    message: str
    traceback: str


def exception_path(traceback_text: str) -> str | None:
    """Return the dotted class path of the exception a formatted traceback ends with, or None.

    `builtins.ValueError` for `ValueError: …`: the path Django's TaskError and Celery name classes by.
    """
    lines = traceback_text.splitlines()
    # The last block is the exception that was raised; earlier ones are its causes.
    starts = [index for index, line in enumerate(lines) if line == TRACEBACK_HEADER]
    if not starts:
        return None
    for line in lines[starts[-1] + 1 :]:
        if line and not line[0].isspace():
            name = line.split(":", 1)[0]
            if not EXCEPTION_NAME.fullmatch(name):
                return None
            return name if "." in name else f"builtins.{name}"
    return None


def latest_failure(job: Job) -> Failure | None:
    """The failure behind the job's failedReason, or None if it never failed."""
    if job.failed_reason is None:
        return None
    if job.failed_reason == STALLED_REASON or not job.stacktrace:
        # The sweep failed it (its workers kept dying): the stored tracebacks are older failures'.
        return Failure(exception_path=FALLBACK_PATH, message=job.failed_reason, traceback="")
    path = exception_path(job.stacktrace[-1])
    return Failure(exception_path=path or FALLBACK_PATH, message=job.failed_reason, traceback=job.stacktrace[-1])

