"""Onboarding's emails follow what happens to accounts: each signal adds the email's job (sent after commit)."""

from accounts import signals

from . import tasks


def on_signed_up(sender, user, account, **kwargs) -> None:
    tasks.send_verification_email.delay(user.pk)


def on_email_verified(sender, user, **kwargs) -> None:
    tasks.send_welcome_email.delay(user.pk)


def on_plan_selected(sender, user, account, **kwargs) -> None:
    tasks.send_plan_selected_email.delay(user.pk, account.pk)


def connect() -> None:
    signals.user_signed_up.connect(on_signed_up, dispatch_uid="onboarding.verification")
    signals.email_verified.connect(on_email_verified, dispatch_uid="onboarding.welcome")
    signals.plan_selected.connect(on_plan_selected, dispatch_uid="onboarding.plan_selected")
