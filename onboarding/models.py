"""The outbox of onboarding emails: one row per user and purpose, reserved before sending and marked once sent."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone


class Purpose(models.TextChoices):
    VERIFICATION = "verification", "Verify your email address"
    VERIFICATION_REMINDER = "verification_reminder", "Reminder: verify your email address"
    WELCOME = "welcome", "Welcome"
    PLAN_SELECTED = "plan_selected", "Plan selected"
    TRIAL_ENDING = "trial_ending", "Trial ends in 3 days"
    TRIAL_ENDED = "trial_ended", "Trial ended, account upgraded"


class EmailState(models.TextChoices):
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"


class SentEmailQuerySet(models.QuerySet):
    def sending(self) -> SentEmailQuerySet:
        return self.filter(state=EmailState.SENDING)

    def sent(self) -> SentEmailQuerySet:
        return self.filter(state=EmailState.SENT)

    def reserve(self, *, user, purpose: Purpose, abandoned_before: datetime) -> SentEmail | None:
        """Reserve (user, purpose) for one sender; None if another sender holds or has sent it.

        A new row wins through the unique constraint; a reservation older than `abandoned_before`
        belonged to a sender that died between sending and marking, and is taken over.
        """
        now = timezone.now()
        try:
            # A savepoint, so a lost race leaves the caller's transaction (a test's, say) usable.
            with transaction.atomic():
                return self.create(user=user, purpose=purpose, to=user.email, reserved_at=now)
        except IntegrityError:
            pass
        # Guarded: of two senders taking over one abandoned reservation, one changes the row.
        taken = self.sending().filter(user=user, purpose=purpose, reserved_at__lt=abandoned_before).update(
            reserved_at=now, to=user.email
        )
        return self.get(user=user, purpose=purpose) if taken else None


class SentEmail(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="onboarding_emails")
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    to = models.EmailField()
    state = models.CharField(max_length=16, choices=EmailState.choices, default=EmailState.SENDING)
    # When the current sender reserved the row; also the fence that proves the row is still its own.
    reserved_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = SentEmailQuerySet.as_manager()

    class Meta:
        verbose_name = "onboarding email"
        constraints = [models.UniqueConstraint(fields=["user", "purpose"], name="onboarding_sent_once")]
        indexes = [models.Index(fields=["purpose", "sent_at"], name="onboarding_purpose_sent_idx")]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} to {self.to}"

    def _own(self) -> SentEmailQuerySet:
        # Still this sender's reservation: nobody marked it, released it or took it over since.
        return SentEmail.objects.sending().filter(pk=self.pk, reserved_at=self.reserved_at)

    def mark_sent(self) -> bool:
        """Record the send; False if the reservation was taken over meanwhile (then it may have gone twice)."""
        now = timezone.now()
        if not self._own().update(state=EmailState.SENT, sent_at=now):
            return False
        self.state, self.sent_at = EmailState.SENT, now
        return True

    def release(self) -> bool:
        """Give the reservation up after a failed send, so a retry may send."""
        deleted, _ = self._own().delete()
        return bool(deleted)
