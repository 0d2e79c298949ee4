"""The record of onboarding emails sent, read-only."""

from django.contrib import admin

from .models import SentEmail


@admin.register(SentEmail)
class SentEmailAdmin(admin.ModelAdmin):
    list_display = ["to", "purpose", "sent_at"]
    list_filter = ["purpose"]
    search_fields = ["to"]
    readonly_fields = ["user", "purpose", "to", "sent_at"]

    def has_add_permission(self, request):
        return False
