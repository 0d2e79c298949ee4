"""Where trial data lives: one small interface, with the database as the default.

A payment provider (Stripe, …) plugs in by implementing the same two methods and naming the
class in settings.ONBOARDING["TRIALS"].
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

from django.conf import settings
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import Account


class TrialAlreadyEnded(Exception):
    """end_trial lost the race: another run ended the trial (and added its emails) first."""

    def __init__(self, account_id: int):
        super().__init__(f"The trial of account {account_id} has already ended.")


class Trials(Protocol):
    def due_on_or_before(self, day: date) -> QuerySet[Account]:
        """Accounts whose trial ends on or before `day` and has not ended yet, the earliest end first.

        Everything missed is found again: a trial due on a day the flow did not run is still due.
        """

    def end_trial(self, account: Account) -> str | None:
        """End the trial: upgrade the account to its chosen plan and return it, or None if it chose none.

        Called inside a transaction with the adding of its emails. Raise TrialAlreadyEnded if another
        run ended it in the meantime; an end that is called again after a crash must not charge twice.
        """


class DatabaseTrials:
    """Trials kept on the Account row: plan, trial_ends_on, trial_ended_at, upgraded_to."""

    def due_on_or_before(self, day: date) -> QuerySet[Account]:
        due = Account.objects.filter(trial_ends_on__lte=day, trial_ended_at__isnull=True)
        return due.order_by("trial_ends_on", "pk")

    def end_trial(self, account: Account) -> str | None:
        # Guarded: of two flows ending the same trial, one does it and the other is told. The plan
        # is the row's, not the one read with the list: a plan chosen a moment ago counts.
        ended = Account.objects.filter(pk=account.pk, trial_ended_at__isnull=True).update(
            trial_ended_at=timezone.now(), upgraded_to=F("plan")
        )
        if not ended:
            raise TrialAlreadyEnded(account.pk)
        account.refresh_from_db()
        return account.upgraded_to or None


def trials() -> Trials:
    return import_string(settings.ONBOARDING["TRIALS"])()
