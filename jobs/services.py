"""Writes to jobs: every state change is one guarded write whose row count says who won."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import conf, registry
from .errors import InvalidJob, JobExists, JobNotFound, JobStarted, UnknownJobName
from .models import REMOVABLE_STATES, Job, JobState
from .options import JobOptions, parse_options

logger = logging.getLogger(__name__)

# Redis priority steps: 0 is consumed first. Bull's priority 1..9+ maps onto 0..8, and a job
# without a priority goes last, as in Bull, where prioritized jobs are taken before the rest.
UNPRIORITIZED_STEP = 9


def ensure_json(value: Any, what: str) -> None:
    """Raise InvalidJob unless `value` can be stored as JSON (no NaN, no Python-only types)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidJob(f"{what} must be JSON: {exc}.", field=what) from None


def ensure_json_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidJob(f"{what} must be a JSON object.", field=what)
    ensure_json(value, what)
    return value


def job_create(
    *,
    name: str | None = None,
    data: dict[str, Any] | None = None,
    opts: dict[str, Any] | JobOptions | None = None,
    queue: str | None = None,
    owner: str = "",
) -> Job:
    """Create a job row; its message is sent only once the surrounding transaction commits."""
    name = registry.DEFAULT_JOB_NAME if name is None else name
    function = registry.get(name) if isinstance(name, str) else None
    if function is None:
        known = registry.names()
        raise UnknownJobName(
            f"No job function is registered as {name!r}; known names: {', '.join(known) or 'none'}.",
            field="name",
            known_names=known,
        )
    data = ensure_json_object({} if data is None else data, "data")
    options = opts if isinstance(opts, JobOptions) else parse_options(opts)
    now = timezone.now()
    fields = dict(
        name=name,
        queue=queue or function.queue or conf.get("QUEUE"),
        owner=owner,
        data=data,
        opts=options.to_json(),
        state=JobState.DELAYED if options.delay else JobState.WAITING,
        priority=options.priority,
        delay=options.delay,
        attempts=options.attempts,
        created_at=now,
        run_at=now + timedelta(milliseconds=options.delay),
    )
    if options.job_id is not None:
        fields["id"] = options.job_id
    try:
        # A savepoint, so a duplicate id leaves the caller's transaction usable.
        with transaction.atomic():
            job = Job.objects.create(**fields)
    except IntegrityError:
        if options.job_id is not None and Job.objects.filter(pk=options.job_id).exists():
            raise JobExists(options.job_id) from None
        raise
    if job.state == JobState.WAITING:
        # The worker must find the row when the message arrives: send after commit, never before.
        transaction.on_commit(partial(job_send, job_id=job.pk))
    return job


def celery_priority(priority: int | None) -> int:
    return UNPRIORITIZED_STEP if priority is None else min(priority - 1, UNPRIORITIZED_STEP - 1)


def job_send(*, job_id: str) -> bool:
    """Put the message of a waiting job on the broker; return False if it was not sent.

    A broker failure is logged, not raised: the row stays waiting with no sent_at, and the
    sweep sends it again later.
    """
    try:
        return _send(job_id)
    except Exception:
        logger.warning("Could not send job %s to the broker; the sweep will retry", job_id, exc_info=True)
        return False


def _send(job_id: str) -> bool:
    from .tasks import run_job

    row = Job.objects.filter(pk=job_id, state=JobState.WAITING).values("queue", "priority").first()
    if row is None:
        return False
    run_job.apply_async(args=[job_id], queue=row["queue"], priority=celery_priority(row["priority"]))
    Job.objects.filter(pk=job_id, state=JobState.WAITING, sent_at__isnull=True).update(sent_at=timezone.now())
    return True


def job_claim(*, job_id: str, worker: str) -> bool:
    """Move a waiting job to active for `worker`; True only for the one caller that wins."""
    return (
        Job.objects.filter(pk=job_id, state=JobState.WAITING).update(
            state=JobState.ACTIVE, processed_on=timezone.now(), worker=worker[:200]
        )
        == 1
    )


def job_set_progress(*, job_id: str, progress: Any) -> bool:
    """Record the progress of an active job; touches nothing else."""
    ensure_json(progress, "progress")
    return Job.objects.filter(pk=job_id, state=JobState.ACTIVE).update(progress=progress) == 1


