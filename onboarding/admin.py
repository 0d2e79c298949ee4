"""The outbox of onboarding emails, read-only."""

from django.contrib import admin

from .models import SentEmail


@admin.register(SentEmail)
class SentEmailAdmin(admin.ModelAdmin):
    list_display = ["to", "purpose", "state", "reserved_at", "sent_at"]
    list_filter = ["state", "purpose"]
    search_fields = ["to"]
    readonly_fields = ["user", "purpose", "to", "state", "reserved_at", "sent_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
