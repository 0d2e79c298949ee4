"""Sending an onboarding email: two parts, once per user and purpose, retried on mail errors."""

import smtplib

import pytest
from django.core import mail

from onboarding.emails import send_once
from onboarding.models import Purpose, SentEmail

pytestmark = pytest.mark.django_db


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
    assert len(mail.outbox) == 1 and SentEmail.objects.count() == 1
    assert send_once(user=user, purpose=Purpose.PLAN_SELECTED, context={"account": user.memberships.get().account}) is True


def test_a_mail_server_error_records_nothing_so_a_retry_can_send(make_user, monkeypatch):
    user = make_user("ann", email="ann@example.com")

    def refuse(self, fail_silently=False):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    with monkeypatch.context() as patched:
        patched.setattr("django.core.mail.EmailMultiAlternatives.send", refuse)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            send_once(user=user, purpose=Purpose.WELCOME)
    assert SentEmail.objects.count() == 0
    assert send_once(user=user, purpose=Purpose.WELCOME) is True
    assert len(mail.outbox) == 1
