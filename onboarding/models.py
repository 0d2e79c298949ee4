"""The record of onboarding emails sent: at most one per user and purpose."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Purpose(models.TextChoices):
    VERIFICATION = "verification", "Verify your email address"
    VERIFICATION_REMINDER = "verification_reminder", "Reminder: verify your email address"
    WELCOME = "welcome", "Welcome"
    PLAN_SELECTED = "plan_selected", "Plan selected"
    TRIAL_ENDING = "trial_ending", "Trial ends in 3 days"
    TRIAL_ENDED = "trial_ended", "Trial ended, account upgraded"


class SentEmail(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="onboarding_emails")
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    to = models.EmailField()
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "purpose"], name="onboarding_sent_once")]
        indexes = [models.Index(fields=["purpose", "sent_at"], name="onboarding_purpose_sent_idx")]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} to {self.to}"
