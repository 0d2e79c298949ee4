"""Sending an onboarding email: two parts, once per user and purpose, through an outbox row, never in a transaction."""

import smtplib
from datetime import timedelta

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.db import connection
from django.utils import timezone

from onboarding.emails import EmailBeingSent, reservation_timeout, send_once
from onboarding.models import EmailState, Purpose, SentEmail

pytestmark = pytest.mark.django_db
real_send = EmailMultiAlternatives.send


def test_an_email_has_a_text_and_an_html_part(make_user):
    user = make_user("ann", email="ann@example.com")
    assert send_once(user=user, purpose=Purpose.VERIFICATION, context={"verify_url": "http://x/verify?token=t"}) is True
    [message] = mail.outbox
    assert (message.to, message.subject) == (["ann@example.com"], "Verify your email address")
    assert "http://x/verify?token=t" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and 'href="http://x/verify?token=t"' in html


def test_the_same_email_is_sent_at_most_once(make_user):
    user = make_user("ann", email="ann@example.com")
    assert send_once(user=user, purpose=Purpose.WELCOME) is True
    assert send_once(user=user, purpose=Purpose.WELCOME) is False
    assert len(mail.outbox) == 1
    row = SentEmail.objects.get()
    assert (row.state, row.to, row.sent_at is not None) == (EmailState.SENT, "ann@example.com", True)
    assert send_once(user=user, purpose=Purpose.PLAN_SELECTED, context={"account": user.memberships.get().account}) is True


def test_a_mail_server_error_releases_the_reservation_so_a_retry_can_send(make_user, monkeypatch):
    user = make_user("ann", email="ann@example.com")

    def refuse(self, fail_silently=False):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    with monkeypatch.context() as patched:
        patched.setattr(EmailMultiAlternatives, "send", refuse)
        with pytest.raises(smtplib.SMTPServerDisconnected, match="Connection unexpectedly closed"):
            send_once(user=user, purpose=Purpose.WELCOME)
    assert SentEmail.objects.count() == 0
    assert send_once(user=user, purpose=Purpose.WELCOME) is True
    assert len(mail.outbox) == 1


def test_a_mail_server_timeout_releases_the_reservation_too(make_user, monkeypatch):
    user = make_user("ann", email="ann@example.com")

    def hang(self, fail_silently=False):
        raise TimeoutError("timed out")

    monkeypatch.setattr(EmailMultiAlternatives, "send", hang)
    with pytest.raises(TimeoutError):
        send_once(user=user, purpose=Purpose.WELCOME)
    assert SentEmail.objects.count() == 0


def test_a_second_sender_while_the_first_talks_to_the_mail_server_sends_nothing(make_user, monkeypatch):
    user = make_user("ann", email="ann@example.com")
    second: list[BaseException] = []

    def send_while_another_sender_tries(self, fail_silently=False):
        # The first sender holds the reservation now; a second one (a stalled job's re-run) arrives.
        try:
            send_once(user=user, purpose=Purpose.WELCOME)
        except EmailBeingSent as exc:
            second.append(exc)
        return real_send(self, fail_silently)

    monkeypatch.setattr(EmailMultiAlternatives, "send", send_while_another_sender_tries)
    assert send_once(user=user, purpose=Purpose.WELCOME) is True
    assert [str(exc) for exc in second] == [
        f"The welcome email to user {user.pk} is being sent by another sender; "
        "not sending it twice (a retry finds it sent, or its sender gone)."
    ]
    assert len(mail.outbox) == 1 and SentEmail.objects.get().state == EmailState.SENT
    # the second sender's retry finds it sent
    assert send_once(user=user, purpose=Purpose.WELCOME) is False


def test_a_crash_between_send_and_mark_sends_again_once_the_reservation_is_abandoned(make_user, monkeypatch):
    user = make_user("ann", email="ann@example.com")

    def killed(self):
        raise SystemExit("the worker was killed")  # the mail went; the mark never happened

    with monkeypatch.context() as patched:
        patched.setattr(SentEmail, "mark_sent", killed)
        with pytest.raises(SystemExit):
            send_once(user=user, purpose=Purpose.VERIFICATION, context={"verify_url": "http://x/v"})
    assert len(mail.outbox) == 1
    row = SentEmail.objects.get()
    assert (row.state, row.sent_at) == (EmailState.SENDING, None)

    # a retry while the reservation could still be a live sender's: nothing is sent
    with pytest.raises(EmailBeingSent):
        send_once(user=user, purpose=Purpose.VERIFICATION, context={"verify_url": "http://x/v"})
    assert len(mail.outbox) == 1

    # once older than the bound, the reservation is abandoned: sent again (at least once), then marked
    SentEmail.objects.filter(pk=row.pk).update(reserved_at=timezone.now() - reservation_timeout() - timedelta(seconds=1))
    assert send_once(user=user, purpose=Purpose.VERIFICATION, context={"verify_url": "http://x/v"}) is True
    assert len(mail.outbox) == 2
    assert SentEmail.objects.get().state == EmailState.SENT
    assert send_once(user=user, purpose=Purpose.VERIFICATION, context={"verify_url": "http://x/v"}) is False


def test_a_slow_sender_whose_reservation_was_taken_over_does_not_mark_the_new_senders_row(make_user, monkeypatch):
    user = make_user("ann", email="ann@example.com")

    def outlived(self, fail_silently=False):
        # This sender took so long that its reservation counted as abandoned and another took it over.
        SentEmail.objects.update(reserved_at=timezone.now() + timedelta(seconds=5))
        return real_send(self, fail_silently)

    monkeypatch.setattr(EmailMultiAlternatives, "send", outlived)
    assert send_once(user=user, purpose=Purpose.WELCOME) is True
    assert SentEmail.objects.get().state == EmailState.SENDING  # left to the sender that holds it


def test_the_reservation_bound_follows_email_timeout(settings):
    settings.EMAIL_TIMEOUT = 30
    assert reservation_timeout() == timedelta(minutes=5)
    settings.EMAIL_TIMEOUT = 1
    assert reservation_timeout() == timedelta(minutes=1)


@pytest.mark.django_db(transaction=True)
def test_the_mail_server_is_called_outside_any_transaction_with_the_reservation_committed(make_user, monkeypatch):
    user = make_user("ann", email="ann@example.com")
    seen = []

    def observe(self, fail_silently=False):
        seen.append((connection.in_atomic_block, list(SentEmail.objects.values_list("state", flat=True))))
        return real_send(self, fail_silently)

    monkeypatch.setattr(EmailMultiAlternatives, "send", observe)
    assert send_once(user=user, purpose=Purpose.WELCOME) is True
    assert seen == [(False, [EmailState.SENDING])]


def test_a_template_error_leaves_no_reservation(make_user, monkeypatch):
    from django.template import TemplateSyntaxError

    def broken(name, context):
        raise TemplateSyntaxError(f"Invalid block tag in {name}")

    user = make_user("ann", email="ann@example.com")
    monkeypatch.setattr("onboarding.emails.render_to_string", broken)
    with pytest.raises(TemplateSyntaxError, match="Invalid block tag in onboarding/email/welcome.subject.txt"):
        send_once(user=user, purpose=Purpose.WELCOME)
    assert SentEmail.objects.count() == 0
