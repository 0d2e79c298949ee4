"""The jobs admin: a list that fits, owners by name, search, the API's actions and messages, a detail page, no edits."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Account
from jobs import services
from jobs.admin import state_badge
from jobs.models import Job
from jobs.runner import job_execute
from tests.plans import plan

pytestmark = pytest.mark.django_db

LIST = "/admin/jobs/job/"


@pytest.fixture
def staff(admin_client):
    return admin_client


def finished(name: str, **kwargs) -> Job:
    job = services.job_create(name=name, **kwargs)
    job_execute(job_id=job.pk, worker="w")
    return Job.objects.get(pk=job.pk)


def act(client, action: str, *jobs: Job, **extra) -> list[tuple[str, str]]:
    """Run a list action on `jobs` as the admin's form does; return the messages shown after it."""
    data = {"action": action, "_selected_action": [job.pk for job in jobs], "index": 0, **extra}
    response = client.post(LIST, data, follow=True)
    assert response.status_code == 200
    return [(message.level_tag, message.message) for message in response.context["messages"]]


def state_of(job: Job) -> str | None:
    return Job.objects.filter(pk=job.pk).values_list("state", flat=True).first()


# -- the list ----------------------------------------------------------------------------------


def test_the_list_filters_by_state_and_searches_by_id(staff):
    done = finished("noop", data={"a": 1})
    waiting = services.job_create(name="fails")
    page = staff.get(f"{LIST}?state__exact=completed").content.decode()
    assert done.pk in page and waiting.pk not in page
    page = staff.get(f"{LIST}?q={waiting.pk}").content.decode()
    assert waiting.pk in page and done.pk not in page
    page = staff.get(f"{LIST}?name=fails").content.decode()
    assert waiting.pk in page and done.pk not in page


def test_search_takes_the_start_of_an_id_or_of_a_name(staff):
    report = services.job_create(name="noop", opts={"jobId": "report-2026-11"}, owner="account:1")
    other = services.job_create(name="sleeps", opts={"jobId": "invoice-7"})
    assert report.pk != report.public_id
    for query, shown in [("report-20", report), (report.pk[:8], report), ("sle", other), ("invoice-7", other)]:
        page = staff.get(LIST, {"q": query}).content.decode()
        hidden = other if shown is report else report
        assert f'title="{shown.public_id}"' in page and f'title="{hidden.public_id}"' not in page, query
    assert 'title="report-2026-11"' not in staff.get(LIST, {"q": "2026-11"}).content.decode()


def test_the_list_shows_state_progress_attempts_age_and_run_time(staff):
    job = services.job_create(name="noop", opts={"attempts": 3})
    Job.objects.filter(pk=job.pk).update(
        state="active", progress=42.5, attempts_made=1, created_at=timezone.now() - timedelta(minutes=4),
        processed_on=timezone.now() - timedelta(seconds=30),
    )
    texty = services.job_create(name="noop")
    Job.objects.filter(pk=texty.pk).update(progress={"step": "copying <rows>"})
    page = staff.get(LIST).content.decode()
    assert '<span class="jobs-state jobs-state--active">active</span>' in page
    assert '<span class="jobs-progress__bar" style="width: 42.5%"></span></span>' \
           '<span class="jobs-progress__value">42.5%</span>' in page
    assert '<span class="jobs-progress-text" title="{&quot;step&quot;:&quot;copying &lt;rows&gt;&quot;}">' in page
    assert '<span title="failed attempts / attempts allowed">1/3</span>' in page
    assert ">4m</span>" in page
    assert '<td class="field-run_time_shown">30s</td>' in page


def test_owners_show_as_account_names_with_one_query_per_page(staff):
    acme = Account.objects.create(name="Acme Analytics")
    services.job_create(name="noop", owner=f"account:{acme.pk}")
    services.job_create(name="noop")
    services.job_create(name="noop", owner="account:999999")
    with CaptureQueriesContext(connection) as few:
        page = staff.get(LIST).content.decode()
    assert f'title="account:{acme.pk}">Acme Analytics</a>' in page
    assert 'title="system">system</a>' in page
    # An owner that names no account (deleted, or another kind of owner) shows as its key.
    assert 'title="account:999999">account:999999</a>' in page
    for number in range(8):
        services.job_create(name="noop", owner=f"account:{Account.objects.create(name=f'Tenant {number}').pk}")
    with CaptureQueriesContext(connection) as many:
        page = staff.get(LIST).content.decode()
    assert "Tenant 7</a>" in page
    assert len(many.captured_queries) == len(few.captured_queries)


