"""The daily flow, day by day: in 3 days, today, yesterday, across London's clock changes; and twice."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command

import jobs
from accounts.models import Account, EmailVerification
from jobs.models import Job
from jobs.runner import job_execute
from onboarding.flow import day_bounds, flow_today, run_flow
from onboarding.management.commands.onboarding_run import send_now
from onboarding.models import SentEmail
from onboarding.tasks import start_daily_flow

pytestmark = pytest.mark.django_db
User = get_user_model()
DAY = date(2027, 6, 10)


def signup(email, *, created_at=None, trial_ends_on=None, plan="", verified=False):
    user = User.objects.create_user(username=email, email=email)
    account = user.memberships.get().account
    Account.objects.filter(pk=account.pk).update(
        created_at=created_at or datetime(2027, 1, 1, tzinfo=UTC), trial_ends_on=trial_ends_on, plan=plan
    )
    EmailVerification.objects.create(user=user, email=email, verified_at=datetime(2027, 1, 1, tzinfo=UTC) if verified else None)
    return user, Account.objects.get(pk=account.pk)


def sent():
    return sorted((m.to[0], m.subject) for m in mail.outbox)


def test_trials_ending_in_three_days_get_the_reminder():
    signup("soon@example.com", trial_ends_on=DAY + timedelta(days=3), verified=True)
    signup("later@example.com", trial_ends_on=DAY + timedelta(days=4), verified=True)
    signup("today@example.com", trial_ends_on=DAY, verified=True)
    run_flow(DAY, deliver=send_now)
    assert ("soon@example.com", "Your trial ends in 3 days") in sent()
    assert not any(to == "later@example.com" for to, _ in sent())


def test_trials_ending_today_are_upgraded_to_their_plan_and_told():
    _, chosen = signup("pro@example.com", trial_ends_on=DAY, plan="pro", verified=True)
    _, none = signup("none@example.com", trial_ends_on=DAY, verified=True)
    report = run_flow(DAY, deliver=send_now)
    chosen.refresh_from_db()
    none.refresh_from_db()
    assert (chosen.upgraded_to, chosen.trial_ended_at is not None) == ("pro", True)
    # no plan chosen: the trial ends, nothing is upgraded and there is no upgrade email
    assert (none.upgraded_to, none.trial_ended_at is not None) == ("", True)
    assert report.ended_without_plan == [none.pk]
    assert sent() == [("pro@example.com", "Your trial has ended: welcome to pro")]


def test_yesterdays_unverified_signups_get_a_reminder():
    yesterday_noon = datetime(2027, 6, 9, 11, 0, tzinfo=UTC)
    signup("lazy@example.com", created_at=yesterday_noon)
    signup("done@example.com", created_at=yesterday_noon, verified=True)
    signup("old@example.com", created_at=yesterday_noon - timedelta(days=1))
    signup("new@example.com", created_at=yesterday_noon + timedelta(days=1))
    User.objects.create_user("admin-made", email="admin@example.com")  # never signed up: no verification record
    run_flow(DAY, deliver=send_now)
    assert sent() == [("lazy@example.com", "Reminder: please verify your email address")]


@pytest.mark.parametrize(
    ("created_utc", "flow_day", "reminded"),
    [
        # 28 March 2027: the clocks go forward at 01:00 GMT, so the day is 23 hours long
        (datetime(2027, 3, 28, 22, 30, tzinfo=UTC), date(2027, 3, 29), True),   # 23:30 BST on the 28th
        (datetime(2027, 3, 28, 23, 30, tzinfo=UTC), date(2027, 3, 29), False),  # 00:30 BST on the 29th
        (datetime(2027, 3, 28, 0, 30, tzinfo=UTC), date(2027, 3, 29), True),    # 00:30 GMT on the 28th
        # 31 October 2027: the clocks go back at 02:00 BST, so the day is 25 hours long
        (datetime(2027, 10, 30, 23, 30, tzinfo=UTC), date(2027, 11, 1), True),  # 00:30 BST on the 31st
        (datetime(2027, 10, 30, 22, 30, tzinfo=UTC), date(2027, 11, 1), False), # 23:30 BST on the 30th
        (datetime(2027, 10, 31, 23, 30, tzinfo=UTC), date(2027, 11, 1), True),  # 23:30 GMT on the 31st
        (datetime(2027, 11, 1, 0, 30, tzinfo=UTC), date(2027, 11, 1), False),   # 00:30 GMT on the 1st
    ],
)
def test_yesterday_is_a_london_day_across_clock_changes(created_utc, flow_day, reminded):
    signup("edge@example.com", created_at=created_utc)
    run_flow(flow_day, deliver=send_now)
    assert bool(mail.outbox) is reminded


def test_london_days_are_23_and_25_hours_long_on_clock_changes():
    def hours(day):
        # aware datetimes in one zone subtract by the wall clock; elapsed time needs UTC
        start, end = day_bounds(day)
        return (end.astimezone(UTC) - start.astimezone(UTC)) / timedelta(hours=1)

    assert [hours(date(2027, 3, 28)), hours(date(2027, 6, 1)), hours(date(2027, 10, 31))] == [23, 24, 25]


def test_today_is_londons_date():
    assert flow_today(datetime(2027, 1, 15, 23, 30, tzinfo=UTC)) == date(2027, 1, 15)  # GMT
    assert flow_today(datetime(2027, 6, 15, 23, 30, tzinfo=UTC)) == date(2027, 6, 16)  # BST


def test_running_the_flow_twice_sends_each_email_once():
    signup("soon@example.com", trial_ends_on=DAY + timedelta(days=3), verified=True)
    signup("pro@example.com", trial_ends_on=DAY, plan="pro", verified=True)
    signup("lazy@example.com", created_at=datetime(2027, 6, 9, 11, 0, tzinfo=UTC))
    run_flow(DAY, deliver=send_now)
    first = sent()
    again = run_flow(DAY, deliver=send_now)
    assert len(first) == 3 and sent() == first
    assert again.planned == []
    assert SentEmail.objects.count() == 3


def test_the_flow_job_enqueues_one_job_per_email_and_reports_progress(django_capture_on_commit_callbacks):
    signup("soon@example.com", trial_ends_on=DAY + timedelta(days=3), verified=True)
    flow = jobs.Queue().add({"date": DAY.isoformat()}, name="onboarding.daily_flow")
    assert job_execute(job_id=flow.id, worker="w") == "completed"
    flow.reload()
    assert flow.progress() == {"step": 3, "of": 3, "done": True, "emails": 1}
    assert flow.return_value["emails"] == ["trial_ending to soon@example.com"]
    email_job = Job.objects.get(name="onboarding.send_trial_ending_email")
    assert email_job.opts["attempts"] == 5
    # a crashed-and-retried flow adds no second job for the same email
    again = jobs.Queue().add({"date": DAY.isoformat()}, name="onboarding.daily_flow")
    job_execute(job_id=again.id, worker="w")
    assert Job.objects.filter(name="onboarding.send_trial_ending_email").count() == 1
    assert job_execute(job_id=email_job.pk, worker="w") == "completed"
    assert sent() == [("soon@example.com", "Your trial ends in 3 days")]


def test_beat_firing_twice_on_one_day_adds_one_flow_job():
    assert start_daily_flow() is not None
    assert start_daily_flow() is None
    assert Job.objects.filter(name="onboarding.daily_flow").count() == 1


def test_the_command_dry_run_changes_and_sends_nothing(capsys):
    _, account = signup("pro@example.com", trial_ends_on=DAY, plan="pro", verified=True)
    call_command("onboarding_run", "--date", DAY.isoformat(), "--dry-run")
    out = capsys.readouterr().out
    assert "would send: trial_ended to pro@example.com" in out and f"would upgrade: account {account.pk} to pro" in out
    account.refresh_from_db()
    assert (account.upgraded_to, mail.outbox) == ("", [])
    call_command("onboarding_run", "--date", DAY.isoformat())
    assert "sent: trial_ended to pro@example.com" in capsys.readouterr().out
    assert len(mail.outbox) == 1


def test_the_command_refuses_a_bad_date():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--date must be YYYY-MM-DD, not '10/06/2027'."):
        call_command("onboarding_run", "--date", "10/06/2027")


def test_the_schedule_is_1205_london_time_in_the_admin_schedule():
    from django_celery_beat.models import PeriodicTask

    from gravity.celery import app

    entry = PeriodicTask.objects.get(name="onboarding: daily flow")
    crontab = entry.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) == ("5", "12", "*", "Europe/London")
    assert entry.task in app.tasks and entry.enabled
    # beat reads it as a crontab in London time, so 12:05 stays 12:05 across clock changes
    schedule = crontab.schedule
    assert (schedule.hour, schedule.minute, str(schedule.tz)) == ({12}, {5}, "Europe/London")
