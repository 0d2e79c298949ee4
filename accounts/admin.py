"""Admin for accounts, memberships and API keys (keys are shown by prefix only, and revoked with an action)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import ngettext

from .models import SCOPES, Account, ApiKey, EmailVerification, Membership
from .services import api_keys_revoke


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "plan", "trial_ends_on", "trial_ended_at", "upgraded_to", "created_at"]
    list_filter = ["plan", "upgraded_to"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(EmailVerification)
class EmailVerificationAdmin(admin.ModelAdmin):
    list_display = ["email", "user", "verified_at"]
    search_fields = ["email"]
    readonly_fields = ["user", "email"]


class KeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("active", "active"), ("revoked", "revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> QuerySet[ApiKey]:
        if self.value() in ("active", "revoked"):
            return queryset.filter(revoked_at__isnull=self.value() == "active")
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "account", "scopes_shown", "last_used", "status"]
    list_display_links = ["name", "prefix"]
    list_select_related = ["user", "account"]
    list_filter = [KeyStatusFilter]
    search_fields = ["prefix", "name", "user__username", "user__email", "account__name"]
    search_help_text = "The start of a key, its name, its user's name or email, or its account's name."
    ordering = ["-created_at"]
    actions = ["revoke"]
    # A key is revoked with the action, never by typing a date.
    readonly_fields = ["prefix", "key_hash", "user", "account", "scopes", "created_at", "last_used_at", "revoked_at"]
    fields = ["name", "prefix", "user", "account", "scopes", "created_at", "last_used_at", "revoked_at"]

    @admin.display(description="scopes")
    def scopes_shown(self, key: ApiKey) -> str:
        return "all" if set(key.scopes) == set(SCOPES) else ", ".join(key.scopes)

    @admin.display(description="last used", ordering="last_used_at")
    def last_used(self, key: ApiKey) -> str:
        # Recorded to the minute (accounts.services.LAST_USED_PRECISION).
        return f"{timezone.localtime(key.last_used_at):%Y-%m-%d %H:%M}" if key.last_used_at else "never"

    @admin.display(description="status", ordering="revoked_at")
    def status(self, key: ApiKey) -> str:
        return "active" if key.revoked_at is None else f"revoked {timezone.localtime(key.revoked_at):%Y-%m-%d %H:%M}"

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        selected = list(queryset)
        revoked = api_keys_revoke(keys=selected)
        if revoked:
            message = ngettext(
                "{n} API key revoked: requests with it are now refused (401).",
                "{n} API keys revoked: requests with them are now refused (401).",
                revoked,
            )
            self.message_user(request, message.format(n=revoked), messages.SUCCESS)
        earlier = len(selected) - revoked
        if earlier:
            message = ngettext(
                "{n} selected key was already revoked.", "{n} selected keys were already revoked.", earlier
            )
            self.message_user(request, message.format(n=earlier), messages.WARNING)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Keys are made with `manage.py create_api_key`, which shows the clear key once.
        return False
