"""The job dashboard: its numbers, read from the table, and the admin page that draws them."""

import json
import re
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Account
from jobs import dashboard, services
from jobs.models import Job

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 29, 12, 30, 20, tzinfo=UTC)
PAGE = "/admin/jobs/job/dashboard/"


def job_in(name: str, state: str, *, queue: str | None = None, finished_ago: timedelta | None = None,
         ran: timedelta | None = None, waiting_since: timedelta | None = None, owner: str = "",
         now: datetime = NOW) -> Job:
    """A job in `state`, finished `finished_ago` before `now` after running `ran`, or eligible since `waiting_since`."""
    job = services.job_create(name=name, queue=queue, owner=owner)
    fields: dict = {"state": state}
    if finished_ago is not None:
        fields["finished_on"] = now - finished_ago
        fields["processed_on"] = None if ran is None else now - finished_ago - ran
    if waiting_since is not None:
        fields["run_at"] = now - waiting_since
    Job.objects.filter(pk=job.pk).update(**fields)
    return job


def jobs_of_every_kind(now: datetime) -> Job:
    """Jobs in every state, finished at known minutes before `now`; return the one that has waited longest."""
    minute, second = timedelta(minutes=1), timedelta(seconds=1)
    make = partial(job_in, now=now)
    make("noop", "completed", finished_ago=20 * second, ran=2 * second)      # 12:30, the current minute
    make("noop", "completed", finished_ago=19 * second, ran=4 * second)      # 12:30
    make("noop", "completed", finished_ago=10 * minute, ran=3 * second)      # 12:20
    make("sleeps", "completed", finished_ago=59 * minute, ran=30 * second)   # 11:31, the window's first minute
    make("fails", "failed", finished_ago=10 * minute, ran=1 * second)        # 12:20
    make("fails", "failed", finished_ago=5 * minute, ran=1 * second)         # 12:25
    make("flaky", "failed", finished_ago=5 * minute, ran=7 * second)         # 12:25
    make("noop", "completed", finished_ago=2 * 60 * minute, ran=600 * second)  # before the window
    make("noop", "failed", finished_ago=61 * minute, ran=600 * second)         # before the window
    make("noop", "waiting", waiting_since=3 * minute)
    oldest = make("sleeps", "waiting", queue="reports", waiting_since=7 * minute + 30 * second,
                  owner=f"account:{Account.objects.create(name='Acme').pk}")
    make("noop", "delayed")
    make("noop", "active", queue="reports")
    return oldest


@pytest.fixture
def queue_of_every_kind():
    return jobs_of_every_kind(NOW)


def test_the_numbers_of_a_window(queue_of_every_kind):
    numbers = dashboard.dashboard(hours=1, now=NOW)
    assert numbers.states == {"waiting": 2, "delayed": 1, "active": 1, "completed": 5, "failed": 4}
    assert numbers.queues == {
        "jobs": {"waiting": 1, "delayed": 1, "active": 0, "completed": 5, "failed": 4},
        "reports": {"waiting": 1, "delayed": 0, "active": 1, "completed": 0, "failed": 0},
    }
    assert len(numbers.minutes) == len(numbers.labels) == 60
    assert (numbers.labels[0], numbers.labels[-1]) == ("11:31", "12:30")
    assert numbers.minutes[-1] == int(datetime(2026, 11, 29, 12, 30, tzinfo=UTC).timestamp() * 1000)
    completed = {numbers.labels[index]: count for index, count in enumerate(numbers.completed) if count}
    failed = {numbers.labels[index]: count for index, count in enumerate(numbers.failed) if count}
    assert completed == {"11:31": 1, "12:20": 1, "12:30": 2}
    assert failed == {"12:20": 1, "12:25": 2}
    assert numbers.slowest == [
        {"name": "sleeps", "runs": 1, "average": 30.0, "longest": 30.0},
        {"name": "flaky", "runs": 1, "average": 7.0, "longest": 7.0},
        {"name": "noop", "runs": 3, "average": 3.0, "longest": 4.0},
        {"name": "fails", "runs": 2, "average": 1.0, "longest": 1.0},
    ]
    assert numbers.failing == [
        {"name": "fails", "failed": 2, "completed": 0, "share": 1.0},
        {"name": "flaky", "failed": 1, "completed": 0, "share": 1.0},
    ]
    assert numbers.oldest == queue_of_every_kind
    assert numbers.oldest_waited == 450.0