def test_the_owner_filter_names_owners_and_filters_by_them(staff):
    acme = Account.objects.create(name="Acme Analytics")
    theirs = services.job_create(name="noop", owner=f"account:{acme.pk}")
    ours = services.job_create(name="noop")
    page = staff.get(LIST).content.decode()
    assert f'<a href="?owner=account%3A{acme.pk}">Acme Analytics</a>' in page
    assert '<a href="?owner=">system</a>' in page
    page = staff.get(LIST, {"owner": f"account:{acme.pk}"}).content.decode()
    assert theirs.pk in page and ours.pk not in page
    page = staff.get(LIST, {"owner": ""}).content.decode()
    assert ours.pk in page and theirs.pk not in page


def test_the_name_and_queue_filters_offer_registered_names_without_scanning_the_table(staff):
    page = staff.get(LIST).content.decode()
    # Registered job functions are offered before any job of theirs exists.
    assert '<a href="?name=waits_for_gate">waits_for_gate</a>' in page
    assert '<a href="?queue=solo">solo</a>' in page


# -- actions: the API's rules and messages -----------------------------------------------------


def test_retry_runs_failed_jobs_again_and_names_each_job_it_could_not_retry(staff):
    failed = finished("fails")
    done = finished("noop")
    assert act(staff, "retry_jobs", failed, done) == [
        ("success", "1 job is waiting to run again."),
        ("error", f"Job '{done.public_id}' is completed: only a failed job can be retried."),
    ]
    assert (state_of(failed), state_of(done)) == ("waiting", "completed")
    again = [finished("fails"), finished("fails")]
    assert act(staff, "retry_jobs", *again) == [("success", "2 jobs are waiting to run again.")]


def test_promote_runs_delayed_jobs_now_and_names_each_job_it_could_not_promote(staff):
    delayed = services.job_create(name="noop", opts={"delay": 60_000})
    waiting = services.job_create(name="noop")
    assert act(staff, "promote_jobs", delayed, waiting) == [
        ("success", "1 job is waiting to run now."),
        ("error", f"Job '{waiting.public_id}' is waiting: only a delayed job can be promoted."),
    ]
    assert state_of(delayed) == "waiting"


def test_remove_deletes_jobs_that_have_not_started_and_names_each_job_it_could_not_remove(staff):
    waiting = services.job_create(name="noop")
    delayed = services.job_create(name="noop", opts={"delay": 60_000})
    active = services.job_create(name="noop")
    services.job_claim(job_id=active.pk, worker="w")
    assert act(staff, "remove_jobs", waiting, delayed, active) == [
        ("success", "2 jobs removed."),
        ("error", f"Job '{active.public_id}' is active: only a waiting or delayed job can be removed."),
    ]
    assert (state_of(waiting), state_of(delayed), state_of(active)) == (None, None, "active")


def test_actions_act_for_the_jobs_owner_whatever_the_id(staff):
    acme, other = (Account.objects.create(name=name) for name in ("Acme", "Other"))
    # The same custom id in two accounts: each action reaches exactly the job selected.
    mine = services.job_create(name="noop", opts={"jobId": "report-7", "delay": 60_000}, owner=f"account:{acme.pk}")
    theirs = services.job_create(name="noop", opts={"jobId": "report-7", "delay": 60_000}, owner=f"account:{other.pk}")
    assert act(staff, "promote_jobs", mine) == [("success", "1 job is waiting to run now.")]
    assert (state_of(mine), state_of(theirs)) == ("waiting", "delayed")


def test_staff_who_may_only_view_jobs_get_no_actions(client, make_user):
    viewer = make_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(viewer)
    failed = finished("fails")
    page = client.get(LIST).content.decode()
    assert failed.pk in page and "retry_jobs" not in page and 'name="action"' not in page
    client.post(LIST, {"action": "retry_jobs", "_selected_action": [failed.pk], "index": 0})
    assert state_of(failed) == "failed"
    assert 'id="job-retry_jobs"' not in client.get(f"{LIST}{failed.pk}/change/").content.decode()


def test_staff_who_may_change_but_not_delete_jobs_can_retry_but_not_remove(client, make_user):
    operator = make_user("operator", is_staff=True)
    operator.user_permissions.add(*Permission.objects.filter(codename__in=["view_job", "change_job"]))
    client.force_login(operator)
    page = client.get(LIST).content.decode()
    assert 'value="retry_jobs"' in page and 'value="promote_jobs"' in page and 'value="remove_jobs"' not in page
    waiting = services.job_create(name="noop")
    client.post(LIST, {"action": "remove_jobs", "_selected_action": [waiting.pk], "index": 0})
    assert state_of(waiting) == "waiting"


# -- the detail page ---------------------------------------------------------------------------


def test_the_detail_page_shows_data_result_and_traceback(staff):
    job = finished("fails", data={"customer": "acme"})
    page = staff.get(f"{LIST}{job.pk}/change/").content.decode()
    assert "&quot;customer&quot;: &quot;acme&quot;" in page
    assert "RuntimeError: boom" in page
    assert 'name="_save"' not in page


