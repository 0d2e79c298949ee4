"""One tracked task per onboarding email: a mail server error retries that email alone, with backoff."""

from __future__ import annotations

from datetime import date

from celery import shared_task
from django.contrib.auth import get_user_model
from django.utils import timezone

import jobs
from accounts.models import Account
from accounts.services import verification_url

from .days import flow_today, flow_zone
from .emails import send_once
from .models import Purpose

# Five tries over about 15 minutes: 30 s, 90 s, 3.5 min, 7.5 min between them.
EMAIL_RETRIES = {"attempts": 5, "backoff": {"type": "exponential", "delay": 30_000}}
# The flow job: three tries, 1 and 3 minutes apart; one job per day, whoever adds it.
FLOW_RETRIES = {"attempts": 3, "backoff": {"type": "exponential", "delay": 60_000}}


def _user(user_id: int):
    return get_user_model().objects.get(pk=user_id)


def _as_of(day: str | None) -> date:
    return date.fromisoformat(day) if day else flow_today()


@jobs.task(name="onboarding.send_verification_email", **EMAIL_RETRIES)
def send_verification_email(user_id: int) -> bool:
    user = _user(user_id)
    return send_once(user=user, purpose=Purpose.VERIFICATION, context={"verify_url": verification_url(user)})


@jobs.task(name="onboarding.send_verification_reminder", **EMAIL_RETRIES)
def send_verification_reminder(user_id: int, day: str | None = None) -> bool:
    """`day` is the flow's: the email speaks as of that day (it catches up on days it missed)."""
    user = _user(user_id)
    if getattr(getattr(user, "email_verification", None), "verified_at", None):
        return False  # verified since the flow looked
    accounts = Account.objects.filter(memberships__user=user).order_by("created_at")
    signed_up = accounts.values_list("created_at", flat=True).first() or user.date_joined
    days_ago = (_as_of(day) - timezone.localtime(signed_up, flow_zone()).date()).days
    context = {"verify_url": verification_url(user), "days_ago": days_ago}
    return send_once(user=user, purpose=Purpose.VERIFICATION_REMINDER, context=context)


@jobs.task(name="onboarding.send_welcome_email", **EMAIL_RETRIES)
def send_welcome_email(user_id: int) -> bool:
    return send_once(user=_user(user_id), purpose=Purpose.WELCOME)


@jobs.task(name="onboarding.send_plan_selected_email", **EMAIL_RETRIES)
def send_plan_selected_email(user_id: int, account_id: int) -> bool:
    account = Account.objects.get(pk=account_id)
    return send_once(user=_user(user_id), purpose=Purpose.PLAN_SELECTED, context={"account": account})


@jobs.task(name="onboarding.send_trial_ending_email", **EMAIL_RETRIES)
def send_trial_ending_email(user_id: int, account_id: int, day: str | None = None) -> bool:
    """`day` is the flow's: the email speaks as of that day (it catches up on days it missed)."""
    account = Account.objects.get(pk=account_id)
    days_left = (account.trial_ends_on - _as_of(day)).days
    context = {"account": account, "days_left": days_left}
    return send_once(user=_user(user_id), purpose=Purpose.TRIAL_ENDING, context=context)


@jobs.task(name="onboarding.send_trial_ended_email", **EMAIL_RETRIES)
def send_trial_ended_email(user_id: int, account_id: int) -> bool:
    account = Account.objects.get(pk=account_id)
    return send_once(user=_user(user_id), purpose=Purpose.TRIAL_ENDED, context={"account": account})


def daily_flow_add(*, day: date) -> tuple[str, bool]:
    """Add the flow job for `day` unless there is one; return its id and whether it was added now."""
    job_id = f"onboarding-daily-{day.isoformat()}"
    try:
        jobs.Queue().add({"date": day.isoformat()}, name="onboarding.daily_flow", job_id=job_id, **FLOW_RETRIES)
    except jobs.JobExists:
        return job_id, False
    return job_id, True


@shared_task(name="onboarding.start_daily_flow", ignore_result=True)
def start_daily_flow() -> str | None:
    """What celery beat fires: add today's flow job, once per day however often beat fires."""
    job_id, added = daily_flow_add(day=flow_today())
    return job_id if added else None
