"""Where trial data lives: one small interface, with the database as the default.

A payment provider (Stripe, …) plugs in by implementing the same three methods and naming the
class in settings.ONBOARDING["TRIALS"].
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import Account


class Trials(Protocol):
    def ending_on(self, day: date) -> QuerySet[Account]:
        """Accounts whose trial ends on `day` (ended already or not: a re-run must find them again)."""

    def end_trial(self, account: Account) -> str | None:
        """End the account's trial: upgrade it to its chosen plan and return the plan, or None if it chose none."""


class DatabaseTrials:
    """Trials kept on the Account row: plan, trial_ends_on, trial_ended_at, upgraded_to."""

    def ending_on(self, day: date) -> QuerySet[Account]:
        return Account.objects.filter(trial_ends_on=day).order_by("pk")

    def end_trial(self, account: Account) -> str | None:
        # Guarded: of two flows ending the same trial, one does it and the other sees it done.
        plan = account.plan or ""
        Account.objects.filter(pk=account.pk, trial_ended_at__isnull=True).update(
            trial_ended_at=timezone.now(), upgraded_to=plan
        )
        account.refresh_from_db()
        return account.upgraded_to or None


def trials() -> Trials:
    return import_string(settings.ONBOARDING["TRIALS"])()