def test_the_detail_page_shows_times_to_the_second_and_each_failed_attempt(staff):
    job = services.job_create(name="flaky", data={"fail_times": 5}, opts={"attempts": 2})
    job_execute(job_id=job.pk, worker="w")
    job_execute(job_id=job.pk, worker="worker-2")
    Job.objects.filter(pk=job.pk).update(
        processed_on=timezone.now().replace(year=2026, month=3, day=1, hour=9, minute=30, second=7, microsecond=0),
        finished_on=timezone.now().replace(year=2026, month=3, day=1, hour=9, minute=30, second=9, microsecond=500000),
        stalled_count=1,
    )
    page = staff.get(f"{LIST}{job.pk}/change/").content.decode()
    assert "<td>failure 1</td>" in page and "<strong>RuntimeError: attempt 1 fails</strong>" in page
    assert "<td>failure 2</td>" in page and "<strong>RuntimeError: attempt 2 fails</strong>" in page
    assert "<td>failure 3</td>" not in page
    assert "started 2026-03-01 09:30:07 UTC, finished 2026-03-01 09:30:09 UTC, ran 2.5s, on worker-2" in page
    assert "2 of 2 allowed attempts failed since the job was added or last retried; " \
           "its worker was lost 1 time while it ran." in page
    assert "only the newest" not in page


def test_a_job_waiting_for_its_next_attempt_says_when_it_runs_again(staff):
    job = services.job_create(name="fails", opts={"attempts": 3, "backoff": 60_000})
    job_execute(job_id=job.pk, worker="w")
    job = Job.objects.get(pk=job.pk)
    assert (job.state, job.finished_on) == ("delayed", None)
    page = staff.get(f"{LIST}{job.pk}/change/").content.decode()
    run_at = timezone.localtime(job.run_at).strftime("%Y-%m-%d %H:%M:%S %Z")
    assert f"<td>latest</td><td>{state_badge('delayed')}</td><td>started " in page
    assert f", on w; runs again from {run_at}</td>" in page and "running for" not in page


def test_a_retried_job_keeps_its_failures_as_history(staff):
    job = finished("fails", data={"message": "card declined"})
    services.job_retry(owner="", job_id=job.public_id)
    job_execute(job_id=job.pk, worker="w")
    page = staff.get(f"{LIST}{job.pk}/change/").content.decode()
    assert page.count("<strong>RuntimeError: card declined</strong>") == 2
    assert "1 of 1 allowed attempts failed since the job was added or last retried" in page


def test_the_detail_page_says_when_older_tracebacks_were_dropped(staff):
    job = finished("fails")
    Job.objects.filter(pk=job.pk).update(stacktrace=[f"Traceback\nRuntimeError: try {n}" for n in range(10)])
    page = staff.get(f"{LIST}{job.pk}/change/").content.decode()
    assert "<td>failure 10</td>" in page and "<strong>RuntimeError: try 9</strong>" in page
    assert "; only the newest 10 tracebacks are kept." in page


def test_the_detail_page_offers_the_actions_that_fit_the_state_and_comes_back(staff):
    failed = finished("fails")
    page = staff.get(f"{LIST}{failed.pk}/change/").content.decode()
    assert 'id="job-retry_jobs"' in page and 'id="job-promote_jobs"' not in page and 'id="job-remove_jobs"' not in page
    here = f"{LIST}{failed.pk}/change/"
    response = staff.post(LIST, {"action": "retry_jobs", "_selected_action": [failed.pk], "index": 0, "next": here})
    assert (response.status_code, response["Location"]) == (302, here)
    delayed = services.job_create(name="noop", opts={"delay": 60_000})
    page = staff.get(f"{LIST}{delayed.pk}/change/").content.decode()
    assert 'id="job-promote_jobs"' in page and 'id="job-remove_jobs"' in page and 'id="job-retry_jobs"' not in page
    # Anywhere off the site, the action goes back to the list as usual.
    response = staff.post(LIST, {"action": "promote_jobs", "_selected_action": [delayed.pk], "index": 0,
                                 "next": "https://evil.example/"})
    assert response["Location"] == LIST


def test_jobs_cannot_be_added_changed_or_deleted_in_the_admin(staff):
    job = services.job_create(name="noop")
    assert staff.get(f"{LIST}add/").status_code == 403
    assert staff.post(f"{LIST}{job.pk}/delete/", {"post": "yes"}).status_code == 403
    staff.post(f"{LIST}{job.pk}/change/", {"name": "fails", "state": "completed"})
    assert Job.objects.filter(pk=job.pk, name="noop", state="waiting").exists()
    assert 'value="delete_selected"' not in staff.get(LIST).content.decode()


def test_a_non_staff_user_is_sent_to_the_login(client, make_user):
    client.force_login(make_user())
    assert client.get(LIST).status_code == 302


