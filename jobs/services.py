"""Writes to jobs: every state change is one guarded write whose row count says who won."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import conf, messages, registry, retention, statements
from .errors import (
    InvalidJob,
    JobExists,
    JobIsInternal,
    JobNotDelayed,
    JobNotFailed,
    JobNotFound,
    JobStarted,
    UnknownJobName,
)
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

    The job goes to the queue its job function names; `queue` (a Queue's name) only when the
    function names none; else JOBS["QUEUE"]. `owner` is the account the job belongs to ("" for the
    system); a custom jobId is unique within it. With public_only (a tenant's request) a job
    function not declared public is refused exactly as a name that does not exist.
    """
    fields = _new_job(name=name, data=data, opts=opts, queue=queue, owner=owner, public_only=public_only)
    job = Job(**fields)
    if not statements.insert_new(job):
        # The row's own id is new (uuid4): what was taken is the owner's jobId.
        raise JobExists(fields["public_id"])
    if job.state == JobState.WAITING:
        # The worker must find the row when the message arrives: send after commit, never before.
        transaction.on_commit(partial(_send_created, [_outgoing(fields)]))
    return job


def jobs_create_bulk(
    *, jobs: Sequence[Mapping[str, Any]], queue: str | None = None, owner: str = "", public_only: bool = False
) -> list[Job]:
    """Create many jobs (each a mapping of name, data and opts) in one transaction, all or none (Bull's addBulk).

    Each is checked as job_create checks one, and an error names its index in `jobs`. Their
    messages go to the broker after commit in pipelined round trips.
    """
    rows, custom = [], {}
    for index, spec in enumerate(jobs):
        try:
            fields = _new_job(
                name=spec.get("name"), data=spec.get("data"), opts=spec.get("opts"),
                queue=queue, owner=owner, public_only=public_only,
            )
        except InvalidJob as exc:
            raise exc.at(index) from None
        if fields["public_id"] != fields["id"]:
            if fields["public_id"] in custom:
                raise InvalidJob(
                    f"jobs[{index}]: opts.jobId {fields['public_id']!r} is also the id of jobs[{custom[fields['public_id']]}].",
                    field=f"jobs[{index}].opts.jobId", index=index,
                )
            custom[fields["public_id"]] = index
        rows.append(fields)
    try:
        created = [Job(**fields) for fields in rows]
        with transaction.atomic():
            statements.insert(created)
    except IntegrityError:
        taken = Job.objects.filter(owner=owner, public_id__in=list(custom)).values_list("public_id", flat=True).first()
        if taken is not None:
            raise JobExists(taken, index=custom[taken]) from None
        raise
    waiting = [_outgoing(fields) for fields in rows if fields["state"] == JobState.WAITING]
    if waiting:
        transaction.on_commit(partial(_send_created, waiting))
    return created


