"""The onboarding_run command: the flow by hand, for a day."""

from datetime import UTC, date, datetime

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import CommandError, call_command

from accounts.models import Account

pytestmark = pytest.mark.django_db
DAY = date(2027, 6, 10)


def trial_account(email, *, plan="pro"):
    user = get_user_model().objects.create_user(username=email, email=email)
    account = user.memberships.get().account
    Account.objects.filter(pk=account.pk).update(created_at=datetime(2027, 1, 1, tzinfo=UTC), trial_ends_on=DAY, plan=plan)
    return account


def test_the_dry_run_changes_and_sends_nothing(capsys):
    account = trial_account("pro@example.com")
    call_command("onboarding_run", "--date", DAY.isoformat(), "--dry-run")
    out = capsys.readouterr().out
    assert "would send: trial_ended to pro@example.com" in out and f"would upgrade: account {account.pk} to pro" in out
    account.refresh_from_db()
    assert (account.upgraded_to, mail.outbox) == ("", [])
    call_command("onboarding_run", "--date", DAY.isoformat())
    assert "sent: trial_ended to pro@example.com" in capsys.readouterr().out
    assert len(mail.outbox) == 1


def test_the_command_refuses_a_bad_date():
    with pytest.raises(CommandError, match="--date must be YYYY-MM-DD, not '10/06/2027'."):
        call_command("onboarding_run", "--date", "10/06/2027")
