"""Admin for accounts, memberships and API keys (keys are shown by prefix only)."""

from django.contrib import admin

from .models import Account, ApiKey, EmailVerification, Membership


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


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "user", "account", "scopes", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    readonly_fields = ["prefix", "key_hash", "user", "account", "scopes", "created_at", "last_used_at"]
    fields = ["name", "prefix", "user", "account", "scopes", "created_at", "last_used_at", "revoked_at"]

    def has_add_permission(self, request):
        # Keys are made with `manage.py create_api_key`, which shows the clear key once.
        return False
