"""Background jobs for Django: a Bull-like API over Celery, with the database as the record."""

from .errors import (
    AlreadyRegistered,
    InvalidJob,
    JobError,
    JobExists,
    JobFailed,
    JobInWrongState,
    JobIsInternal,
    JobNotDelayed,
    JobNotFailed,
    JobNotFound,
    JobStarted,
    UnknownJobName,
)
from .registry import DEFAULT_JOB_NAME

__all__ = [
    "DEFAULT_JOB_NAME",
    "AlreadyRegistered",
    "InvalidJob",
    "JobError",
    "JobExists",
    "JobFailed",
    "JobHandle",
    "JobInWrongState",
    "JobIsInternal",
    "JobNotDelayed",
    "JobNotFailed",
    "JobNotFound",
    "JobStarted",
    "JobState",
    "Queue",
    "UnknownJobName",
    "job",
    "task",
]

_LAZY = {
    "JobHandle": "handles",
    "Queue": "handles",
    "job": "handles",
    "task": "tracked",
    "JobState": "models",
}


def __getattr__(name: str):
    # Queue and friends touch models, which may be imported only once Django's apps are ready;
    # loading them on first use lets `import jobs` happen in settings-time code.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'jobs' has no attribute {name!r}")
