"""One tracked task per onboarding email: a mail server error retries that email alone, with backoff."""

from __future__ import annotations

from celery import shared_task
from django.contrib.auth import get_user_model

import jobs
from accounts.models import Account
from accounts.services import verification_url

from .emails import send_once
from .models import Purpose

# Five tries over about 15 minutes: 30 s, 90 s, 3.5 min, 7.5 min between them.
EMAIL_RETRIES = {"attempts": 5, "backoff": {"type": "exponential", "delay": 30_000}}


def _user(user_id: int):
    return get_user_model().objects.get(pk=user_id)


@jobs.task(name="onboarding.send_verification_email", **EMAIL_RETRIES)
def send_verification_email(user_id: int) -> bool:
    user = _user(user_id)
    return send_once(user=user, purpose=Purpose.VERIFICATION, context={"verify_url": verification_url(user)})


@jobs.task(name="onboarding.send_verification_reminder", **EMAIL_RETRIES)
def send_verification_reminder(user_id: int) -> bool:
    user = _user(user_id)
    if getattr(getattr(user, "email_verification", None), "verified_at", None):
        return False  # verified since the flow looked
    return send_once(user=user, purpose=Purpose.VERIFICATION_REMINDER, context={"verify_url": verification_url(user)})


@jobs.task(name="onboarding.send_welcome_email", **EMAIL_RETRIES)
def send_welcome_email(user_id: int) -> bool:
    return send_once(user=_user(user_id), purpose=Purpose.WELCOME)


@jobs.task(name="onboarding.send_plan_selected_email", **EMAIL_RETRIES)
def send_plan_selected_email(user_id: int, account_id: int) -> bool:
    account = Account.objects.get(pk=account_id)
    return send_once(user=_user(user_id), purpose=Purpose.PLAN_SELECTED, context={"account": account})


@jobs.task(name="onboarding.send_trial_ending_email", **EMAIL_RETRIES)
def send_trial_ending_email(user_id: int, account_id: int) -> bool:
    account = Account.objects.get(pk=account_id)
    return send_once(user=_user(user_id), purpose=Purpose.TRIAL_ENDING, context={"account": account})


@jobs.task(name="onboarding.send_trial_ended_email", **EMAIL_RETRIES)
def send_trial_ended_email(user_id: int, account_id: int) -> bool:
    account = Account.objects.get(pk=account_id)
    return send_once(user=_user(user_id), purpose=Purpose.TRIAL_ENDED, context={"account": account})


@shared_task(name="onboarding.start_daily_flow", ignore_result=True)
def start_daily_flow() -> str | None:
    """What celery beat fires: add today's flow job, once per day however often beat fires."""
    from .flow import flow_today

    day = flow_today()
    try:
        job = jobs.Queue().add({"date": day.isoformat()}, name="onboarding.daily_flow", attempts=3,
                               backoff={"type": "exponential", "delay": 60_000}, job_id=f"onboarding-daily-{day.isoformat()}")
    except jobs.JobExists:
        return None
    return job.id
