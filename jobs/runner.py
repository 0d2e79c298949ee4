"""Running one job in a worker: claim it, keep its lock, call its job function, record the outcome."""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback

from billiard.exceptions import SoftTimeLimitExceeded
from django.db import connection

from . import conf, registry, services
from .handles import JobHandle
from .models import Job, JobState

logger = logging.getLogger(__name__)

# "<host>:<pid of the worker's main process>": set before the pool forks (see mark_worker_node),
# so every job a worker runs names the worker that can put it back when it stops.
_worker_node = f"{socket.gethostname()}:{os.getpid()}"


def mark_worker_node(**_signal_kwargs) -> None:
    """Remember this process as the worker's main process (celery's worker_init signal)."""
    global _worker_node
    _worker_node = f"{socket.gethostname()}:{os.getpid()}"


def worker_node() -> str:
    return _worker_node


def worker_name() -> str:
    return f"{_worker_node}:{os.getpid()}"


class LockKeeper:
    """Renew a running job's lock at half its duration, in a thread, until stopped."""

    def __init__(self, job_id: str, token: str):
        self.job_id = job_id
        self.token = token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lock-{job_id}", daemon=True)

    def __enter__(self) -> LockKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = conf.get("LOCK_DURATION") / 2
        try:
            while not self._stop.wait(interval):
                try:
                    if not services.job_extend_lock(job_id=self.job_id, token=self.token):
                        logger.warning("Job %s: lock lost (taken back by the sweep); its result will be ignored", self.job_id)
                        return
                except Exception:
                    logger.warning("Job %s: could not renew the lock; trying again", self.job_id, exc_info=True)
                    connection.close()
        finally:
            connection.close()


def job_execute(*, job_id: str, worker: str | None = None) -> str:
    """Run the job if this worker wins the claim; return what happened, for logs and tests."""
    token = services.job_claim(job_id=job_id, worker=worker or worker_name())
    if token is None:
        # Deleted, already claimed by another worker, or a duplicate message: nothing to do.
        logger.info("Job %s was not waiting; message ignored", job_id)
        return "skipped"
    record = Job.objects.get(pk=job_id)
    function = registry.get(record.name)
    if function is None:
        services.job_fail(
            job_id=job_id,
            reason=f"No job function is registered as {record.name!r} in this worker.",
            stacktrace="",
            retry=False,
            token=token,
        )
        return "failed"
    try:
        with LockKeeper(job_id, token):
            result = function.func(JobHandle(record, token=token))
        services.ensure_json(result, "the return value")
    except Exception as exc:
        if isinstance(exc, SoftTimeLimitExceeded):
            reason = f"Job timed out after {record.opts.get('timeout')} ms (opts.timeout)."
        else:
            logger.exception("Job %s (%s) failed", job_id, record.name)
            reason = str(exc) or type(exc).__name__
        # The job function may choose how its failure is retried (a tracked task follows Celery:
        # self.retry(countdown=…), autoretry_for); any other retries after the job's backoff.
        choice = function.retry_choice(exc)
        state = services.job_fail(
            job_id=job_id,
            reason=reason,
            stacktrace=traceback.format_exc(),
            retry=choice.retry,
            retry_delay=choice.delay,
            token=token,
        )
        return str(state)
    if not services.job_complete(job_id=job_id, return_value=result, token=token):
        return "lost"
    return "completed"


def release_worker_jobs(node: str | None = None) -> int:
    """Put the jobs still active in this worker back to waiting; return how many."""
    prefix = f"{node or _worker_node}:"
    released = 0
    for job_id in list(Job.objects.filter(state=JobState.ACTIVE, worker__startswith=prefix).values_list("pk", flat=True)):
        released += services.job_release(job_id=job_id)
    if released:
        logger.warning("Put %d running jobs back to waiting as the worker stopped", released)
    return released
