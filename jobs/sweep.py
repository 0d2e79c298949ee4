"""The sweep that every worker runs each SWEEP_INTERVAL, so that no committed job is ever stuck, and its thread."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.db import close_old_connections, connection
from django.utils import timezone

from . import conf, counts, messages, services
from .retention import CleanReport, jobs_clean
from .models import Job
from .threads import Periodic

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepReport:
    """What one sweep did."""

    promoted: int = 0
    recovered: int = 0
    stalled_out: int = 0
    sent: int = 0
    still_queued: int = 0


def jobs_sweep(*, now: datetime | None = None, broker: messages.Broker | None = None) -> SweepReport:
    """Promote due delayed jobs, recover stalled ones, send each waiting job whose message is missing, fold the counts.

    A waiting job's message is missing when it never left (SEND_GRACE after the job became
    waiting), or when it left RESEND_AFTER ago and the broker no longer holds it (or lost its
    data since). A message still queued, however long the backlog, is never sent twice. Each kind
    of work takes at most SWEEP_BATCH jobs, so a broker that lost everything is refilled a batch
    per sweep.
    """
    now = now or timezone.now()
    broker = broker or messages.broker()
    batch = conf.get("SWEEP_BATCH")
    to_send = services.jobs_promote_due(now=now, limit=batch)
    promoted = len(to_send)
    recovered, stalled_out = services.jobs_recover_stalled(now=now, limit=batch)
    to_send += recovered
    # A job added on a tracking broker records its send only in the message's key: read the keys
    # before sending anything, so a message that did leave is noted, not sent twice.
    unsent = list(Job.objects.unsent(now - timedelta(seconds=conf.get("SEND_GRACE"))).values_list("pk", flat=True)[:batch])
    left = _ask(lambda: broker.sent(unsent), set(), "look for messages")
    if left:
        services.jobs_note_sent(job_ids=left, now=now)
    to_send += [job_id for job_id in unsent if job_id not in left]
    resend_before = now - timedelta(seconds=conf.get("RESEND_AFTER"))
    lost_before = _ask(broker.lost_before, None, "check its mark")
    if lost_before is not None and lost_before > resend_before:
        resend_before = lost_before
    sent_long_ago = [
        messages.Queued(job_id=job_id, queue=queue)
        for job_id, queue in Job.objects.sent_before(resend_before).values_list("pk", "queue")[:batch]
    ]
    # Unable to see the broker, assume it holds every message: sending them all again is what
    # filled Redis with duplicates.
    queued = _ask(lambda: broker.still_queued(sent_long_ago), {job.job_id for job in sent_long_ago}, "look for messages")
    if queued:
        services.jobs_note_queued(job_ids=queued, before=resend_before, now=now)
    to_send += [job.job_id for job in sent_long_ago if job.job_id not in queued]
    sent = 0
    if to_send:
        try:
            sent = services.jobs_send(job_ids=to_send, broker=broker)
        except Exception:
            # The broker is down: the rest would fail the same way; the next sweep tries again.
            logger.warning("Broker unavailable; job messages wait for the next sweep", exc_info=True)
    # The counts' changes since the last sweep (a few rows a job) into their totals, last: the
    # jobs' own work goes first.
    counts.jobs_counts_fold()
    return SweepReport(
        promoted=promoted, recovered=len(recovered), stalled_out=stalled_out, sent=sent, still_queued=len(queued)
    )


def _ask(question: Callable[[], T], fallback: T, what: str) -> T:
    """The broker's answer, or `fallback` (with a warning) when it cannot be reached."""
    try:
        return question()
    except Exception:
        logger.warning("Could not reach the broker to %s", what, exc_info=True)
        return fallback


class Sweeper(Periodic):
    """Call jobs_sweep every `interval` seconds in a daemon thread until stopped, and jobs_clean every CLEAN_INTERVAL."""

    name = "jobs-sweeper"

    def __init__(self, interval: float):
        super().__init__(interval)
        self._cleaned = time.monotonic()

    def tick(self) -> None:
        self.sweep_once()
        every = conf.get("CLEAN_INTERVAL")
        if every and time.monotonic() - self._cleaned >= every:
            self._cleaned = time.monotonic()
            self.clean_once()

    def clean_once(self) -> CleanReport | None:
        """Remove the finished jobs that are due (retention), a batch per DELETE."""
        close_old_connections()
        try:
            report = jobs_clean()
        except Exception:
            logger.exception("Cleaning finished jobs failed; trying again in %ss", conf.get("CLEAN_INTERVAL"))
            connection.close()
            return None
        if report.expired or report.over_count:
            logger.info("Removed %d finished jobs past their age and %d beyond their count", report.expired, report.over_count)
        return report

    def sweep_once(self) -> SweepReport | None:
        close_old_connections()
        try:
            report = jobs_sweep()
        except Exception:
            logger.exception("Job sweep failed; trying again in %ss", self.interval)
            # A broken connection must not poison the next sweep.
            connection.close()
            return None
        if report.promoted or report.recovered or report.stalled_out or report.sent or report.still_queued:
            logger.info(
                "Job sweep: %d delayed jobs due, %d stalled jobs back to waiting, %d failed as stalled, "
                "%d messages sent, %d messages found still queued",
                report.promoted, report.recovered, report.stalled_out, report.sent, report.still_queued,
            )
        return report
