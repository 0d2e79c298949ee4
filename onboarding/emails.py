"""Build and send one onboarding email, once per user and purpose, never inside a database transaction."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import timezone

from .models import Purpose, SentEmail

logger = logging.getLogger(__name__)

# A send is about ten exchanges with the mail server (connect, EHLO, STARTTLS, AUTH, MAIL, RCPT,
# DATA, the message, QUIT), each bounded by EMAIL_TIMEOUT: a reservation older than that many
# timeouts (and at least a minute) belongs to a sender that died between sending and marking.
EXCHANGES_PER_SEND = 10
MIN_RESERVATION = timedelta(minutes=1)


class EmailError(Exception):
    """Base class of the errors of sending onboarding emails; never raised itself."""


class EmailBeingSent(EmailError):
    def __init__(self, *, purpose: Purpose, user_id: int):
        super().__init__(
            f"The {purpose.value} email to user {user_id} is being sent by another sender; "
            "not sending it twice (a retry finds it sent, or its sender gone)."
        )


def reservation_timeout() -> timedelta:
    """How long a reservation may stay unmarked before it counts as abandoned and may be sent again."""
    return max(MIN_RESERVATION, timedelta(seconds=EXCHANGES_PER_SEND * float(settings.EMAIL_TIMEOUT or 10)))


def build_message(*, user, purpose: Purpose, context: dict[str, Any]) -> EmailMultiAlternatives:
    """Render the plain-text and HTML parts of `purpose` for `user`."""
    links = {"site_url": settings.SITE_URL, "signin_url": settings.APP_SIGNIN_URL, "plans_url": settings.APP_PLANS_URL}
    context = {"user": user, **links, **context}
    base = f"onboarding/email/{purpose.value}"
    subject = " ".join(render_to_string(f"{base}.subject.txt", context).split())
    message = EmailMultiAlternatives(subject, render_to_string(f"{base}.txt", context), to=[user.email])
    message.attach_alternative(render_to_string(f"{base}.html", context), "text/html")
    return message


def send_once(*, user, purpose: Purpose, context: dict[str, Any] | None = None) -> bool:
    """Send the email unless it was sent before; return whether it was sent now.

    Three short writes, none open while the mail server is talked to: reserve the outbox row (the
    unique (user, purpose) decides between concurrent senders), send, mark it sent. A failed send
    releases the reservation, so the job's retry can send. A sender that dies between sending and
    marking leaves its reservation; once older than reservation_timeout() it is taken over and sent
    again: at least once, since a missing verification email is worse than a duplicate.
    Raises EmailBeingSent while another sender holds a live reservation.
    """
    # Rendered before reserving: a template error must not leave a reservation behind.
    message = build_message(user=user, purpose=purpose, context=context or {})
    reservation = SentEmail.objects.reserve(
        user=user, purpose=purpose, abandoned_before=timezone.now() - reservation_timeout()
    )
    if reservation is None:
        if SentEmail.objects.sent().filter(user=user, purpose=purpose).exists():
            logger.info("Onboarding email %s to user %s was already sent", purpose, user.pk)
            return False
        raise EmailBeingSent(purpose=purpose, user_id=user.pk)
    try:
        message.send()
    except BaseException:
        # Whatever stopped the send (a mail server error, a timeout, the job's time limit), the
        # email may not have gone: give the reservation up so the retry sends.
        reservation.release()
        raise
    if not reservation.mark_sent():
        logger.warning(
            "Onboarding email %s to user %s was taken over while it was sent: it may have gone twice", purpose, user.pk
        )
    return True
