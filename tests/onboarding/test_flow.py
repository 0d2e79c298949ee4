"""The daily flow: everything due and not yet done, across London's clock changes, after missed days, and twice."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

import jobs
from accounts.models import Account, EmailVerification
from jobs.models import Job
from jobs.runner import job_execute
from onboarding.flow import day_bounds, flow_today, run_flow
from onboarding.management.commands.onboarding_run import send_now
from onboarding.models import SentEmail
from onboarding.tasks import start_daily_flow
from onboarding.trials import DatabaseTrials

pytestmark = pytest.mark.django_db
User = get_user_model()
DAY = date(2027, 6, 10)
NOON_UTC = 11  # 12:00 in London in June


def signup(email, *, created_at=None, trial_ends_on=None, plan="", verified=False):
    user = User.objects.create_user(username=email, email=email)
    account = user.memberships.get().account
    Account.objects.filter(pk=account.pk).update(
        created_at=created_at or datetime(2027, 1, 1, tzinfo=UTC), trial_ends_on=trial_ends_on, plan=plan
    )
    EmailVerification.objects.create(user=user, email=email, verified_at=datetime(2027, 1, 1, tzinfo=UTC) if verified else None)
    return user, Account.objects.get(pk=account.pk)


def signed_up_on(day):
    return datetime(day.year, day.month, day.day, NOON_UTC, tzinfo=UTC)


def run_sending(day, **kwargs):
    """Run the flow and send its emails here, after it, as `onboarding_run --in-process` does."""
    planned = []
    report = run_flow(day, deliver=lambda email: planned.append(email) is None, **kwargs)
    for email in planned:
        send_now(email)
    return report


def sent():
    return sorted((m.to[0], m.subject) for m in mail.outbox)


def test_trials_ending_within_three_days_get_one_notice_that_says_when():
    for days in (1, 2, 3, 4):
        signup(f"in{days}@example.com", trial_ends_on=DAY + timedelta(days=days), verified=True)
    signup("today@example.com", trial_ends_on=DAY, verified=True)
    _, ended = signup("ended@example.com", trial_ends_on=DAY + timedelta(days=2), verified=True)
    Account.objects.filter(pk=ended.pk).update(trial_ended_at=datetime(2027, 6, 1, tzinfo=UTC))
    run_sending(DAY)
    assert [m for m in sent() if "ends" in m[1]] == [
        ("in1@example.com", "Your trial ends tomorrow"),
        ("in2@example.com", "Your trial ends in 2 days"),
        ("in3@example.com", "Your trial ends in 3 days"),
    ]
    run_sending(DAY + timedelta(days=1))
    assert [m for m in sent() if "ends" in m[1]][-1] == ("in4@example.com", "Your trial ends in 3 days")
    assert len([m for m in sent() if "ends" in m[1]]) == 4  # one notice each, whatever the day


def test_trials_due_today_or_before_are_ended_upgraded_to_their_plan_and_told():
    _, chosen = signup("pro@example.com", trial_ends_on=DAY, plan="pro", verified=True)
    _, late = signup("late@example.com", trial_ends_on=DAY - timedelta(days=5), plan="starter", verified=True)
    _, none = signup("none@example.com", trial_ends_on=DAY, verified=True)
    _, later = signup("later@example.com", trial_ends_on=DAY + timedelta(days=1), plan="pro", verified=True)
    report = run_sending(DAY)
    for account in (chosen, late, none, later):
        account.refresh_from_db()
    assert (chosen.upgraded_to, chosen.trial_ended_at is not None) == ("pro", True)
    assert (late.upgraded_to, late.trial_ended_at is not None) == ("starter", True)
    # no plan chosen: the trial ends, nothing is upgraded and there is no upgrade email
    assert (none.upgraded_to, none.trial_ended_at is not None) == ("", True)
    assert later.trial_ended_at is None
    assert report.upgraded == [(late.pk, "starter"), (chosen.pk, "pro")] and report.ended_without_plan == [none.pk]
    assert [m for m in sent() if "ended" in m[1]] == [
        ("late@example.com", "Your trial has ended: welcome to starter"),
        ("pro@example.com", "Your trial has ended: welcome to pro"),
    ]


def test_a_trial_ended_before_is_not_ended_again():
    _, account = signup("pro@example.com", trial_ends_on=DAY - timedelta(days=1), plan="pro", verified=True)
    ended_at = datetime(2027, 6, 9, 11, 5, tzinfo=UTC)
    Account.objects.filter(pk=account.pk).update(trial_ended_at=ended_at, upgraded_to="pro")
    report = run_sending(DAY)
    account.refresh_from_db()
    assert (report.upgraded, report.planned, account.trial_ended_at, mail.outbox) == ([], [], ended_at, [])


def test_the_plan_chosen_while_the_flow_runs_is_the_one_upgraded_to():
    _, account = signup("pro@example.com", trial_ends_on=DAY, plan="starter", verified=True)
    [due] = DatabaseTrials().due_on_or_before(DAY)
    Account.objects.filter(pk=account.pk).update(plan="business")  # chosen after the list was read
    assert DatabaseTrials().end_trial(due) == "business"


def test_unverified_signups_of_the_last_seven_days_get_one_reminder():
    for days_ago in (0, 1, 3, 7, 8):
        signup(f"ago{days_ago}@example.com", created_at=signed_up_on(DAY - timedelta(days=days_ago)))
    signup("done@example.com", created_at=signed_up_on(DAY - timedelta(days=1)), verified=True)
    User.objects.create_user("admin-made", email="admin@example.com")  # never signed up: no verification record
    report = run_sending(DAY)
    assert sent() == [(f"ago{n}@example.com", "Reminder: please verify your email address") for n in (1, 3, 7)]
    bodies = {m.to[0]: m.body for m in mail.outbox}
    assert "You signed up yesterday but" in bodies["ago1@example.com"]
    assert "You signed up 3 days ago but" in bodies["ago3@example.com"]
    assert [str(email) for email in report.planned] == [f"verification_reminder to ago{n}@example.com" for n in (1, 3, 7)]
    # the next day: the one reminded yesterday is not reminded again, the newest is reminded now
    run_sending(DAY + timedelta(days=1))
    assert len(mail.outbox) == 4 and mail.outbox[-1].to == ["ago0@example.com"]


@pytest.mark.parametrize(
    ("created_utc", "flow_day", "reminded"),
    [
        # 28 March 2027: the clocks go forward at 01:00 GMT, so the day is 23 hours long
        (datetime(2027, 3, 28, 22, 30, tzinfo=UTC), date(2027, 3, 29), True),   # 23:30 BST on the 28th
        (datetime(2027, 3, 28, 23, 30, tzinfo=UTC), date(2027, 3, 29), False),  # 00:30 BST on the 29th: today
        (datetime(2027, 3, 22, 0, 30, tzinfo=UTC), date(2027, 3, 29), True),    # 00:30 GMT on the 22nd: 7 days ago
        (datetime(2027, 3, 21, 23, 30, tzinfo=UTC), date(2027, 3, 29), False),  # 23:30 GMT on the 21st: 8 days ago
        # 31 October 2027: the clocks go back at 02:00 BST, so the day is 25 hours long
        (datetime(2027, 10, 31, 23, 30, tzinfo=UTC), date(2027, 11, 1), True),  # 23:30 GMT on the 31st
        (datetime(2027, 11, 1, 0, 30, tzinfo=UTC), date(2027, 11, 1), False),   # 00:30 GMT on the 1st: today
        (datetime(2027, 10, 24, 23, 30, tzinfo=UTC), date(2027, 11, 1), True),  # 00:30 BST on the 25th: 7 days ago
        (datetime(2027, 10, 24, 22, 30, tzinfo=UTC), date(2027, 11, 1), False), # 23:30 BST on the 24th: 8 days ago
    ],
)
def test_the_reminder_window_is_london_days_across_clock_changes(created_utc, flow_day, reminded):
    signup("edge@example.com", created_at=created_utc)
    run_sending(flow_day)
    assert bool(mail.outbox) is reminded


def test_two_missed_days_are_made_good_by_the_third_run():
    # What the runs of 10 and 11 June would have done, had beat or Redis not been down.
    _, due_on_10th = signup("pro@example.com", trial_ends_on=DAY, plan="pro", verified=True)
    _, due_on_11th = signup("free@example.com", trial_ends_on=DAY + timedelta(days=1), verified=True)
    signup("soon@example.com", trial_ends_on=DAY + timedelta(days=4), verified=True)  # notice due on the 11th
    signup("lazy@example.com", created_at=signed_up_on(DAY - timedelta(days=1)))      # reminder due on the 10th
    signup("newer@example.com", created_at=signed_up_on(DAY + timedelta(days=1)))     # reminder due on the 12th
    third = DAY + timedelta(days=2)

    dry = run_flow(third, dry_run=True)
    report = run_sending(third)
    for account in (due_on_10th, due_on_11th):
        account.refresh_from_db()
    assert (due_on_10th.upgraded_to, due_on_11th.trial_ended_at is not None) == ("pro", True)
    assert report.upgraded == [(due_on_10th.pk, "pro")] and report.ended_without_plan == [due_on_11th.pk]
    assert sent() == [
        ("lazy@example.com", "Reminder: please verify your email address"),
        ("newer@example.com", "Reminder: please verify your email address"),
        ("pro@example.com", "Your trial has ended: welcome to pro"),
        ("soon@example.com", "Your trial ends in 2 days"),
    ]
    assert "You signed up 3 days ago" in next(m.body for m in mail.outbox if m.to == ["lazy@example.com"])
    # the dry run the same day told exactly what the real run then did
    assert (dry.planned, dry.upgraded, dry.ended_without_plan) == (report.planned, report.upgraded, report.ended_without_plan)
    # and a run the day after finds nothing left to do
    after = run_sending(third + timedelta(days=1))
    assert (after.planned, after.upgraded, after.ended_without_plan, len(mail.outbox)) == ([], [], [], 4)


def test_the_dry_run_changes_and_sends_nothing():
    _, account = signup("pro@example.com", trial_ends_on=DAY, plan="pro", verified=True)
    signup("lazy@example.com", created_at=signed_up_on(DAY - timedelta(days=2)))
    report = run_flow(DAY, dry_run=True)
    assert [str(email) for email in report.planned] == ["trial_ended to pro@example.com", "verification_reminder to lazy@example.com"]
    assert report.upgraded == [(account.pk, "pro")]
    account.refresh_from_db()
    assert (account.trial_ended_at, account.upgraded_to, mail.outbox, Job.objects.count(), SentEmail.objects.count()) == (None, "", [], 0, 0)


def test_the_report_leaves_out_what_another_run_already_did():
    signup("lazy@example.com", created_at=signed_up_on(DAY - timedelta(days=1)))
    assert [str(email) for email in run_flow(DAY).planned] == ["verification_reminder to lazy@example.com"]
    # the email's job exists (the first run added it; it has not sent yet): not planned again
    assert run_flow(DAY).planned == []
    assert Job.objects.filter(name="onboarding.send_verification_reminder").count() == 1


class RacingTrials(DatabaseTrials):
    """Another flow ends each trial just before this one tries."""

    def end_trial(self, account):
        DatabaseTrials().end_trial(account)
        return super().end_trial(account)


def test_a_trial_another_run_ended_first_is_not_reported_or_announced_twice(settings):
    settings.ONBOARDING = {**settings.ONBOARDING, "TRIALS": "tests.onboarding.test_flow.RacingTrials"}
    _, account = signup("pro@example.com", trial_ends_on=DAY, plan="pro", verified=True)
    report = run_flow(DAY)
    account.refresh_from_db()
    assert (account.upgraded_to, report.upgraded, report.planned, Job.objects.count()) == ("pro", [], [], 0)


def test_a_crash_while_adding_a_trials_emails_leaves_the_trial_due_for_the_next_run():
    _, account = signup("pro@example.com", trial_ends_on=DAY, plan="pro", verified=True)

    def killed(email):
        raise RuntimeError("worker killed")

    with pytest.raises(RuntimeError, match="worker killed"):
        run_flow(DAY, deliver=killed)
    account.refresh_from_db()
    assert (account.trial_ended_at, account.upgraded_to) == (None, "")  # rolled back with the emails
    report = run_flow(DAY)
    account.refresh_from_db()
    assert (account.upgraded_to, [str(email) for email in report.planned]) == ("pro", ["trial_ended to pro@example.com"])
    assert Job.objects.get(name="onboarding.send_trial_ended_email").data["args"] == [account.memberships.get().user_id, account.pk]


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
    signup("lazy@example.com", created_at=signed_up_on(DAY - timedelta(days=1)))
    run_sending(DAY)
    first = sent()
    again = run_sending(DAY)
    assert len(first) == 3 and sent() == first
    assert (again.planned, again.upgraded) == ([], [])
    assert SentEmail.objects.sent().count() == 3


def test_the_flow_job_enqueues_one_job_per_email_and_reports_progress(django_capture_on_commit_callbacks):
    signup("soon@example.com", trial_ends_on=DAY + timedelta(days=3), verified=True)
    flow = jobs.Queue().add({"date": DAY.isoformat()}, name="onboarding.daily_flow")
    assert job_execute(job_id=flow.id, worker="w") == "completed"
    flow.reload()
    assert flow.progress() == {"step": 3, "of": 3, "done": True, "emails": 1}
    assert flow.return_value["emails"] == ["trial_ending to soon@example.com"]
    email_job = Job.objects.get(name="onboarding.send_trial_ending_email")
    assert email_job.opts["attempts"] == 5
    # a crashed-and-retried flow adds no second job for the same email, and says so
    again = jobs.Queue().add({"date": DAY.isoformat()}, name="onboarding.daily_flow")
    job_execute(job_id=again.id, worker="w")
    assert again.reload().return_value["emails"] == []
    assert Job.objects.filter(name="onboarding.send_trial_ending_email").count() == 1
    assert job_execute(job_id=email_job.pk, worker="w") == "completed"
    assert sent() == [("soon@example.com", "Your trial ends in 3 days")]


def test_beat_firing_twice_on_one_day_adds_one_flow_job():
    assert start_daily_flow() == f"onboarding-daily-{flow_today().isoformat()}"
    assert start_daily_flow() is None
    assert Job.objects.filter(name="onboarding.daily_flow").count() == 1


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
