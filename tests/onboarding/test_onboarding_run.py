"""The onboarding_run command: add the day's flow job for the workers (as beat does), or run it here."""

import smtplib
from datetime import UTC, date, datetime

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.core.management import CommandError, call_command

from accounts.models import Account
from jobs.models import Job
from onboarding.flow import flow_today
from onboarding.models import SentEmail
from onboarding.tasks import start_daily_flow

pytestmark = pytest.mark.django_db
DAY = date(2027, 6, 10)
WARNING = (
    "Warning: EMAIL_BACKEND is django.core.mail.backends.locmem.EmailBackend, which does not deliver email: "
    "the emails below are recorded as sent and will never arrive. Set EMAIL_URL (in the environment or .env), "
    "or leave out --in-process to let a worker send them.\n"
)


def trial_account(email, *, plan="pro", ends_on=DAY):
    user = get_user_model().objects.create_user(username=email, email=email)
    account = user.memberships.get().account
    Account.objects.filter(pk=account.pk).update(created_at=datetime(2027, 1, 1, tzinfo=UTC), trial_ends_on=ends_on, plan=plan)
    return account


def test_by_default_it_adds_the_days_flow_job_for_the_workers_and_does_nothing_itself(capsys):
    account = trial_account("pro@example.com", ends_on=flow_today())
    call_command("onboarding_run")
    job_id = f"onboarding-daily-{flow_today().isoformat()}"
    assert capsys.readouterr() == (f"Added the onboarding flow job {job_id}: a worker runs it and sends the emails.\n", "")
    job = Job.objects.get()
    assert (job.public_id, job.name, job.data, job.state, job.opts["attempts"]) == (
        job_id, "onboarding.daily_flow", {"date": flow_today().isoformat()}, "waiting", 3)
    account.refresh_from_db()
    assert (account.trial_ended_at, mail.outbox) == (None, [])


def test_the_command_and_beat_add_one_flow_job_per_day_between_them(capsys):
    call_command("onboarding_run")
    assert start_daily_flow() is None  # beat at 12:05 finds the command's job
    call_command("onboarding_run")
    job_id = f"onboarding-daily-{flow_today().isoformat()}"
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"The onboarding flow job {job_id} exists already; nothing added (--in-process runs the flow here).")
    assert Job.objects.filter(name="onboarding.daily_flow").count() == 1


def test_a_date_adds_that_days_job():
    call_command("onboarding_run", "--date", DAY.isoformat())
    assert Job.objects.get().public_id == "onboarding-daily-2027-06-10"


def test_in_process_runs_the_flow_and_sends_here_warning_that_this_backend_delivers_nothing(capsys):
    account = trial_account("pro@example.com")
    call_command("onboarding_run", "--date", DAY.isoformat(), "--in-process")
    out, err = capsys.readouterr()
    assert err == WARNING
    assert out.splitlines() == [
        "Onboarding flow for 2027-06-10:",
        "  sent: trial_ended to pro@example.com",
        f"  upgraded: account {account.pk} to pro",
    ]
    assert [m.subject for m in mail.outbox] == ["Your trial has ended: welcome to pro"]
    assert Job.objects.count() == 0


def test_in_process_with_a_delivering_backend_does_not_warn(capsys, settings, tmp_path):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    trial_account("pro@example.com")
    call_command("onboarding_run", "--date", DAY.isoformat(), "--in-process")
    out, err = capsys.readouterr()
    assert err == "" and "  sent: trial_ended to pro@example.com" in out
    assert len(list(tmp_path.iterdir())) == 1


def test_in_process_hands_an_email_that_fails_to_the_workers(capsys, monkeypatch):
    account = trial_account("pro@example.com")

    def refuse(self, fail_silently=False):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    monkeypatch.setattr(EmailMultiAlternatives, "send", refuse)
    call_command("onboarding_run", "--date", DAY.isoformat(), "--in-process")
    assert "  not sent (SMTPServerDisconnected: Connection unexpectedly closed); its job is added for the workers, " \
           "which retry it: trial_ended to pro@example.com" in capsys.readouterr().out
    job = Job.objects.get()
    user_id = account.memberships.get().user_id
    assert (job.public_id, job.data["args"]) == (f"onboarding-trial_ended-{user_id}", [user_id, account.pk])
    assert SentEmail.objects.count() == 0  # the reservation was released: the job can send
    account.refresh_from_db()
    assert account.upgraded_to == "pro"


def test_the_dry_run_changes_and_sends_nothing(capsys):
    account = trial_account("pro@example.com")
    free = trial_account("free@example.com", plan="")
    call_command("onboarding_run", "--date", DAY.isoformat(), "--dry-run")
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "Onboarding flow for 2027-06-10 (dry run):",
        "  would send: trial_ended to pro@example.com",
        f"  would upgrade: account {account.pk} to pro",
        f"  trial would end without a plan: account {free.pk}",
    ]
    assert err == ""  # nothing is sent, so the backend does not matter
    account.refresh_from_db()
    assert (account.upgraded_to, mail.outbox, Job.objects.count()) == ("", [], 0)


def test_the_command_refuses_a_bad_date():
    with pytest.raises(CommandError, match="--date must be YYYY-MM-DD, not '10/06/2027'."):
        call_command("onboarding_run", "--date", "10/06/2027")
