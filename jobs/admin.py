"""The jobs admin: a list that fits a laptop, the API's actions, a readable detail page, a dashboard; no edits."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ALL_VAR, ORDER_VAR, PAGE_VAR, SEARCH_VAR, ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import SafeString
from django.utils.translation import ngettext

from . import conf, counts, dashboard, registry, services
from .display import age, duration, is_number, owner_names, run_seconds, run_time
from .errors import JobError
from .models import Job, JobState

# Filters offer the values of this many newest jobs (plus the registry's), never a DISTINCT
# over the whole table, which would cost a full scan on every page of a big table.
RECENT_VALUES = 500


def pretty(value: Any) -> SafeString:
    return format_html('<pre class="jobs-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True))


def exact(moment: datetime | None) -> str:
    """A time to the second, in the site's time zone."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "-"


def state_badge(state: str) -> SafeString:
    return format_html('<span class="jobs-state jobs-state--{}">{}</span>', state, state)


def progress_bar(value: Any) -> SafeString:
    """A number as a bar with its percentage; text or JSON as the job reported it, cut to fit."""
    if is_number(value):
        width = max(0.0, min(100.0, float(value)))
        return format_html(
            '<span class="jobs-progress" role="progressbar" aria-valuenow="{}" aria-valuemin="0" aria-valuemax="100">'
            '<span class="jobs-progress__bar" style="width: {}%"></span></span>'
            '<span class="jobs-progress__value">{}%</span>',
            f"{width:g}", f"{width:g}", f"{value:g}",
        )
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return format_html('<span class="jobs-progress-text" title="{}">{}</span>', text, text)


def time_field(field: str, description: str) -> Callable[[Any, Job], str]:
    """A read-only field showing the job's time `field` to the second."""

    @admin.display(description=description)
    def show(model_admin: Any, job: Job) -> str:
        return exact(getattr(job, field))

    return show


class RecentValuesFilter(admin.SimpleListFilter):
    """Choices from the newest jobs and from `known()`, plus the one chosen: cheap on any table size."""

    field: str

    def known(self) -> set[str]:
        return set()

    def labels(self, values: set[str]) -> dict[str, str]:
        return {value: value for value in values}

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        recent = Job.objects.order_by("-created_at").values_list(self.field, flat=True)[:RECENT_VALUES]
        values = set(recent) | self.known() | ({self.value()} if self.value() is not None else set())
        return sorted(self.labels(values).items(), key=lambda choice: choice[1].lower())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        return queryset if self.value() is None else queryset.filter(**{self.field: self.value()})


class NameFilter(RecentValuesFilter):
    title = "name"
    parameter_name = field = "name"

    def known(self) -> set[str]:
        return set(registry.names())


class QueueFilter(RecentValuesFilter):
    title = "queue"
    parameter_name = field = "queue"

    def known(self) -> set[str]:
        functions = map(registry.get, registry.names())
        return {conf.get("QUEUE")} | {function.queue for function in functions if function.queue}


class OwnerFilter(RecentValuesFilter):
    title = "owner"
    parameter_name = field = "owner"

    def labels(self, values: set[str]) -> dict[str, str]:
        return owner_names(values)


# The list's query parameters that leave its count alone: a page, an order, "show all".
UNCOUNTED_PARAMS = {PAGE_VAR, ORDER_VAR, ALL_VAR}
# The filters the job counts are kept by (jobs/counts.py): parameter -> field of a count.
COUNTED_FILTERS = {"state__exact": "state", "name": "name", "queue": "queue", "owner": "owner"}


