"""Trial dates are the schedule's (London) dates, so a sign-up at any hour gets its whole trial."""

from datetime import UTC, date, datetime

import pytest

from accounts.services import account_signup
from onboarding.flow import run_flow

pytestmark = pytest.mark.django_db


def signup_at(monkeypatch, moment: datetime, email: str):
    monkeypatch.setattr("django.utils.timezone.now", lambda: moment)
    _, account = account_signup(email=email, password="a-long-pass-phrase-42")
    monkeypatch.undo()
    return account


@pytest.mark.parametrize(
    ("moment", "london", "ends_on"),
    [
        (datetime(2027, 6, 10, 23, 30, tzinfo=UTC), "00:30 BST on 11 June", date(2027, 6, 25)),  # UTC still says the 10th
        (datetime(2027, 6, 10, 22, 30, tzinfo=UTC), "23:30 BST on 10 June", date(2027, 6, 24)),
        (datetime(2027, 1, 10, 23, 30, tzinfo=UTC), "23:30 GMT on 10 January", date(2027, 1, 24)),
    ],
)
def test_the_trial_ends_fourteen_london_days_after_the_london_day_of_sign_up(monkeypatch, settings, moment, london, ends_on):
    assert settings.ACCOUNT_TRIAL_DAYS == 14
    assert signup_at(monkeypatch, moment, "kim@example.com").trial_ends_on == ends_on, london


def test_a_signup_at_0030_bst_keeps_its_trial_until_the_flow_of_its_fourteenth_day(monkeypatch):
    account = signup_at(monkeypatch, datetime(2027, 6, 10, 23, 30, tzinfo=UTC), "kim@example.com")
    run_flow(date(2027, 6, 24))
    account.refresh_from_db()
    assert account.trial_ended_at is None  # 13 days and 11 hours in: not yet
    run_flow(date(2027, 6, 25))
    account.refresh_from_db()
    assert account.trial_ended_at is not None
