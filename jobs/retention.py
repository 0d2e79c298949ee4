"""Removing finished jobs: when each may go (set as it finishes), and the clean that removes them in batches."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from . import conf
from .models import Job, JobState
from .options import Retention

logger = logging.getLogger(__name__)

FINISHED = (JobState.COMPLETED, JobState.FAILED)
POLICIES = {JobState.COMPLETED: ("removeOnComplete", "REMOVE_ON_COMPLETE"), JobState.FAILED: ("removeOnFail", "REMOVE_ON_FAIL")}


def finished_fields(*, opts: dict[str, Any], state: str, finished_on: datetime) -> dict[str, Any]:
    """The retention columns of a job that finishes in `state` at `finished_on`: from its opts, else the installation's."""
    option, setting = POLICIES[state]
    policy = Retention.parse(conf.get(setting) if opts.get(option) is None else opts[option], option)
    return {
        "remove_after": None if policy.age is None else finished_on + timedelta(seconds=policy.age),
        "keep_last": policy.count,
    }


# What a job that is not finished holds: nothing to remove.
NOT_FINISHED = {"remove_after": None, "keep_last": None}


@dataclass(frozen=True, slots=True, kw_only=True)
class CleanReport:
    """What one clean removed."""

    expired: int = 0
    over_count: int = 0


def jobs_clean(*, now: datetime | None = None, batch: int | None = None, budget: float = 1.0) -> CleanReport:
    """Delete the finished jobs that are due: past their age, or beyond the count of the newest to keep.

    One DELETE takes at most `batch` rows (JOBS["CLEAN_BATCH"]), so none holds a long lock; the
    clean stops after `budget` seconds and the next one goes on. Every DELETE re-checks that the
    job is still finished and due, so a job retried meanwhile stays.
    """
    now = now or timezone.now()
    batch = batch or conf.get("CLEAN_BATCH")
    deadline = time.monotonic() + budget
    due = Job.objects.filter(remove_after__lte=now, state__in=FINISHED)
    expired = 0
    while time.monotonic() < deadline:
        ids = list(due.order_by("remove_after").values_list("pk", flat=True)[:batch])
        expired += _delete(due.filter(pk__in=ids))
        if len(ids) < batch:
            break
    return CleanReport(expired=expired, over_count=_clean_over_count(batch, deadline))


def _clean_over_count(batch: int, deadline: float) -> int:
    """Delete the jobs ranked beyond their own count among the count-keeping jobs of their owner, queue and state."""
    removed = 0
    counted = Job.objects.filter(keep_last__isnull=False, state__in=FINISHED)
    groups = counted.values("owner", "queue", "state", "keep_last").distinct().order_by()
    for group in list(groups):
        keep = group.pop("keep_last")
        newest_first = counted.filter(**group).order_by("-finished_on", "-pk")
        while time.monotonic() < deadline:
            # Beyond rank `keep` and asking to keep `keep` or fewer: over its own count.
            ids = list(newest_first.values_list("pk", flat=True)[keep:keep + batch])
            removed += _delete(counted.filter(pk__in=ids, keep_last__lte=keep))
            if len(ids) < batch:
                break
    return removed


def jobs_clean_older(*, state: str, before: datetime, batch: int | None = None) -> int:
    """Delete every job of `state` (completed or failed) that finished before `before`, whatever it asked to keep."""
    batch = batch or conf.get("CLEAN_BATCH")
    old = Job.objects.filter(state=state, finished_on__lt=before)
    removed = 0
    while True:
        ids = list(old.order_by("finished_on").values_list("pk", flat=True)[:batch])
        removed += _delete(old.filter(pk__in=ids))
        if len(ids) < batch:
            return removed


def _delete(jobs) -> int:
    # One guarded DELETE, as job_remove's: no delete receiver can turn it into a SELECT then an
    # unguarded DELETE. (An empty pk__in list runs no query, and counts as none.)
    return jobs._raw_delete(jobs.db) or 0
