"""Reads of jobs, and the job JSON that clients see."""

from __future__ import annotations

import functools
import heapq
import itertools
import operator
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import TruncMinute

from . import counts
from .errors import JobNotFound
from .models import Job, JobState


def job_get(*, owner: str, job_id: str) -> Job:
    """Return the job `owner` knows as `job_id` ("" is the system), or raise JobNotFound: other owners' jobs do not exist."""
    job = Job.objects.known_as(owner, job_id).first()
    if job is None:
        raise JobNotFound(job_id)
    return job


def jobs_list(
    *,
    owner: str | None,
    states: list[str] | None = None,
    name: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Job] | AcrossStates:
    """`owner`'s jobs (None: every owner's, for operators' tools), created from `created_after` and before `created_before`; the caller orders them.

    Several states give an AcrossStates: one query per state, merged in the caller's order.
    """
    jobs = Job.objects.all() if owner is None else Job.objects.filter(owner=owner)
    if name:
        jobs = jobs.filter(name=name)
    if created_after is not None:
        jobs = jobs.filter(created_at__gte=created_after)
    if created_before is not None:
        jobs = jobs.filter(created_at__lt=created_before)
    states = list(dict.fromkeys(states or []))
    if set(states) >= set(JobState.values):
        states = []  # every state: no condition at all
    if len(states) > 1:
        return AcrossStates([jobs.filter(state=state) for state in states])
    return jobs.filter(state=states[0]) if states else jobs


class AcrossStates:
    """Jobs in any of several states, in one order: each state read by a query of its own, then merged.

    One query for several states (state IN …) cannot walk one part of the (owner, state,
    created_at) index in created_at order: the database either sorts every job of the owner in
    those states, or walks all the owner's jobs newest first past those in other states (SQLite, for
    the benchmark's ?state=active,delayed with none in either: all 1,000,000 jobs, 248 ms). A query
    per state walks its own part of the index and stops at the page's end: a page per state.
    It offers what a cursor paginator and a slice use of a queryset: order_by() with every field in
    one direction, filter(), and a slice from the start (a list of Jobs).
    """

    def __init__(self, parts: list[QuerySet[Job]]) -> None:
        self.parts = parts

    def order_by(self, *fields: str) -> AcrossStates:
        if not fields or len({field.startswith("-") for field in fields}) != 1:
            raise ValueError(f"Jobs across states are merged by fields in one direction, not {fields!r}")
        return AcrossStates([part.order_by(*fields) for part in self.parts])

    def filter(self, *args: Any, **kwargs: Any) -> AcrossStates:
        return AcrossStates([part.filter(*args, **kwargs) for part in self.parts])

    def __getitem__(self, window: slice) -> list[Job]:
        fields = self.parts[0].query.order_by
        if not isinstance(window, slice) or window.stop is None or window.step is not None or not fields:
            raise TypeError("Jobs across states are read as a slice with an end, once ordered: jobs.order_by(…)[a:b]")
        # Merged by their keys alone (the order's fields, then the pk): a cursor's offset makes each
        # state read offset + page keys, which cost little; then the page's rows in one query, with
        # every condition again (a job that changed state meanwhile is left out, as one query would).
        keys = heapq.merge(
            *(part.values_list(*(field.lstrip("-") for field in fields), "pk")[:window.stop] for part in self.parts),
            reverse=fields[0].startswith("-"),
        )
        page = [key[-1] for key in itertools.islice(keys, window.start or 0, window.stop)]
        if not page:
            return []
        rows = functools.reduce(operator.or_, self.parts).filter(pk__in=page).in_bulk()
        return [rows[pk] for pk in page if pk in rows]


COUNT_GROUPS = ("queue", "name")


def job_counts(*, owner: str | None, by: str | None = None) -> dict[str, Any]:
    """How many of `owner`'s jobs (None: everyone's) are in each state: {"waiting": n, …}, or per queue or name when `by` says so.

    Read from the counts kept as jobs change (jobs/counts.py), not by counting rows.
    """
    empty = dict.fromkeys(JobState.values, 0)
    # A state outside JobState (a row written by hand) is not one the API speaks: left out.
    known = [count for count in counts.counts(owner=owner) if count.state in empty]
    if not by:
        totals = dict(empty)
        for count in known:
            totals[count.state] += count.n
        return totals
    grouped: dict[str, dict[str, int]] = {}
    for count in known:
        grouped.setdefault(getattr(count, by), dict(empty))[count.state] += count.n
    return dict(sorted(grouped.items()))