def test_the_onboarding_schedule_and_accounts_are_in_the_admin(staff):
    page = staff.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert "onboarding: daily flow" in page
    assert staff.get("/admin/accounts/account/").status_code == 200
    assert staff.get("/admin/onboarding/sentemail/").status_code == 200


# -- the list at scale: counts from the job counts, listings through indexes --------------------


def result_count(client, query: str) -> tuple[int, list[str]]:
    """The count the list shows for `query`, and the COUNTs it ran over the job table."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"{LIST}?{query}")
    assert response.status_code == 200
    scans = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper() and '"jobs_job"' in q["sql"]]
    return response.context["cl"].result_count, scans


def test_the_whole_list_and_each_state_are_counted_from_the_job_counts(staff):
    finished("noop"), finished("noop"), finished("fails")
    services.job_create(name="noop"), services.job_create(name="noop", opts={"delay": 60_000})
    expected = {state: Job.objects.filter(state=state).count() for state in ("completed", "failed", "waiting", "delayed")}
    assert expected == {"completed": 2, "failed": 1, "waiting": 1, "delayed": 1}
    for state, n in expected.items():
        assert result_count(staff, f"state__exact={state}&o=2&p=1") == (n, [])
    assert result_count(staff, "") == (5, [])
    assert result_count(staff, "q=&state__exact=failed") == (1, [])  # an empty search, as the search box sends it
    assert result_count(staff, "all=&state__exact=completed") == (2, [])
    assert result_count(staff, "state__exact=active") == (0, [])
    assert result_count(staff, "state__exact=no-such-state") == (0, [])


def test_a_list_narrowed_by_name_queue_or_owner_is_counted_from_the_job_counts_too(staff):
    finished("noop"), finished("fails", owner="account:9"), services.job_create(name="noop", queue="reports")
    for query in ["name=noop", "state__exact=completed&name=noop", "queue=reports", "queue=jobs&state__exact=completed",
                  "owner=account:9", "owner=account:9&state__exact=failed&name=fails", "owner=account:9&name=noop",
                  "owner=&state__exact=waiting", "queue=nowhere"]:
        params = dict(pair.split("=") for pair in query.split("&"))
        fields = {{"state__exact": "state"}.get(name, name): value for name, value in params.items()}
        assert result_count(staff, query) == (Job.objects.filter(**fields).count(), []), query
    assert result_count(staff, "queue=reports")[0] == 1 and result_count(staff, "owner=account:9")[0] == 1


def test_a_search_or_a_filter_given_twice_counts_its_rows(staff):
    finished("noop"), finished("fails"), services.job_create(name="noop")
    for query, n in [("q=noo", 2), ("q=noo&state__exact=completed", 1), ("state__exact=completed&state__exact=failed", 2)]:
        count, scans = result_count(staff, query)
        assert count == n and len(scans) == 1, query


@pytest.mark.parametrize("state, index", [
    ("waiting", "jobs_job_waiting_created_idx"), ("delayed", "jobs_job_delayed_created_idx"),
    ("failed", "jobs_job_failed_created_idx"), ("active", "jobs_job_locked_idx"), ("completed", "jobs_job_created_idx"),
])
@pytest.mark.parametrize("rows", [0, 2])
def test_each_state_is_listed_newest_first_through_an_index(staff, state, index, rows):
    """The list's own query for the state, with none of its jobs (the list is then one page) and with some."""
    for _ in range(rows):
        job = services.job_create(name="noop")
        Job.objects.filter(pk=job.pk).update(state=state)
    with CaptureQueriesContext(connection) as queries:
        page = staff.get(f"{LIST}?state__exact={state}")
    assert page.status_code == 200 and page.context["cl"].result_count == rows
    listing = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "jobs_job"."id", "jobs_job"."owner"')]
    assert len(listing) == 1 and "LIMIT" in listing[0], listing
    found = plan(listing[0])
    if state == "completed" and connection.vendor == "postgresql":
        # Most of a real table: PostgreSQL picks by its statistics (at scale, a walk of
        # jobs_job_created_idx that stops at the 50th); on this tiny table, some index.
        index = "Index Scan"
    assert index in found and "Seq Scan" not in found and "SCAN jobs_job |" not in f"{found} |", found


def test_the_waiting_jobs_are_read_without_the_rest_of_the_table():
    from jobs import selectors

    waiting = Job.objects.filter(state="waiting")
    for queryset in (waiting.order_by("run_at")[:1], waiting.values("queue").annotate(n=Count("pk")).order_by()):
        found = plan(queryset)
        assert "jobs_job_waiting_created_idx" in found or "jobs_job_unsent_idx" in found, found
    assert selectors.oldest_waiting() is None and selectors.oldest_waiting_by_queue() == {}
