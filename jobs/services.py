"""Writes to jobs: every state change is one guarded write whose row count says who won."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import conf, registry
from .errors import InvalidJob, JobExists, JobNotFound, JobStarted, UnknownJobName
from .jsonvalues import RULE, clean_text, unstorable_text
from .models import REMOVABLE_STATES, Job, JobQuerySet, JobState, new_job_id
from .options import JobOptions, parse_options

logger = logging.getLogger(__name__)

# Redis priority steps: 0 is consumed first. Bull's priority 1..9+ maps onto 0..8, and a job
# without a priority goes last, as in Bull, where prioritized jobs are taken before the rest.
UNPRIORITIZED_STEP = 9
# What a job that leaves active stops holding.
UNLOCKED = {"lock_token": "", "lock_until": None}
STALLED_REASON = "job stalled more than allowable limit"


def ensure_json(value: Any, what: str) -> None:
    """Raise InvalidJob unless `value` can be stored as JSON (no NaN, no Python-only types, no NUL)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidJob(f"{what} must be JSON: {exc}.", field=what) from None
    problem = unstorable_text(value, what)
    if problem is not None:
        raise InvalidJob(f"{what} holds {problem}: {RULE}.", field=what)


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
    public_only: bool = False,
) -> Job:
    """Create a job row; its message is sent only once the surrounding transaction commits.

    `owner` is the account the job belongs to ("" for the system); a custom jobId is unique within
    it. With public_only (a tenant's request) a job function not declared public is refused
    exactly as a name that does not exist.
    """
    name = registry.DEFAULT_JOB_NAME if name is None else name
    function = registry.get(name, public_only=public_only) if isinstance(name, str) else None
    if function is None:
        known = registry.names(public_only=public_only)
        raise UnknownJobName(
            f"No job function is registered as {name!r}; known names: {', '.join(known) or 'none'}.",
            field="name",
            known_names=known,
        )
    data = ensure_json_object({} if data is None else data, "data")
    options = opts if isinstance(opts, JobOptions) else parse_options(opts)
    now = timezone.now()
    pk = new_job_id()
    fields = dict(
        id=pk,
        public_id=pk if options.job_id is None else options.job_id,
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
    try:
        # A savepoint, so a duplicate id leaves the caller's transaction usable.
        with transaction.atomic():
            job = Job.objects.create(**fields)
    except IntegrityError:
        if options.job_id is not None and Job.objects.known_as(owner, options.job_id).exists():
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

    row = Job.objects.filter(pk=job_id, state=JobState.WAITING).values("queue", "priority", "opts").first()
    if row is None:
        return False
    limits = {}
    timeout_ms = row["opts"].get("timeout")
    if timeout_ms:
        # The soft limit raises inside the job function, which fails the attempt with a clear
        # reason; the hard limit kills the process if the function swallows that exception.
        limits = {"soft_time_limit": timeout_ms / 1000, "time_limit": timeout_ms / 1000 + conf.get("TIMEOUT_GRACE")}
    run_job.apply_async(args=[job_id], queue=row["queue"], priority=celery_priority(row["priority"]), **limits)
    Job.objects.filter(pk=job_id, state=JobState.WAITING).update(sent_at=timezone.now())
    return True


def job_claim(*, job_id: str, worker: str) -> str | None:
    """Move a waiting job to active for `worker`; return the lock token to the one caller that wins."""
    token = uuid.uuid4().hex
    now = timezone.now()
    won = Job.objects.filter(pk=job_id, state=JobState.WAITING).update(
        state=JobState.ACTIVE,
        processed_on=now,
        worker=worker[:200],
        lock_token=token,
        lock_until=now + timedelta(seconds=conf.get("LOCK_DURATION")),
    )
    return token if won else None


def _holding(job_id: str, token: str | None) -> JobQuerySet:
    """The job, if it is active and (given a token) still locked by that token's holder."""
    queryset = Job.objects.filter(pk=job_id, state=JobState.ACTIVE)
    return queryset if token is None else queryset.filter(lock_token=token)


def job_extend_lock(*, job_id: str, token: str) -> bool:
    """Renew the lock of a running job; False means the job is no longer ours."""
    until = timezone.now() + timedelta(seconds=conf.get("LOCK_DURATION"))
    return _holding(job_id, token).update(lock_until=until) == 1


def job_set_progress(*, job_id: str, progress: Any, token: str | None = None) -> bool:
    """Record the progress of an active job; touches nothing else."""
    ensure_json(progress, "progress")
    return _holding(job_id, token).update(progress=progress) == 1


def job_complete(*, job_id: str, return_value: Any, token: str | None = None) -> bool:
    """Mark an active job completed with its result."""
    return (
        _holding(job_id, token).update(
            state=JobState.COMPLETED, return_value=return_value, finished_on=timezone.now(), **UNLOCKED
        )
        == 1
    )


def job_fail(
    *,
    job_id: str,
    reason: str,
    stacktrace: str,
    retry: bool = True,
    retry_delay: int | None = None,
    token: str | None = None,
) -> JobState | None:
    """Record a failed attempt: retry after the backoff if attempts are left, else fail the job.

    With retry=False the job fails now, whatever attempts are left (a retry cannot help).
    `retry_delay` (ms) replaces the backoff for this retry (a tracked task's self.retry(countdown=…)).
    Returns the job's new state, or None if the job was no longer active (or no longer ours).
    """
    job = _holding(job_id, token).first()
    if job is None:
        return None
    now = timezone.now()
    attempts_made = job.attempts_made + 1
    fields: dict[str, Any] = {
        "attempts_made": attempts_made,
        # An exception's message is the job function's text: it must not stop the job failing.
        "failed_reason": clean_text(reason),
        "stacktrace": ([*job.stacktrace, clean_text(stacktrace)])[-conf.get("STACKTRACE_LIMIT"):],
        **UNLOCKED,
    }
    if retry and attempts_made < job.attempts:
        wait = parse_options(job.opts).backoff
        wait_ms = wait.delay_after(attempts_made) if wait else 0
        # A delay the job function chose for this retry (a tracked task's self.retry) wins.
        wait_ms = wait_ms if retry_delay is None else retry_delay
        fields.update(
            state=JobState.DELAYED if wait_ms else JobState.WAITING,
            run_at=now + timedelta(milliseconds=wait_ms),
            sent_at=None,
        )
    else:
        fields.update(state=JobState.FAILED, finished_on=now)
    if _holding(job_id, job.lock_token).update(**fields) != 1:
        return None
    if fields["state"] == JobState.WAITING:
        transaction.on_commit(partial(job_send, job_id=job_id))
    return fields["state"]


def job_release(*, job_id: str, token: str | None = None) -> bool:
    """Put an active job back to waiting, as if it had not started (a worker shutting down)."""
    released = _holding(job_id, token).update(
        state=JobState.WAITING, run_at=timezone.now(), sent_at=None, **UNLOCKED
    )
    if released:
        job_send(job_id=job_id)
    return released == 1


def job_update_data(*, owner: str, job_id: str, data: Any, merge: bool) -> Job:
    """Replace the data of `owner`'s job `job_id`, or merge `data`'s top-level keys into it; other columns are untouched."""
    data = ensure_json_object(data, "data")
    # The row lock (PostgreSQL) or the IMMEDIATE transaction (SQLite) serializes concurrent
    # merges, so no key sent by a parallel request is lost.
    with transaction.atomic():
        job = Job.objects.select_for_update().known_as(owner, job_id).first()
        if job is None:
            raise JobNotFound(job_id)
        job.data = {**job.data, **data} if merge else data
        job.save(update_fields=["data"])
    return job


def job_remove(*, owner: str, job_id: str) -> None:
    """Delete `owner`'s job `job_id` if it has not started; raise JobStarted if it has, JobNotFound if there is none."""
    queryset = Job.objects.known_as(owner, job_id)
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
    promoted: int = 0
    recovered: int = 0
    stalled_out: int = 0
    sent: int = 0


def jobs_sweep(*, now: datetime | None = None, broker_lost_messages: bool = False) -> SweepReport:
    """Promote due delayed jobs, recover stalled ones, and send every waiting job whose message is missing.

    A message is missing when it never left, when it left longer than RESEND_AFTER ago and the
    job still waits, or when the broker lost its data (`broker_lost_messages`).
    """
    now = now or timezone.now()
    batch = conf.get("SWEEP_BATCH")
    if broker_lost_messages:
        Job.objects.waiting().update(sent_at=None)
    to_send = []
    for job_id in list(Job.objects.due(now).order_by("run_at").values_list("pk", flat=True)[:batch]):
        # Several workers sweep at once; the guarded update lets exactly one promote each job.
        if Job.objects.filter(pk=job_id, state=JobState.DELAYED).update(
            state=JobState.WAITING, run_at=now, sent_at=None
        ):
            to_send.append(job_id)
    promoted = len(to_send)
    recovered = stalled_out = 0
    for job in list(Job.objects.stalled(now).values("pk", "lock_token", "stalled_count")[:batch]):
        outcome = _recover_stalled(job["pk"], job["lock_token"], job["stalled_count"] + 1, now)
        if outcome == JobState.WAITING:
            recovered += 1
            to_send.append(job["pk"])
        elif outcome == JobState.FAILED:
            stalled_out += 1
    before = now - timedelta(seconds=conf.get("SEND_GRACE"))
    to_send += Job.objects.unsent(before).order_by("run_at").values_list("pk", flat=True)[:batch]
    resend_before = now - timedelta(seconds=conf.get("RESEND_AFTER"))
    to_send += Job.objects.sent_before(resend_before).order_by("sent_at").values_list("pk", flat=True)[:batch]
    sent = 0
    for job_id in dict.fromkeys(to_send):
        try:
            sent += _send(job_id)
        except Exception:
            # The broker is down: the rest would fail the same way; the next sweep tries again.
            logger.warning("Broker unavailable; job messages wait for the next sweep", exc_info=True)
            break
    return SweepReport(promoted=promoted, recovered=recovered, stalled_out=stalled_out, sent=sent)


def _recover_stalled(job_id: str, token: str, stalled_count: int, now: datetime) -> JobState | None:
    """Its worker stopped renewing the lock (killed, frozen, cut off): run the job again, or fail it."""
    if stalled_count > conf.get("MAX_STALLED_COUNT"):
        fields = {"state": JobState.FAILED, "failed_reason": STALLED_REASON, "finished_on": now}
    else:
        fields = {"state": JobState.WAITING, "run_at": now, "sent_at": None}
    changed = _holding(job_id, token).update(stalled_count=stalled_count, **fields, **UNLOCKED)
    if changed:
        logger.warning("Job %s stalled (lock expired, %d times): now %s", job_id, stalled_count, fields["state"])
    return fields["state"] if changed else None