def _new_job(
    *, name: Any, data: Any, opts: Any, queue: str | None, owner: str, public_only: bool
) -> dict[str, Any]:
    """The checked fields of a new job row."""
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
    return dict(
        id=pk,
        public_id=pk if options.job_id is None else options.job_id,
        name=name,
        queue=function.queue or queue or conf.get("QUEUE"),
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


def _send_created(outgoing: list[messages.Outgoing]) -> None:
    """Send the messages of jobs just committed, from the rows in hand: no read-back.

    On a broker that tracks messages (Redis) nothing more is written: each job's message key says
    it left, and a sweep that finds the job still waiting SEND_GRACE later reads the key before it
    sends anything. Elsewhere sent_at records the send, as for every other send.
    """
    broker = messages.broker()
    try:
        broker.publish_many(outgoing)
    except Exception:
        ids = ", ".join(message.job_id for message in outgoing[:3]) + (" …" if len(outgoing) > 3 else "")
        logger.warning("Could not send jobs %s to the broker; the sweep will retry", ids, exc_info=True)
        return
    if not broker.tracks_messages:
        ids = [message.job_id for message in outgoing]
        Job.objects.filter(pk__in=ids, state=JobState.WAITING).update(sent_at=timezone.now())


def _announce(job_id: str) -> None:
    """Tell the job's live event streams that it changed, once the write commits; a broker error is only logged."""
    transaction.on_commit(partial(_tell_watchers, job_id))


def _tell_watchers(job_id: str) -> None:
    try:
        messages.notes.send(messages.Note.announce(job_id))
    except Exception:
        logger.debug("Could not announce a change of job %s to its watchers", job_id, exc_info=True)


def celery_priority(priority: int | None) -> int:
    return UNPRIORITIZED_STEP if priority is None else min(priority - 1, UNPRIORITIZED_STEP - 1)


# -- messages -----------------------------------------------------------------------------------


def job_send(*, job_id: str) -> bool:
    """Put the message of a waiting job on the broker; return False if it was not sent.

    A broker failure is logged, not raised: the row stays waiting with no sent_at, and the
    sweep sends it again later.
    """
    try:
        return jobs_send(job_ids=[job_id]) == 1
    except Exception:
        logger.warning("Could not send job %s to the broker; the sweep will retry", job_id, exc_info=True)
        return False


def jobs_send(*, job_ids: list[str], broker: messages.Broker | None = None) -> int:
    """Send a message for each of these jobs that is waiting; return how many were sent.

    They go PUBLISH_BATCH per round trip (on Redis, a script per message); a broker error is raised once
    the batches sent before it are recorded.
    """
    broker = broker or messages.broker()
    rows = Job.objects.filter(pk__in=job_ids, state=JobState.WAITING).order_by().values("pk", "queue", "priority", "opts")
    by_id = {row["pk"]: row for row in rows}
    waiting = [job_id for job_id in dict.fromkeys(job_ids) if job_id in by_id]
    sent: list[str] = []
    try:
        for start in range(0, len(waiting), messages.PUBLISH_BATCH):
            batch = waiting[start:start + messages.PUBLISH_BATCH]
            broker.publish_many([_outgoing(by_id[job_id]) for job_id in batch])
            sent += batch
    finally:
        if sent:
            Job.objects.filter(pk__in=sent, state=JobState.WAITING).update(sent_at=timezone.now())
    return len(sent)


def _outgoing(row: dict[str, Any]) -> messages.Outgoing:
    """The message of the job `row` (its "pk" or "id", "queue", "priority" and "opts")."""
    timeout_ms = row["opts"].get("timeout")
    # The soft limit raises inside the job function, which fails the attempt with a clear
    # reason; the hard limit kills the process if the function swallows that exception.
    return messages.Outgoing(
        job_id=row["pk"] if "pk" in row else row["id"],
        queue=row["queue"],
        priority=celery_priority(row["priority"]),
        soft_time_limit=timeout_ms / 1000 if timeout_ms else None,
        time_limit=timeout_ms / 1000 + conf.get("TIMEOUT_GRACE") if timeout_ms else None,
    )


def jobs_note_sent(*, job_ids: set[str] | list[str], now: datetime) -> int:
    """Record that these waiting jobs' messages left (their keys say so), so the sweep sends none of them."""
    return Job.objects.filter(pk__in=list(job_ids), state=JobState.WAITING, sent_at__isnull=True).update(sent_at=now)


def jobs_note_queued(*, job_ids: set[str] | list[str], before: datetime, now: datetime) -> int:
    """Record that these waiting jobs' messages were found still on the broker, so none is sent twice."""
    return Job.objects.filter(pk__in=list(job_ids), state=JobState.WAITING, sent_at__lt=before).update(sent_at=now)


# -- transitions: each is one guarded UPDATE, and those of a running job are fenced by its lock -------


def job_claim(*, job_id: str, worker: str) -> Job | None:
    """waiting → active for `worker`; return the claimed job, its lock_token the holder's, to the one caller that wins."""
    token = uuid.uuid4().hex
    now = timezone.now()
    fields = {
        "state": JobState.ACTIVE,
        "processed_on": now,
        "worker": worker[:200],
        "lock_token": token,
        "lock_until": now + timedelta(seconds=conf.get("LOCK_DURATION")),
    }
    if statements.returns_rows():
        # One statement claims and loads the row: UPDATE … WHERE state = 'waiting' RETURNING ….
        claimed = statements.update_returning(fields, where={"pk": job_id, "state": JobState.WAITING})
        job = claimed[0] if claimed else None
    else:
        won = statements.update(fields, where={"pk": job_id, "state": JobState.WAITING})
        job = Job.objects.get(pk=job_id) if won else None
    if job is not None:
        _announce(job_id)
    return job


def _held(job_id: str, token: str) -> JobQuerySet:
    """The job, if it is active and still locked by the holder of `token`."""
    return Job.objects.filter(pk=job_id, state=JobState.ACTIVE, lock_token=token)


def _update_held(job_id: str, token: str, fields: dict[str, Any]) -> bool:
    """Write `fields` to the job if it is active and still locked by the holder of `token`; say if it was."""
    return statements.update(fields, where={"pk": job_id, "state": JobState.ACTIVE, "lock_token": token}) == 1


def job_complete(*, job_id: str, token: str, return_value: Any, opts: dict[str, Any] | None = None) -> bool:
    """active → completed, with its result; `opts` (the job's, read here if not given) say how long it is kept."""
    if opts is None:
        opts = Job.objects.filter(pk=job_id).values_list("opts", flat=True).first() or {}
    now = timezone.now()
    kept = retention.finished_fields(opts=opts, state=JobState.COMPLETED, finished_on=now)
    completed = _update_held(
        job_id, token, {"state": JobState.COMPLETED, "return_value": return_value, "finished_on": now, **kept, **UNLOCKED}
    )
    if completed:
        _announce(job_id)
    return completed


def job_fail(
    *, job_id: str, token: str, reason: str, stacktrace: str, retry: bool = True, retry_delay: int | None = None
) -> JobState | None:
    """Record a failed attempt: active → failed, or job_reschedule if attempts are left.

    With retry=False the job fails now, whatever attempts are left (a retry cannot help).
    `retry_delay` (ms) replaces the backoff for this retry (a tracked task's self.retry(countdown=…)).
    Returns the job's new state, or None if the job was no longer active or no longer ours.
    """
    job = _held(job_id, token).order_by().first()
    if job is None:
        return None
    if retry and job.attempts_made + 1 < job.attempts:
        return job_reschedule(job=job, token=token, reason=reason, stacktrace=stacktrace, retry_delay=retry_delay)
    now = timezone.now()
    fields = {
        **_failed_attempt(job, reason, stacktrace), "state": JobState.FAILED, "finished_on": now,
        **retention.finished_fields(opts=job.opts, state=JobState.FAILED, finished_on=now),
    }
    if not _update_held(job_id, token, fields):
        return None
    _announce(job_id)
    return JobState.FAILED


def job_reschedule(
    *, job: Job, token: str, reason: str, stacktrace: str, retry_delay: int | None = None
) -> JobState | None:
    """Record a failed attempt of the running `job` and schedule the next: active → delayed (backoff) or waiting."""
    now = timezone.now()
    wait = parse_options(job.opts).backoff
    wait_ms = wait.delay_after(job.attempts_made + 1) if wait else 0
    # A delay the job function chose for this retry (a tracked task's self.retry) wins.
    wait_ms = wait_ms if retry_delay is None else retry_delay
    state = JobState.DELAYED if wait_ms else JobState.WAITING
    fields = {
        **_failed_attempt(job, reason, stacktrace),
        "state": state,
        "run_at": now + timedelta(milliseconds=wait_ms),
        "sent_at": None,
    }
    if not _update_held(job.pk, token, fields):
        return None
    _announce(job.pk)
    if state == JobState.WAITING:
        transaction.on_commit(partial(job_send, job_id=job.pk))
    return state


def _failed_attempt(job: Job, reason: str, stacktrace: str) -> dict[str, Any]:
    return {
        "attempts_made": job.attempts_made + 1,
        # An exception's message is the job function's text: it must not stop the job failing.
        "failed_reason": clean_text(reason),
        "stacktrace": ([*job.stacktrace, clean_text(stacktrace)])[-conf.get("STACKTRACE_LIMIT"):],
        **UNLOCKED,
    }


def job_release(*, job_id: str, token: str) -> bool:
    """active → waiting, as if it had not started (its worker is stopping).

    No message is sent: the one the worker took was not acknowledged, so the broker hands it
    back (at once when the worker closes its connection, else after its visibility timeout).
    """
    now = timezone.now()
    released = _update_held(job_id, token, {"state": JobState.WAITING, "run_at": now, "sent_at": now, **UNLOCKED})
    if released:
        _announce(job_id)
    return released


def jobs_promote_due(*, now: datetime, limit: int) -> list[str]:
    """delayed → waiting for the jobs whose time has come; return the ids this caller promoted."""
    promoted = []
    for job_id in list(Job.objects.due(now).values_list("pk", flat=True)[:limit]):
        # Several workers sweep at once; the guarded update lets exactly one promote each job.
        if Job.objects.filter(pk=job_id, state=JobState.DELAYED).update(state=JobState.WAITING, run_at=now, sent_at=None):
            promoted.append(job_id)
            _announce(job_id)
    return promoted


def jobs_recover_stalled(*, now: datetime, limit: int) -> tuple[list[str], int]:
    """active → waiting (or failed after MAX_STALLED_COUNT) for jobs whose worker stopped renewing the lock.

    Returns the ids put back to waiting, and how many failed. The lost worker's message may come
    back from the broker too; the claim runs the job once whichever message arrives first.
    """
    recovered, failed = [], 0
    for job in list(Job.objects.stalled(now).values("pk", "lock_token", "stalled_count", "opts")[:limit]):
        stalled_count = job["stalled_count"] + 1
        if stalled_count > conf.get("MAX_STALLED_COUNT"):
            fields = {
                "state": JobState.FAILED, "failed_reason": STALLED_REASON, "finished_on": now,
                **retention.finished_fields(opts=job["opts"], state=JobState.FAILED, finished_on=now),
            }
        else:
            fields = {"state": JobState.WAITING, "run_at": now, "sent_at": None}
        if not _update_held(job["pk"], job["lock_token"], {"stalled_count": stalled_count, **fields, **UNLOCKED}):
            continue
        logger.warning("Job %s stalled (lock expired, %d times): now %s", job["pk"], stalled_count, fields["state"])
        _announce(job["pk"])
        if fields["state"] == JobState.WAITING:
            recovered.append(job["pk"])
        else:
            failed += 1
    return recovered, failed


# -- writes of a running job and of its data ------------------------------------------------------


def job_extend_lock(*, job_id: str, token: str) -> bool:
    """Renew the lock of a running job; False means the job is no longer ours."""
    until = timezone.now() + timedelta(seconds=conf.get("LOCK_DURATION"))
    return _update_held(job_id, token, {"lock_until": until})


def job_set_progress(*, job_id: str, progress: Any, token: str | None = None) -> bool:
    """Record the progress of an active job (only its lock holder's, given a token); touches nothing else."""
    ensure_json(progress, "progress")
    where = {"pk": job_id, "state": JobState.ACTIVE, **({} if token is None else {"lock_token": token})}
    recorded = statements.update({"progress": progress}, where=where) == 1
    if recorded:
        _announce(job_id)
    return recorded


def job_set_data(*, job_id: str, token: str, data: Any) -> bool:
    """Replace the data of a running job from inside it; False if the job is no longer ours."""
    return _update_held(job_id, token, {"data": ensure_json_object(data, "data")})


def _changeable(*, owner: str, job_id: str, public_only: bool) -> str:
    """Return the internal id of `owner`'s job `job_id`; raise JobNotFound, or JobIsInternal when
    public_only (a tenant's request) and the job runs an internal job function.

    A job's name never changes, so checking it before a guarded write leaves no race.
    """
    row = Job.objects.known_as(owner, job_id).values_list("pk", "name").first()
    if row is None:
        raise JobNotFound(job_id)
    if public_only and registry.get(row[1], public_only=True) is None:
        raise JobIsInternal(job_id, row[1])
    return row[0]


def _state_of(pk: str, job_id: str) -> str:
    state = Job.objects.filter(pk=pk).values_list("state", flat=True).first()
    if state is None:
        raise JobNotFound(job_id)
    return state


def job_update_data(*, owner: str, job_id: str, data: Any, merge: bool, public_only: bool = False) -> Job:
    """Replace the data of `owner`'s job `job_id`, or merge `data`'s top-level keys into it; other columns are untouched."""
    data = ensure_json_object(data, "data")
    pk = _changeable(owner=owner, job_id=job_id, public_only=public_only)
    # The row lock (PostgreSQL) or the IMMEDIATE transaction (SQLite) serializes concurrent
    # merges, so no key sent by a parallel request is lost.
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=pk).first()
        if job is None:
            raise JobNotFound(job_id)
        job.data = {**job.data, **data} if merge else data
        job.save(update_fields=["data"])
    return job