def to_ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def job_to_json(job: Job) -> dict[str, Any]:
    """Return Bull's job.toJSON() shape plus `state`."""
    return {
        "id": job.public_id,
        "name": job.name,
        "data": job.data,
        "opts": job.opts,
        "progress": job.progress,
        "delay": job.delay,
        "timestamp": to_ms(job.created_at),
        "attemptsMade": job.attempts_made,
        "stalledCounter": job.stalled_count,
        "failedReason": job.failed_reason,
        "stacktrace": job.stacktrace,
        "returnvalue": job.return_value,
        "finishedOn": to_ms(job.finished_on),
        "processedOn": to_ms(job.processed_on),
        "state": job.state,
    }


def job_find(*, ref: str, owner: str | None = None) -> Job:
    """For operators: the job whose internal id is `ref`, else the one known as `ref` (by `owner` if given).

    Raises JobNotFound, or LookupError when several owners use that id and no owner was given.
    """
    if owner is not None:
        return job_get(owner=owner, job_id=ref)
    job = Job.objects.filter(pk=ref).first()
    if job is not None:
        return job
    found = list(Job.objects.filter(public_id=ref).order_by("owner")[:10])
    if not found:
        raise JobNotFound(ref)
    if len(found) > 1:
        owners = ", ".join(repr(job.owner) for job in found)
        raise LookupError(f"Several owners have a job {ref!r} ({owners}): say which with --owner.")
    return found[0]


def throughput(*, since: datetime) -> dict[str, int]:
    """Jobs completed and failed since `since` (every owner's)."""
    rows = (
        Job.objects.filter(state__in=(JobState.COMPLETED, JobState.FAILED), finished_on__gte=since)
        .values("state").annotate(n=Count("pk")).order_by()
    )
    return {JobState.COMPLETED: 0, JobState.FAILED: 0, **{row["state"]: row["n"] for row in rows}}


def oldest_waiting() -> Job | None:
    """The waiting job that has waited longest (every owner's)."""
    return Job.objects.filter(state=JobState.WAITING).order_by("run_at").first()


# -- the dashboard's and /metrics' reads (every owner's) ------------------------------------------

FINISHED_STATES = (JobState.COMPLETED, JobState.FAILED)
# How long the latest attempt ran; null for a job that never started.
RUN_TIME = ExpressionWrapper(F("finished_on") - F("processed_on"), output_field=DurationField())


def oldest_waiting_by_queue() -> dict[str, datetime]:
    """Per queue with waiting jobs, the earliest run_at among them (the longest wait); a read of the waiting jobs alone."""
    rows = Job.objects.filter(state=JobState.WAITING).values("queue").annotate(oldest=Min("run_at")).order_by()
    return {row["queue"]: row["oldest"] for row in rows}


def finished_per_minute(*, since: datetime) -> list[dict[str, Any]]:
    """Jobs completed and failed per minute from `since`, counted in SQL: [{"minute", "state", "n"}, …].

    The range on finished_on with the state is what the (state, finished_on) index serves, so
    the cost follows the window, not the table.
    """
    rows = (
        Job.objects.filter(state__in=FINISHED_STATES, finished_on__gte=since)
        .annotate(minute=TruncMinute("finished_on"))
        .values("minute", "state")
        .annotate(n=Count("pk"))
    )
    return list(rows.order_by("minute", "state"))


def finished_by_name(*, since: datetime, buckets: Sequence[float] = ()) -> list[dict[str, Any]]:
    """Per queue, name and state, the jobs that finished from `since` and how long their latest attempt ran.

    Each row: `n` jobs, `timed` of them that ran (a run time), `total` and `longest` run time
    (timedelta), and `le_<i>`: how many ran at most `buckets[i]` seconds. One query.
    """
    within = {
        f"le_{index}": Count("pk", filter=Q(run__lte=timedelta(seconds=bound))) for index, bound in enumerate(buckets)
    }
    rows = (
        Job.objects.filter(state__in=FINISHED_STATES, finished_on__gte=since)
        .annotate(run=RUN_TIME)
        .values("queue", "name", "state")
        .annotate(n=Count("pk"), timed=Count("run"), total=Sum("run"), longest=Max("run"), **within)
    )
    return list(rows.order_by("queue", "name", "state"))
