"""A read-only admin for jobs: state and name filters, search by id, readable JSON."""

import json

from django.contrib import admin
from django.utils.html import format_html

from .models import Job


def pretty(value) -> str:
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', json.dumps(value, indent=2, sort_keys=True))


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "state", "progress", "created_at", "finished_on"]
    list_filter = ["state", "name", "queue"]
    search_fields = ["=id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    fieldsets = [
        (None, {"fields": ["id", "name", "queue", "owner", "state", "progress_display"]}),
        ("Input", {"fields": ["data_display", "opts_display"]}),
        ("Outcome", {"fields": ["return_value_display", "failed_reason", "attempts_made", "attempts", "traceback_display"]}),
        ("Times", {"fields": ["created_at", "run_at", "sent_at", "processed_on", "finished_on", "worker"]}),
    ]

    @admin.display(description="data")
    def data_display(self, job):
        return pretty(job.data)

    @admin.display(description="options")
    def opts_display(self, job):
        return pretty(job.opts)

    @admin.display(description="progress")
    def progress_display(self, job):
        return pretty(job.progress)

    @admin.display(description="result")
    def return_value_display(self, job):
        return pretty(job.return_value)

    @admin.display(description="traceback")
    def traceback_display(self, job):
        return format_html(
            '<pre style="white-space: pre-wrap; margin: 0">{}</pre>', "\n\n".join(job.stacktrace) or "-"
        )

    def get_readonly_fields(self, request, obj=None):
        return [field for fieldset in self.fieldsets for field in fieldset[1]["fields"]]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    # Deleting here would skip the guarded remove; jobs are removed through the API or Python.
    def has_delete_permission(self, request, obj=None):
        return False
