"""The daily onboarding flow: trials ending in 3 days, trials ending today, yesterday's unverified sign-ups."""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

import jobs
from accounts.models import Account

from . import tasks
from .models import Purpose, SentEmail
from .trials import trials

logger = logging.getLogger(__name__)


def flow_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.WORKER_SCHEDULE_TIMEZONE)


def flow_today(now: datetime | None = None) -> date:
    """Today in the schedule's time zone (Europe/London by default)."""
    return timezone.localtime(now or timezone.now(), flow_zone()).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The start and end of `day` in the schedule's time zone: 23 or 25 hours long on a clock change."""
    zone = flow_zone()
    return datetime.combine(day, time.min, zone), datetime.combine(day + timedelta(days=1), time.min, zone)


@dataclass(frozen=True)
class PlannedEmail:
    purpose: Purpose
    user_id: int
    email: str
    account_id: int | None = None

    def __str__(self) -> str:
        return f"{self.purpose.value} to {self.email}"


@dataclass
class FlowReport:
    day: date
    planned: list[PlannedEmail] = field(default_factory=list)
    upgraded: list[tuple[int, str]] = field(default_factory=list)
    ended_without_plan: list[int] = field(default_factory=list)


SENDERS = {
    Purpose.TRIAL_ENDING: tasks.send_trial_ending_email,
    Purpose.TRIAL_ENDED: tasks.send_trial_ended_email,
    Purpose.VERIFICATION_REMINDER: tasks.send_verification_reminder,
}


def enqueue(planned: PlannedEmail) -> None:
    """Add the email's job, once: a re-run of the flow finds the job id taken and moves on."""
    task = SENDERS[planned.purpose]
    args = [planned.user_id] if planned.account_id is None else [planned.user_id, planned.account_id]
    try:
        task.apply_async(args, job_id=f"onboarding-{planned.purpose.value}-{planned.user_id}")
    except jobs.JobExists:
        pass


def run_flow(
    day: date,
    *,
    dry_run: bool = False,
    deliver: Callable[[PlannedEmail], None] = enqueue,
    progress: Callable[[dict], None] = lambda value: None,
) -> FlowReport:
    """Run the three steps for `day`; with dry_run nothing is changed or sent."""
    report = FlowReport(day=day)
    source = trials()

    def plan(purpose: Purpose, user, account: Account | None = None) -> None:
        if SentEmail.objects.filter(user=user, purpose=purpose).exists():
            return
        planned = PlannedEmail(purpose, user.pk, user.email, account.pk if account else None)
        report.planned.append(planned)
        if not dry_run:
            deliver(planned)

    progress({"step": 1, "of": 3, "doing": "trials ending in 3 days"})
    for account in source.ending_on(day + timedelta(days=3)):
        for user in members(account):
            plan(Purpose.TRIAL_ENDING, user, account)

    progress({"step": 2, "of": 3, "doing": "trials ending today"})
    for account in source.ending_on(day):
        if dry_run:
            upgraded_to = (account.upgraded_to if account.trial_ended_at else account.plan) or None
        else:
            upgraded_to = source.end_trial(account)  # ends it once; a re-run gets the same answer
        if upgraded_to is None:
            # No plan chosen: the trial ends and nothing is charged; there is no upgrade to announce.
            report.ended_without_plan.append(account.pk)
            continue
        report.upgraded.append((account.pk, upgraded_to))
        for user in members(account):
            plan(Purpose.TRIAL_ENDED, user, account)

    progress({"step": 3, "of": 3, "doing": "yesterday's unverified sign-ups"})
    start, end = day_bounds(day - timedelta(days=1))
    unverified = get_user_model().objects.filter(
        memberships__account__created_at__gte=start,
        memberships__account__created_at__lt=end,
        email_verification__isnull=False,
        email_verification__verified_at__isnull=True,
    ).distinct().order_by("pk")
    for user in unverified:
        plan(Purpose.VERIFICATION_REMINDER, user)

    progress({"step": 3, "of": 3, "done": True, "emails": len(report.planned)})
    return report


def members(account: Account):
    return get_user_model().objects.filter(memberships__account=account, is_active=True).order_by("pk")
