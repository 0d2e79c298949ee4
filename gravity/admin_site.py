"""This project's changes to the admin: a way to the job dashboard, no empty Celery results, beat tasks registered."""

from django.contrib import admin
from django_celery_beat.admin import PeriodicTaskAdmin, PeriodicTaskForm
from django_celery_beat.models import PeriodicTask
from django_celery_results.models import GroupResult, TaskResult

# The index links the job dashboard (the template adds a box above the apps).
admin.site.index_template = "jobs/admin/index.html"

# Jobs are the record of background work here: django-celery-results only keeps what plain Celery
# tasks return (the beat task ignores its result), so its sections would always be empty. The
# tables stay, as the result backend of any plain task you add (TaskResult.objects).
admin.site.unregister(TaskResult)
admin.site.unregister(GroupResult)


class RegisteredTaskForm(PeriodicTaskForm):
    """django-celery-beat's form, with the task chosen under "Task (registered)" when the web process knows it.

    The stock form never fills that select from the saved task: it shows every task's name under
    "Task (custom)", as if no worker knew it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        task = self.instance.task if self.instance.pk else ""
        if task and task in {value for value, _ in self.fields["regtask"].widget.choices}:
            self.initial["regtask"] = task
            self.initial["task"] = ""


class ProjectPeriodicTaskAdmin(PeriodicTaskAdmin):
    form = RegisteredTaskForm


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, ProjectPeriodicTaskAdmin)
