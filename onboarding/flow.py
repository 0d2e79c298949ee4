"""The daily onboarding flow: everything due and not yet done, so a day it missed is made good by the next run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction

import jobs
from accounts.models import Account
from accounts.services import VERIFY_MAX_AGE

from . import tasks
from .days import day_bounds, flow_today, flow_zone  # noqa: F401 (onboarding.flow.flow_today is public)
from .models import Purpose, SentEmail
from .trials import TrialAlreadyEnded, trials

logger = logging.getLogger(__name__)

# Trials ending within this many days get the notice (the day before they end, at the latest).
NOTICE_DAYS = 3
# Unverified sign-ups get their reminder from the day after signing up for as long as the first
# verification link would be valid (7 days): older sign-ups are left alone, not reminded out of the blue.
REMINDER_DAYS = timedelta(seconds=VERIFY_MAX_AGE).days


@dataclass(frozen=True)
class PlannedEmail:
    purpose: Purpose
    user_id: int
    email: str
    account_id: int | None = None
    # The flow's day, for emails that say how many days are left or have passed.
    day: date | None = None

    def __str__(self) -> str:
        return f"{self.purpose.value} to {self.email}"

    @property
    def args(self) -> list[int | str]:
        """The arguments of the email's task."""
        account = [] if self.account_id is None else [self.account_id]
        day = [] if self.day is None else [self.day.isoformat()]
        return [self.user_id, *account, *day]


@dataclass
class FlowReport:
    day: date
    planned: list[PlannedEmail] = field(default_factory=list)
    upgraded: list[tuple[int, str]] = field(default_factory=list)
    ended_without_plan: list[int] = field(default_factory=list)


# The emails whose words depend on the day: "ends in 2 days", "signed up 3 days ago".
DATED = {Purpose.TRIAL_ENDING, Purpose.VERIFICATION_REMINDER}

SENDERS = {
    Purpose.TRIAL_ENDING: tasks.send_trial_ending_email,
    Purpose.TRIAL_ENDED: tasks.send_trial_ended_email,
    Purpose.VERIFICATION_REMINDER: tasks.send_verification_reminder,
}


def enqueue(planned: PlannedEmail) -> bool:
    """Add the email's job, once; False if it exists (an earlier or concurrent run added it)."""
    job_id = f"onboarding-{planned.purpose.value}-{planned.user_id}"
    try:
        SENDERS[planned.purpose].apply_async(planned.args, job_id=job_id)
    except jobs.JobExists:
        return False
    return True


def run_flow(
    day: date,
    *,
    dry_run: bool = False,
    deliver: Callable[[PlannedEmail], bool] = enqueue,
    progress: Callable[[dict], None] = lambda value: None,
) -> FlowReport:
    """Do everything due by `day` that is not done yet; with dry_run nothing is changed or sent.

    The report lists what this run did (or, dry, would do): an email another run already has in
    hand, or a trial another run ended, is not in it.
    """
    report = FlowReport(day=day)
    source = trials()

    def plan(purpose: Purpose, user, account: Account | None = None) -> None:
        if SentEmail.objects.filter(user=user, purpose=purpose).exists():
            return  # sent, or being sent
        as_of = day if purpose in DATED else None
        planned = PlannedEmail(purpose, user.pk, user.email, account.pk if account else None, as_of)
        if dry_run or deliver(planned):
            report.planned.append(planned)

    def announce(account: Account, upgraded_to: str | None) -> None:
        if upgraded_to is None:
            # No plan chosen: the trial ends and nothing is charged; there is no upgrade to announce.
            report.ended_without_plan.append(account.pk)
            return
        report.upgraded.append((account.pk, upgraded_to))
        for user in members(account):
            plan(Purpose.TRIAL_ENDED, user, account)

    progress({"step": 1, "of": 3, "doing": f"trials ending within {NOTICE_DAYS} days"})
    # Trials due by `day` are left to step 2: they end now, so a notice would come too late.
    for account in source.due_on_or_before(day + timedelta(days=NOTICE_DAYS)).filter(trial_ends_on__gt=day):
        for user in members(account):
            plan(Purpose.TRIAL_ENDING, user, account)

    progress({"step": 2, "of": 3, "doing": "trials due"})
    for account in source.due_on_or_before(day):
        if dry_run:
            announce(account, account.plan or None)
            continue
        # The end of a trial and the jobs of its emails commit together: a crash between them
        # would end a trial that no later run finds due, so it would never be announced.
        with transaction.atomic():
            try:
                upgraded_to = source.end_trial(account)
            except TrialAlreadyEnded:
                continue
            announce(account, upgraded_to)

    progress({"step": 3, "of": 3, "doing": f"unverified sign-ups of the last {REMINDER_DAYS} days"})
    earliest, _ = day_bounds(day - timedelta(days=REMINDER_DAYS))
    today, _ = day_bounds(day)
    unverified = get_user_model().objects.filter(
        memberships__account__created_at__gte=earliest,
        memberships__account__created_at__lt=today,
        email_verification__isnull=False,
        email_verification__verified_at__isnull=True,
    ).distinct().order_by("pk")
    for user in unverified:
        plan(Purpose.VERIFICATION_REMINDER, user)

    progress({"step": 3, "of": 3, "done": True, "emails": len(report.planned)})
    return report


def members(account: Account):
    return get_user_model().objects.filter(memberships__account=account, is_active=True).order_by("pk")
