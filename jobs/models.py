"""The Job record: the truth about a job, whatever the broker holds."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models
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
    def owned_by(self, owner: str | None) -> JobQuerySet:
        """Jobs of `owner`; None means no restriction (Python callers, the system)."""
        return self if owner is None else self.filter(owner=owner)

    def waiting(self) -> JobQuerySet:
        return self.filter(state=JobState.WAITING)

    def due(self, now: datetime) -> JobQuerySet:
        """Delayed jobs whose time has come."""
        return self.filter(state=JobState.DELAYED, run_at__lte=now)

    def stalled(self, now: datetime) -> JobQuerySet:
        """Active jobs whose worker stopped renewing the lock."""
        return self.filter(state=JobState.ACTIVE, lock_until__lt=now)

    def sent_before(self, before: datetime) -> JobQuerySet:
        """Waiting jobs whose message left before `before` and has not been taken since."""
        return self.filter(state=JobState.WAITING, sent_at__lt=before)

    def unsent(self, before: datetime) -> JobQuerySet:
        """Waiting jobs, eligible since `before` or earlier, whose message never reached the broker."""
        return self.filter(state=JobState.WAITING, sent_at__isnull=True, run_at__lte=before)


class Job(models.Model):
    id = models.CharField(primary_key=True, max_length=200, default=new_job_id, editable=False)
    name = models.CharField(max_length=200)
    queue = models.CharField(max_length=100)
    # The tenant the job belongs to (see JOBS["OWNER_RESOLVER"]); "" for jobs made by the system.
    owner = models.CharField(max_length=100, blank=True, default="")
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
    # When its current message reached the broker; null while it has not.
    sent_at = models.DateTimeField(null=True, blank=True)
    processed_on = models.DateTimeField(null=True, blank=True)
    finished_on = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, default="", help_text="Who ran the latest attempt.")
    # While active: who holds the job and until when. The holder renews the lock as it runs; a
    # lock that runs out means the worker is gone, and the sweep takes the job back.
    lock_token = models.CharField(max_length=32, blank=True, default="")
    lock_until = models.DateTimeField(null=True, blank=True)
    stalled_count = models.PositiveIntegerField(default=0, help_text="Times the job's worker was lost while it ran.")

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "run_at"], name="jobs_job_state_run_at_idx"),
            models.Index(fields=["state", "sent_at"], name="jobs_job_state_sent_at_idx"),
            models.Index(fields=["state", "lock_until"], name="jobs_job_state_lock_idx"),
            models.Index(fields=["name"], name="jobs_job_name_idx"),
            models.Index(fields=["owner", "created_at"], name="jobs_job_owner_created_idx"),
            models.Index(fields=["-created_at"], name="jobs_job_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} #{self.id} ({self.state})"