class CountedPaginator(Paginator):
    """Counts the jobs of the list from the job counts, not with a COUNT over the table."""

    def __init__(self, *args: Any, narrowed: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.narrowed = narrowed

    @cached_property
    def count(self) -> int:
        owner = self.narrowed.get("owner")
        return sum(
            count.n for count in counts.counts(owner=owner)
            if all(getattr(count, field) == value for field, value in self.narrowed.items())
        )


def counted_filters(params: Any) -> dict[str, str] | None:
    """{field: value} of the list's filters when the job counts can count it (no search, each filter
    once and among those the counts are kept by); None when its rows must be counted."""
    # An empty search (the search box sends one, and the filters' links keep it) searches nothing.
    narrowing = set(params) - UNCOUNTED_PARAMS - ({SEARCH_VAR} if params.get(SEARCH_VAR, None) == "" else set())
    if not narrowing <= COUNTED_FILTERS.keys() or any(len(params.getlist(name)) != 1 for name in narrowing):
        return None
    return {COUNTED_FILTERS[name]: params[name] for name in narrowing}


class JobChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # Django lists a list of one page (or "show all") without a LIMIT; without one, SQLite reads
        # a state with no rows (or a few) by walking the whole table newest first rather than
        # through the state's small index. The LIMIT never cuts a row the count promised.
        if not self.result_list.query.is_sliced:
            limit = self.list_max_show_all if self.show_all else self.list_per_page
            self.result_list = self.result_list[: max(self.result_count, limit)]
        # Name the owners of the whole page with one call (one query), not one per row.
        names = owner_names(job.owner for job in self.result_list)
        for job in self.result_list:
            job.owner_name = names[job.owner]


ACTION_MESSAGES = {
    # action: (singular, plural) for the jobs it changed; jobs it could not change get the
    # service's exception message, as the API and `manage.py jobs` give it.
    "retry_jobs": ("{n} job is waiting to run again.", "{n} jobs are waiting to run again."),
    "promote_jobs": ("{n} job is waiting to run now.", "{n} jobs are waiting to run now."),
    "remove_jobs": ("{n} job removed.", "{n} jobs removed."),
}
# What the detail page offers for a job in each state: (action, button label).
STATE_ACTIONS = {
    JobState.FAILED: [("retry_jobs", "Retry")],
    JobState.DELAYED: [("promote_jobs", "Promote"), ("remove_jobs", "Remove")],
    JobState.WAITING: [("remove_jobs", "Remove")],
}


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["job_id", "state_shown", "progress_shown", "name", "owner_shown", "attempts_shown", "age_shown",
                    "run_time_shown"]
    list_display_links = ["job_id"]
    list_filter = ["state", NameFilter, QueueFilter, OwnerFilter]
    search_fields = ["id__startswith", "public_id__startswith", "name__startswith"]
    search_help_text = "The start of a job's id, or of its name."
    ordering = ["-created_at", "-id"]
    list_per_page = 50
    # The paginator counts the filtered jobs; the extra count of the whole table is not worth a scan.
    show_full_result_count = False
    # Facet counts would count every filter choice on every page: a scan each on a big table.
    show_facets = admin.ShowFacets.NEVER
    actions = ["retry_jobs", "promote_jobs", "remove_jobs"]
    fieldsets = [
        (None, {"fields": ["public_id_shown", "internal_id", "name", "queue", "owner_shown", "state_shown",
                           "progress_detail"]}),
        ("Input", {"fields": ["data_display", "opts_display"]}),
        ("Outcome", {"fields": ["return_value_display", "failed_reason"]}),
        ("Attempts", {"fields": ["history"]}),
        ("Times", {"fields": ["created_shown", "run_at_shown", "sent_at_shown", "processed_shown", "finished_shown",
                              "worker"]}),
    ]

    class Media:
        css = {"all": ["jobs/admin.css"]}

    # -- the list ------------------------------------------------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return JobChangeList

    def get_paginator(self, request: HttpRequest, queryset: QuerySet[Job], per_page: int, orphans: int = 0,
                      allow_empty_first_page: bool = True) -> Paginator:
        # The whole list, or a state, name, queue or owner of it, is counted from the job counts: a
        # COUNT of the completed jobs would read most of the table (of a queue's, all of it: no index).
        # A search counts its rows, through the index it uses.
        narrowed = counted_filters(request.GET)
        if narrowed is not None:
            return CountedPaginator(queryset, per_page, orphans, allow_empty_first_page, narrowed=narrowed)
        return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)

    @admin.display(description="id", ordering="public_id")
    def job_id(self, job: Job) -> SafeString:
        return format_html('<span class="jobs-id" title="{}">{}</span>', job.public_id, job.public_id)

    @admin.display(description="state", ordering="state")
    def state_shown(self, job: Job) -> SafeString:
        return state_badge(job.state)

    @admin.display(description="progress")
    def progress_shown(self, job: Job) -> SafeString:
        return progress_bar(job.progress)

    @admin.display(description="owner", ordering="owner")
    def owner_shown(self, job: Job) -> SafeString:
        # The list names every owner of its page at once (JobChangeList); the detail page names one.
        name = getattr(job, "owner_name", None) or owner_names([job.owner])[job.owner]
        link = reverse("admin:jobs_job_changelist") + "?" + urlencode({"owner": job.owner})
        return format_html('<a class="jobs-owner" href="{}" title="{}">{}</a>', link, job.owner or "system", name)

    @admin.display(description="attempts")
    def attempts_shown(self, job: Job) -> SafeString:
        # Bull's attemptsMade counts failed attempts; the second number is how many are allowed.
        return format_html(
            '<span title="failed attempts / attempts allowed">{}/{}</span>', job.attempts_made, job.attempts
        )

    @admin.display(description="age", ordering="created_at")
    def age_shown(self, job: Job) -> SafeString:
        return format_html('<span title="{}">{}</span>', exact(job.created_at), age(job.created_at))

    @admin.display(description="run time")
    def run_time_shown(self, job: Job) -> str:
        return run_time(job)

    # -- actions: the API's rules and messages -------------------------------------------------

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """Retry and promote: staff allowed to change jobs (the form itself stays read-only)."""
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def has_remove_permission(self, request: HttpRequest) -> bool:
        """Remove, through the guarded delete: staff allowed to delete jobs."""
        return request.user.has_perm(f"{self.opts.app_label}.delete_{self.opts.model_name}")

    @admin.action(description="Retry the selected failed jobs", permissions=["operate"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse | None:
        return self.apply(request, queryset, "retry_jobs", services.job_retry)

    @admin.action(description="Promote the selected delayed jobs (run now)", permissions=["operate"])
    def promote_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse | None:
        return self.apply(request, queryset, "promote_jobs", services.job_promote)

    @admin.action(description="Remove the selected waiting or delayed jobs", permissions=["remove"])
    def remove_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> HttpResponse | None:
        return self.apply(request, queryset, "remove_jobs", services.job_remove)

    def apply(
        self, request: HttpRequest, queryset: QuerySet[Job], action: str, service: Callable[..., Any]
    ) -> HttpResponse | None:
        """Call `service` for each job as its owner would through the API; say what changed and what could not."""
        changed, refused = 0, []
        for owner, public_id in queryset.order_by("created_at", "id").values_list("owner", "public_id"):
            try:
                service(owner=owner, job_id=public_id)
            except JobError as exc:
                refused.append(str(exc))
            else:
                changed += 1
        if changed:
            singular, plural = ACTION_MESSAGES[action]
            self.message_user(request, ngettext(singular, plural, changed).format(n=changed), messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.ERROR)
        # The detail page's buttons come back to the job (unless it is gone).
        back = request.POST.get("next", "")
        if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            return HttpResponseRedirect(back)
        return None

    # -- the detail page -----------------------------------------------------------------------

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], add: bool = False, change: bool = False,
        form_url: str = "", obj: Job | None = None,
    ) -> HttpResponse:
        # The detail page offers the actions that fit the job's state, as buttons.
        allowed = self.get_actions(request)
        offered = [
            {"name": name, "label": label} for name, label in STATE_ACTIONS.get(obj.state, []) if name in allowed
        ] if obj is not None else []
        return super().render_change_form(request, {**context, "job_actions": offered}, add, change, form_url, obj)

    @admin.display(description="id")
    def public_id_shown(self, job: Job) -> str:
        return job.public_id

    @admin.display(description="internal id")
    def internal_id(self, job: Job) -> str:
        # What workers and Flower know the job by: jobs.run_job(<internal id>).
        return job.pk

    @admin.display(description="progress")
    def progress_detail(self, job: Job) -> SafeString:
        return progress_bar(job.progress) if is_number(job.progress) else pretty(job.progress)

    @admin.display(description="data")
    def data_display(self, job: Job) -> SafeString:
        return pretty(job.data)

    @admin.display(description="options")
    def opts_display(self, job: Job) -> SafeString:
        return pretty(job.opts)

    @admin.display(description="result")
    def return_value_display(self, job: Job) -> SafeString:
        return pretty(job.return_value)

    @admin.display(description="history")
    def history(self, job: Job) -> SafeString:
        """What the row holds of the job's attempts: each kept traceback is one failed attempt, then the latest run."""
        failures = format_html_join(
            "",
            '<tr><td>{}</td><td>{}</td><td><strong>{}</strong>'
            '<details><summary>traceback</summary><pre class="jobs-traceback">{}</pre></details></td></tr>',
            ((f"failure {number}", state_badge(JobState.FAILED), last_line(trace), trace)
             for number, trace in enumerate(job.stacktrace, 1)),
        )
        latest = latest_run(job)
        kept = conf.get("STACKTRACE_LIMIT")
        notes = [
            f"{job.attempts_made} of {job.attempts} allowed attempts failed since the job was added or last retried",
            f"its worker was lost {job.stalled_count} {'time' if job.stalled_count == 1 else 'times'} while it ran",
        ]
        if len(job.stacktrace) >= kept:
            notes.append(f"only the newest {kept} tracebacks are kept")
        return format_html(
            '<table class="jobs-history"><thead><tr><th>attempt</th><th>outcome</th><th>what happened</th></tr></thead>'
            '<tbody>{}<tr><td>latest</td><td>{}</td><td>{}</td></tr></tbody></table><p class="help">{}.</p>',
            failures, state_badge(job.state), latest, "; ".join(notes),
        )

    created_shown = time_field("created_at", "created")
    run_at_shown = time_field("run_at", "may run from")
    sent_at_shown = time_field("sent_at", "message sent")
    processed_shown = time_field("processed_on", "started (latest attempt)")
    finished_shown = time_field("finished_on", "finished")

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> list[str]:
        return [field for fieldset in self.fieldsets for field in fieldset[1]["fields"]]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False

    # Deleting here would skip the guarded remove; the remove action goes through it.
    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False

    # -- the dashboard -------------------------------------------------------------------------

    def get_urls(self) -> list:
        dashboard_url = path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="jobs_job_dashboard")
        return [dashboard_url, *super().get_urls()]

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        numbers = dashboard.dashboard(hours=dashboard.window_hours(request.GET.get("hours")))
        oldest = numbers.oldest
        context = {
            **self.admin_site.each_context(request),
            "title": "Job dashboard",
            "opts": self.opts,
            "numbers": numbers,
            "charts": numbers.charts(),
            "oldest_owner": owner_names([oldest.owner])[oldest.owner] if oldest else "",
            "oldest_waited": duration(numbers.oldest_waited),
            "windows": dashboard.WINDOWS,
            "state_counts": [(state, numbers.states[state]) for state in JobState.values],
        }
        return TemplateResponse(request, "admin/jobs/job/dashboard.html", context)


def latest_run(job: Job) -> str:
    """The latest attempt as the row records it: when it started, and how it ended or when the job runs again."""
    if job.processed_on is None:
        return "not started"
    started = f"started {exact(job.processed_on)}"
    worker = f", on {job.worker}" if job.worker else ""
    if job.state == JobState.ACTIVE:
        return f"{started}, running for {duration(run_seconds(job))}{worker}"
    if job.finished_on is not None:
        return f"{started}, finished {exact(job.finished_on)}, ran {duration(run_seconds(job))}{worker}"
    # Waiting or delayed after an attempt: it failed with attempts left, or its worker stopped.
    return f"{started}{worker}; runs again from {exact(job.run_at)}"


def last_line(trace: str) -> str:
    """The exception line of a traceback ("RuntimeError: boom")."""
    lines = trace.strip().splitlines()
    return lines[-1] if lines else ""
