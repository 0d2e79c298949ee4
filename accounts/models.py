"""Accounts (tenants), their members, and API keys that act for a member."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone

# What an API key may do: each API request needs one (see the README's scope table).
JOB_SCOPES = ("job.create", "job.read", "job.update", "job.delete")
ACCOUNT_SCOPES = ("account.read", "account.update")
SCOPES = JOB_SCOPES + ACCOUNT_SCOPES


class Account(models.Model):
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    # The plan chosen (settings.ACCOUNT_PLANS), the last day of the trial, and when the trial
    # ended: with an upgrade to the chosen plan, or with no plan chosen.
    plan = models.CharField(max_length=50, blank=True, default="")
    plan_selected_at = models.DateTimeField(null=True, blank=True)
    trial_ends_on = models.DateField(null=True, blank=True)
    trial_ended_at = models.DateTimeField(null=True, blank=True)
    upgraded_to = models.CharField(max_length=50, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["trial_ends_on"], name="accounts_trial_ends_idx"),
            models.Index(fields=["created_at"], name="accounts_created_idx"),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "account"], name="accounts_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.account}"


class EmailVerification(models.Model):
    """Whether a user's email address is verified (a user without a row has never verified)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_verification")
    email = models.EmailField()
    verified_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.email} ({'verified' if self.verified_at else 'unverified'})"


def hash_key(key: str) -> str:
    # Keys are long random strings, so one round of SHA-256 is enough; no key is stored in clear.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKey(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, help_text="The start of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    rate_limit = models.CharField(
        max_length=32, blank=True, default="", help_text="Requests allowed, e.g. '600/minute'; blank for the default."
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