def job_remove(*, owner: str, job_id: str, public_only: bool = False) -> None:
    """Delete `owner`'s job `job_id` if it has not started; raise JobStarted if it has, JobNotFound if there is none."""
    pk = _changeable(owner=owner, job_id=job_id, public_only=public_only)
    # One DELETE guarded by state: it and the claim's UPDATE cannot both win. QuerySet.delete()
    # would do this only on its fast path; any pre_delete or post_delete receiver (an audit app
    # connects one for every model) turns it into a SELECT then a DELETE by id, without the guard.
    # So no delete signals are sent for jobs, as none are sent for QuerySet.update().
    removable = Job.objects.filter(pk=pk, state__in=REMOVABLE_STATES)
    if not removable._raw_delete(removable.db):
        raise JobStarted(job_id, _state_of(pk, job_id))
    _announce(pk)


def job_retry(*, owner: str, job_id: str, public_only: bool = False) -> Job:
    """Run `owner`'s failed job again from the start (Bull's job.retry): waiting, attempts and outcome cleared."""
    pk = _changeable(owner=owner, job_id=job_id, public_only=public_only)
    now = timezone.now()
    retried = Job.objects.filter(pk=pk, state=JobState.FAILED).update(
        state=JobState.WAITING, attempts_made=0, stalled_count=0, progress=0, return_value=None,
        failed_reason=None, processed_on=None, finished_on=None, run_at=now, sent_at=None, **retention.NOT_FINISHED,
    )
    if not retried:
        raise JobNotFailed(job_id, _state_of(pk, job_id))
    return _sent_after_commit(pk)


def job_promote(*, owner: str, job_id: str, public_only: bool = False) -> Job:
    """Let `owner`'s delayed job run now (Bull's job.promote)."""
    pk = _changeable(owner=owner, job_id=job_id, public_only=public_only)
    promoted = Job.objects.filter(pk=pk, state=JobState.DELAYED).update(
        state=JobState.WAITING, run_at=timezone.now(), sent_at=None
    )
    if not promoted:
        raise JobNotDelayed(job_id, _state_of(pk, job_id))
    return _sent_after_commit(pk)


def _sent_after_commit(pk: str) -> Job:
    """Read the job just put back to waiting, then send its message once the transaction commits."""
    # Read first: outside a transaction on_commit sends at once, and a worker may claim it before a later read.
    job = Job.objects.get(pk=pk)
    transaction.on_commit(partial(job_send, job_id=pk))
    _announce(pk)
    return job