def job_complete(*, job_id: str, return_value: Any) -> bool:
    """Mark an active job completed with its result."""
    return (
        Job.objects.filter(pk=job_id, state=JobState.ACTIVE).update(
            state=JobState.COMPLETED, return_value=return_value, finished_on=timezone.now()
        )
        == 1
    )


def job_fail(*, job_id: str, reason: str, stacktrace: str, retry: bool = True) -> JobState | None:
    """Record a failed attempt: retry after the backoff if attempts are left, else fail the job.

    With retry=False the job fails now, whatever attempts are left (a retry cannot help).

    Returns the job's new state, or None if the job was no longer active.
    """
    job = Job.objects.filter(pk=job_id, state=JobState.ACTIVE).first()
    if job is None:
        return None
    now = timezone.now()
    attempts_made = job.attempts_made + 1
    fields: dict[str, Any] = {
        "attempts_made": attempts_made,
        "failed_reason": reason,
        "stacktrace": ([*job.stacktrace, stacktrace])[-conf.get("STACKTRACE_LIMIT"):],
    }
    if retry and attempts_made < job.attempts:
        wait = parse_options(job.opts).backoff
        wait_ms = wait.delay_after(attempts_made) if wait else 0
        fields.update(
            state=JobState.DELAYED if wait_ms else JobState.WAITING,
            run_at=now + timedelta(milliseconds=wait_ms),
            sent_at=None,
        )
    else:
        fields.update(state=JobState.FAILED, finished_on=now)
    if Job.objects.filter(pk=job_id, state=JobState.ACTIVE).update(**fields) != 1:
        return None
    if fields["state"] == JobState.WAITING:
        transaction.on_commit(partial(job_send, job_id=job_id))
    return fields["state"]


def job_update_data(*, job_id: str, data: Any, merge: bool, owner: str | None = None) -> Job:
    """Replace the job's data, or merge `data`'s top-level keys into it; other columns are untouched."""
    data = ensure_json_object(data, "data")
    # The row lock (PostgreSQL) or the IMMEDIATE transaction (SQLite) serializes concurrent
    # merges, so no key sent by a parallel request is lost.
    with transaction.atomic():
        job = Job.objects.select_for_update().owned_by(owner).filter(pk=job_id).first()
        if job is None:
            raise JobNotFound(job_id)
        job.data = {**job.data, **data} if merge else data
        job.save(update_fields=["data"])
    return job


def job_remove(*, job_id: str, owner: str | None = None) -> None:
    """Delete a job that has not started; raise JobStarted if it has, JobNotFound if there is none."""
    queryset = Job.objects.owned_by(owner).filter(pk=job_id)
    # One DELETE guarded by state: it and the claim's UPDATE cannot both win.
    deleted, _ = queryset.filter(state__in=REMOVABLE_STATES).delete()
    if deleted:
        return
    state = queryset.values_list("state", flat=True).first()
    if state is None:
        raise JobNotFound(job_id)
    raise JobStarted(job_id, state)


@dataclass(frozen=True)
class SweepReport:
    promoted: int
    sent: int


def jobs_sweep(*, now: datetime | None = None) -> SweepReport:
    """Promote due delayed jobs and send every waiting job whose message has not left."""
    now = now or timezone.now()
    batch = conf.get("SWEEP_BATCH")
    promoted = []
    for job_id in list(Job.objects.due(now).order_by("run_at").values_list("pk", flat=True)[:batch]):
        # Several workers sweep at once; the guarded update lets exactly one promote each job.
        if Job.objects.filter(pk=job_id, state=JobState.DELAYED).update(
            state=JobState.WAITING, run_at=now, sent_at=None
        ):
            promoted.append(job_id)
    before = now - timedelta(seconds=conf.get("SEND_GRACE"))
    unsent = list(Job.objects.unsent(before).order_by("run_at").values_list("pk", flat=True)[:batch])
    sent = 0
    for job_id in dict.fromkeys([*promoted, *unsent]):
        try:
            sent += _send(job_id)
        except Exception:
            # The broker is down: the rest would fail the same way; the next sweep tries again.
            logger.warning("Broker unavailable; %d job messages wait for the next sweep", len(promoted) + len(unsent) - sent, exc_info=True)
            break
    return SweepReport(promoted=len(promoted), sent=sent)
