"""Build and send one onboarding email, at most once per user and purpose."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string

from .models import Purpose, SentEmail

logger = logging.getLogger(__name__)


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

    The record of the send is written in the transaction that sends: if the mail server fails,
    the record is rolled back and a retry may send; once it commits, nothing sends again, however
    many jobs, workers or beat ticks ask.
    """
    try:
        with transaction.atomic():
            SentEmail.objects.create(user=user, purpose=purpose, to=user.email)
            build_message(user=user, purpose=purpose, context=context or {}).send()
    except IntegrityError:
        logger.info("Onboarding email %s to user %s was already sent", purpose, user.pk)
        return False
    return True