def test_a_job_that_never_started_counts_as_finished_but_not_in_run_times():
    job_in("noop", "failed", finished_ago=timedelta(minutes=1))
    numbers = dashboard.dashboard(hours=1, now=NOW)
    assert sum(numbers.failed) == 1
    assert numbers.failing == [{"name": "noop", "failed": 1, "completed": 0, "share": 1.0}]
    assert numbers.slowest == []


def test_the_window_is_one_of_the_offered_ones():
    assert [dashboard.window_hours(value) for value in ("24", "1", "5", "", None, "x", "-3")] == [24, 1, 3, 3, 3, 3, 3]


def test_the_numbers_cost_four_queries_whatever_the_window(queue_of_every_kind):
    for hours in dashboard.WINDOWS:
        with CaptureQueriesContext(connection) as queries:
            dashboard.dashboard(hours=hours, now=NOW)
        assert len(queries.captured_queries) == 4


# -- the page ----------------------------------------------------------------------------------


def test_the_page_shows_the_counts_and_carries_the_charts_numbers(admin_client):
    jobs_of_every_kind(timezone.now())
    page = admin_client.get(PAGE, {"hours": "24"}).content.decode()
    for state, count in {"waiting": 2, "delayed": 1, "active": 1, "completed": 5, "failed": 4}.items():
        assert f'<span class="jobs-tile__count" id="count-{state}">{count}</span>' in page
    data = re.search(r'<script id="jobs-dashboard-data" type="application/json">(.*?)</script>', page).group(1)
    charts = json.loads(data)
    assert len(charts["throughput"]["labels"]) == 24 * 60
    assert charts["states"]["failed"] == 4
    assert charts["queues"]["reports"]["active"] == 1
    assert [row["name"] for row in charts["failing"]] == ["fails", "flaky", "noop"]
    assert "sleeps</a>\n          in reports (Acme)" in page
    assert '<strong>24 h</strong>' in page and '<a href="?hours=1">1 h</a>' in page
    assert "jobs/vendor/chartjs/chart.umd.min.js" in page and "jobs/dashboard.js" in page


def test_the_page_says_when_there_is_nothing_to_show(admin_client):
    page = admin_client.get(PAGE).content.decode()
    assert "No job finished in the last 3 h." in page
    assert "No job failed in the last 3 h." in page
    assert "no job is waiting" in page


def test_the_dashboard_is_linked_from_the_index_and_the_job_list(admin_client):
    for url in ("/admin/", "/admin/jobs/job/"):
        assert f'href="{PAGE}" id="jobs-dashboard-link"' in admin_client.get(url).content.decode(), url


def test_only_staff_who_may_view_jobs_see_the_dashboard(client, make_user):
    assert client.get(PAGE).status_code == 302
    staff = make_user("staff", is_staff=True)
    client.force_login(staff)
    assert client.get(PAGE).status_code == 403
    assert "jobs-dashboard-link" not in client.get("/admin/").content.decode()
    staff.user_permissions.add(Permission.objects.get(codename="view_job"))
    assert client.get(PAGE).status_code == 200


def test_the_chart_library_is_served_by_the_app(client):
    response = client.get("/static/jobs/vendor/chartjs/chart.umd.min.js")
    assert response.status_code == 200
    assert b"Chart.js v4.6.1" in b"".join(response.streaming_content)[:200]
