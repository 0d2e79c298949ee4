"""The Job record: the truth about a job, whatever the broker holds."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models
from django.db.models import Q
from django.utils import timezone


class JobState(models.TextChoices):
    """Bull's job states: one vocabulary for the model, the API, the admin and the docs."""

    WAITING = "waiting"
    DELAYED = "delayed"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"


REMOVABLE_STATES = (JobState.WAITING, JobState.DELAYED)


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobQuerySet(models.QuerySet):
    # The worker's queries (the sweep's and the shutdown's) each set their own order_by: the
    # model's default ordering (newest first) once made SQLite scan the created_at index of a
    # million finished jobs instead of the small index that matches the query.

    def known_as(self, owner: str, job_id: str) -> JobQuerySet:
        """The job that `owner` knows by `job_id` (its public id): at most one."""
        return self.filter(owner=owner, public_id=job_id)

    def waiting(self) -> JobQuerySet:
        return self.filter(state=JobState.WAITING)

    def due(self, now: datetime) -> JobQuerySet:
        """Delayed jobs whose time has come, the longest-due first (index jobs_job_due_idx)."""
        return self.filter(state=JobState.DELAYED, run_at__lte=now).order_by("run_at")

    def stalled(self, now: datetime) -> JobQuerySet:
        """Active jobs whose worker stopped renewing the lock, the longest-lost first (index jobs_job_locked_idx)."""
        return self.filter(state=JobState.ACTIVE, lock_until__lt=now).order_by("lock_until")

    def unsent(self, before: datetime) -> JobQuerySet:
        """Waiting jobs, eligible since `before` or earlier, whose message never reached the broker (index jobs_job_unsent_idx)."""
        return self.filter(state=JobState.WAITING, sent_at__isnull=True, run_at__lte=before).order_by("run_at")

    def sent_before(self, before: datetime) -> JobQuerySet:
        """Waiting jobs whose message was last known on the broker before `before`, oldest first (index jobs_job_sent_idx)."""
        return self.filter(state=JobState.WAITING, sent_at__lt=before).order_by("sent_at")

    def held_by(self, worker_identity: str) -> JobQuerySet:
        """Active jobs claimed by the processes of one worker start (see jobs.worker.Worker.identity)."""
        return self.filter(state=JobState.ACTIVE, worker__startswith=f"{worker_identity}:").order_by("lock_until")


class Job(models.Model):
    # The internal id: what broker messages and workers use; never chosen by a client.
    id = models.CharField(primary_key=True, max_length=200, default=new_job_id, editable=False)
    # The tenant the job belongs to (see JOBS["OWNER_RESOLVER"]); "" for jobs made by the system.
    owner = models.CharField(max_length=100, blank=True, default="")
    # The id the owner knows the job by (the API's and JobHandle's `id`): the owner's own jobId,
    # unique within that owner only, or else the internal id.
    public_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    queue = models.CharField(max_length=100)
    data = models.JSONField(default=dict)
    opts = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=JobState.choices)
    priority = models.PositiveIntegerField(null=True, blank=True)
    delay = models.PositiveBigIntegerField(default=0, help_text="Milliseconds, as asked at creation.")
    attempts = models.PositiveIntegerField(default=1, help_text="Attempts allowed in all.")
    attempts_made = models.PositiveIntegerField(default=0, help_text="Failed attempts so far (Bull's attemptsMade).")
    progress = models.JSONField(default=int)
    return_value = models.JSONField(null=True, blank=True)
    failed_reason = models.TextField(null=True, blank=True)
    stacktrace = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # When the job may next run: creation time plus delay, or the time a retry's backoff ends.
    run_at = models.DateTimeField()
    # When its current message reached the broker, or a sweep last found it still queued there;
    # null while no message has left.
    sent_at = models.DateTimeField(null=True, blank=True)
    processed_on = models.DateTimeField(null=True, blank=True)
    finished_on = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, default="", help_text="Who ran the latest attempt.")
    # While active: who holds the job and until when. The holder renews the lock as it runs; a
    # lock that runs out means the worker is gone, and the sweep takes the job back.
    lock_token = models.CharField(max_length=32, blank=True, default="")
    lock_until = models.DateTimeField(null=True, blank=True)
    stalled_count = models.PositiveIntegerField(default=0, help_text="Times the job's worker was lost while it ran.")
    # Set when the job finishes, from its removeOnComplete/removeOnFail (or the installation's):
    # when it may be deleted, and how many of its owner's newest finished jobs of its queue and
    # state to keep at least. Null both: kept for ever.
    remove_after = models.DateTimeField(null=True, blank=True)
    keep_last = models.PositiveIntegerField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Custom ids are per owner: two accounts may both have "report-7"; neither can take
            # an id the system uses. The index also serves every lookup the API makes.
            models.UniqueConstraint(fields=["owner", "public_id"], name="jobs_job_owner_public_id_uniq"),
        ]
        indexes = [
            # One partial index per sweep query, matching its filter and its order exactly: each
            # holds only the few rows the sweep looks at, never the finished jobs that make up
            # most of the table.
            models.Index(fields=["run_at"], condition=Q(state=JobState.DELAYED), name="jobs_job_due_idx"),
            models.Index(fields=["lock_until"], condition=Q(state=JobState.ACTIVE), name="jobs_job_locked_idx"),
            models.Index(
                fields=["run_at"], condition=Q(state=JobState.WAITING, sent_at__isnull=True), name="jobs_job_unsent_idx"
            ),
            models.Index(
                fields=["sent_at"], condition=Q(state=JobState.WAITING, sent_at__isnull=False), name="jobs_job_sent_idx"
            ),
            # The admin's state filter, newest first: a partial index per state but the two most jobs
            # pass through, so a claim takes a job out of one small index and a completion changes
            # none (one index on (state, created_at) costs both a delete and an insert). Active jobs
            # (a few per worker) are listed through jobs_job_locked_idx, completed ones (most of the
            # table) by walking jobs_job_created_idx; the admin counts a state from the job counts.
            *(
                models.Index(fields=["-created_at"], condition=Q(state=state), name=f"jobs_job_{state}_created_idx")
                for state in (JobState.WAITING, JobState.DELAYED, JobState.FAILED)
            ),
            models.Index(fields=["name"], name="jobs_job_name_idx"),
            models.Index(fields=["owner", "created_at"], name="jobs_job_owner_created_idx"),
            # The API's listing by state, newest first, and its counts.
            models.Index(fields=["owner", "state", "created_at"], name="jobs_job_owner_state_idx"),
            # Throughput: finished jobs by when they finished. Only finished jobs are in it: a claim,
            # which changes the state of a job not yet finished, has one index fewer to change.
            models.Index(
                fields=["state", "finished_on"], condition=Q(finished_on__isnull=False), name="jobs_job_finished_idx"
            ),
            # Retention: the finished jobs due for removal, and those that keep a count of the newest.
            models.Index(fields=["remove_after"], condition=Q(remove_after__isnull=False), name="jobs_job_remove_after_idx"),
            models.Index(
                fields=["owner", "queue", "state", "-finished_on"], condition=Q(keep_last__isnull=False), name="jobs_job_keep_last_idx"
            ),
            models.Index(fields=["-created_at"], name="jobs_job_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} #{self.public_id} ({self.state})"
