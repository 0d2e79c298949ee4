"""Running one job in a worker: claim it, keep its lock, call its job function, record the outcome."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from billiard.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError, connection

from . import conf, logs, registry, services, statements
from .handles import JobHandle
from .models import Job, JobState
from .threads import ProcessThread

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Errors of the database connection or server, worth trying again on a fresh connection; a bad
# statement (IntegrityError, DataError) would fail the same way again.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


class ClaimFailed(Exception):
    """The claim hit a database error: nothing ran, and the message should go back to the queue."""


def worker_name() -> str:
    """The process that claims jobs here: a pool process of this worker start, or this process."""
    from .worker import current

    worker = current()
    return worker.process_name() if worker is not None else f"{socket.gethostname()}:{os.getpid()}"


def persist(write: Callable[[], T], *, job_id: str, what: str, patience: float) -> T:
    """Run a database write, trying again on a fresh connection after a transient error, for up to `patience` seconds."""
    deadline = time.monotonic() + patience
    pause = 0.1
    while True:
        try:
            return write()
        except TRANSIENT_DB_ERRORS:
            if time.monotonic() + pause > deadline:
                raise
            logger.warning("Job %s: %s hit a database error; trying again in %.1fs", job_id, what, pause, exc_info=True)
            connection.close()
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


class LockRenewer:
    """Renew the locks of the jobs this process runs, from one thread per process, each at half LOCK_DURATION.

    Holding a lock is a dict entry (no thread to start and join per job); the thread starts with the
    first job a process runs, and again in a process forked after it.
    """

    def __init__(self) -> None:
        # job id -> (lock token, when its lock is next renewed, in time.monotonic())
        self._held: dict[str, tuple[str, float]] = {}
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._renewer = ProcessThread("jobs-lock-renewer", self._run)

    @contextmanager
    def holding(self, job_id: str, token: str) -> Iterator[None]:
        """Keep the job's lock renewed while the block runs."""
        with self._guard:
            self._held[job_id] = (token, time.monotonic() + conf.get("LOCK_DURATION") / 2)
        self._renewer.ensure_running()
        # The thread may be asleep until a later renewal: let it see this one's.
        self._wake.set()
        try:
            yield
        finally:
            with self._guard:
                self._held.pop(job_id, None)

    def _run(self) -> None:
        while True:
            with self._guard:
                dues = [due for _, due in self._held.values()]
            self._wake.wait(max(0.0, min(dues) - time.monotonic()) if dues else None)
            self._wake.clear()
            now = time.monotonic()
            with self._guard:
                due = [(job_id, token) for job_id, (token, when) in self._held.items() if when <= now]
            for job_id, token in due:
                self._renew(job_id, token)
            if due:
                # Renewals are seconds apart: hold no connection (nor a session on the server) between them.
                connection.close()

    def _renew(self, job_id: str, token: str) -> None:
        try:
            renewed = services.job_extend_lock(job_id=job_id, token=token)
        except Exception:
            logger.warning("Job %s: could not renew the lock; trying again", job_id, exc_info=True)
            connection.close()
            renewed, retry_in = None, 0.5
        else:
            retry_in = conf.get("LOCK_DURATION") / 2
        with self._guard:
            if self._held.get(job_id, ("",))[0] != token:
                return  # finished meanwhile
            if renewed is False:
                # The sweep took it back: stop renewing it.
                del self._held[job_id]
                logger.warning("Job %s: lock lost (taken back by the sweep); its result will be ignored", job_id)
                return
            self._held[job_id] = (token, time.monotonic() + retry_in)


locks = LockRenewer()


def job_execute(*, job_id: str, worker: str | None = None) -> str:
    """Run the job if this worker wins the claim; return what happened, for logs and tests.

    Raises ClaimFailed if the database failed the claim, leaving the job waiting.
    """
    token, record = _claim(job_id, worker or worker_name())
    if token is None:
        # Deleted, already claimed by another worker, or a duplicate message: nothing to do.
        logger.info("Job %s was not waiting; message ignored", job_id)
        return "skipped"
    # The lock is kept while the outcome is written too: a write that has to wait for the
    # database must not lose the job to a sweep meanwhile.
    with locks.holding(job_id, token), logs.running(job_id=record.public_id, name=record.name):
        return _run(record, token)


def _claim(job_id: str, worker: str) -> tuple[str | None, Job | None]:
    # A worker keeps its connection from job to job without checking it first (jobs.worker): a
    # claim that fails because a kept connection has died goes once more on a fresh one.
    db = statements.database()
    kept = db.connection is not None
    while True:
        try:
            claimed = services.job_claim(job_id=job_id, worker=worker)
            return (claimed.lock_token, claimed) if claimed else (None, None)
        except TRANSIENT_DB_ERRORS as exc:
            # A live connection's error (a lock timeout) would only come again: no second try then.
            retry = kept and (db.connection is None or not db.is_usable())
            db.close()
            if not retry:
                raise ClaimFailed(f"Job {job_id}: the claim hit a database error: {exc}") from exc
            logger.info("Job %s: the claim failed on a kept database connection that has died (%s); trying a fresh one", job_id, exc)
            kept = False


def _run(record: Job, token: str) -> str:
    job_id = record.pk
    function = registry.get(record.name)
    if function is None:
        return _fail(job_id, token, f"No job function is registered as {record.name!r} in this worker.", retry=False)
    refusal = _timeout_refusal(record)
    if refusal is not None:
        return _fail(job_id, token, refusal, retry=False)
    try:
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
        return _fail(job_id, token, reason, stacktrace=traceback.format_exc(), retry=choice.retry, retry_delay=choice.delay)
    completed = persist(
        lambda: services.job_complete(job_id=job_id, token=token, return_value=result, opts=record.opts),
        job_id=job_id, what="completion", patience=conf.get("LOCK_DURATION"),
    )
    return "completed" if completed else "lost"


def _fail(
    job_id: str, token: str, reason: str, *, stacktrace: str = "", retry: bool = True, retry_delay: int | None = None
) -> str:
    """Record a failed attempt, trying again through database errors; return the job's new state, or 'lost'."""
    state = persist(
        lambda: services.job_fail(
            job_id=job_id, token=token, reason=reason, stacktrace=stacktrace, retry=retry, retry_delay=retry_delay
        ),
        job_id=job_id, what="failure", patience=conf.get("LOCK_DURATION"),
    )
    return str(state) if state else "lost"


def _timeout_refusal(record: Job) -> str | None:
    """The reason a job with opts.timeout cannot run here, if this worker's pool cannot stop it on time."""
    from .worker import current

    worker = current()
    if not record.opts.get("timeout") or worker is None or worker.stops_jobs_on_time:
        return None
    return (
        f"opts.timeout cannot be enforced by this worker's {worker.pool_name} pool; "
        "run jobs with a timeout on a prefork worker."
    )


def job_fail_killed(*, job_id: str, pool_pid: int | None, seconds: float) -> str | None:
    """Fail the attempt of a job whose pool process was killed at its hard time limit; in the worker's main process.

    Only the claim of the killed process is failed: its token is read from the row that names
    that process, so a job already taken back by a sweep and claimed again is left alone.
    """
    from .worker import current

    worker = current()
    if worker is None or pool_pid is None:
        return None
    token = (
        Job.objects.filter(pk=job_id, state=JobState.ACTIVE, worker=worker.process_name(pool_pid))
        .order_by()
        .values_list("lock_token", flat=True)
        .first()
    )
    if token is None:
        return None
    state = _fail(job_id, token, f"Job timed out and was killed after {seconds} s (opts.timeout).")
    return None if state == "lost" else state
