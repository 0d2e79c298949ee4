"""Operating the queue over the API: list, counts, retry, promote; what a tenant may and may not change."""

import base64
import json
import random
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import jobs
from jobs import services
from jobs.models import Job, JobState
from jobs.runner import job_execute
from tests.clients import bearer_client
from tests.callbacks import sends as message_sends
from tests.plans import plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(api_key):
    return bearer_client(api_key("alice")[1])


@pytest.fixture
def bob(api_key):
    return bearer_client(api_key("bob")[1])


def add(client, name="noop", **body):
    response = client.post("/api/job", {"name": name, **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def error_of(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


def run(job_id):
    return job_execute(job_id=Job.objects.get(public_id=job_id).pk, worker="w")


# -- list -------------------------------------------------------------------------------------


def test_the_list_is_newest_first_and_only_the_callers(alice, bob):
    ids = [add(alice, data={"n": n}) for n in range(3)]
    add(bob)
    body = alice.get("/api/job").json()
    assert [job["id"] for job in body["results"]] == ids[::-1]
    assert (body["next"], body["previous"]) == (None, None)


def test_pages_follow_the_cursor_without_gaps_or_repeats(alice):
    ids = [add(alice, data={"n": n}) for n in range(7)]
    seen, url = [], "/api/job?limit=3"
    while url:
        page = alice.get(url).json()
        seen += [job["id"] for job in page["results"]]
        url = page["next"]
    assert seen == ids[::-1]


def test_filters_by_state_name_and_creation_time(alice):
    failing = add(alice, "fails")
    waiting = add(alice, "noop")
    delayed = add(alice, "noop", opts={"delay": 60_000})
    run(failing)
    assert [j["id"] for j in alice.get("/api/job?state=failed").json()["results"]] == [failing]
    assert {j["id"] for j in alice.get("/api/job?state=waiting,delayed").json()["results"]} == {waiting, delayed}
    assert {j["id"] for j in alice.get("/api/job?state=waiting&state=failed").json()["results"]} == {waiting, failing}
    assert {j["id"] for j in alice.get("/api/job?name=noop").json()["results"]} == {waiting, delayed}
    created = {j["id"]: j["timestamp"] for j in alice.get("/api/job").json()["results"]}
    after = alice.get(f"/api/job?createdAfter={created[failing]}").json()["results"]
    assert {j["id"] for j in after} == {waiting, delayed}
    before = alice.get(f"/api/job?createdBefore={created[waiting]}").json()["results"]
    assert [j["id"] for j in before] == [failing]


def test_several_states_page_like_one_sorted_query_forwards_and_back(alice, bob):
    """Fixed seed: jobs in every state, some created at the same moment, walked page by page both ways."""
    rng = random.Random(9)
    moments = [timezone.now() - timedelta(seconds=rng.randrange(40)) for _ in range(120)]
    for client in (alice, bob):
        for _ in range(60):
            job = Job.objects.get(public_id=add(client))
            Job.objects.filter(pk=job.pk).update(state=rng.choice(JobState.values), created_at=rng.choice(moments))
    owner = Job.objects.get(public_id=add(alice)).owner
    for states in (["waiting", "failed"], ["completed", "active", "delayed"], list(JobState.values), ["failed", "failed", "waiting"]):
        expected = list(
            Job.objects.filter(owner=owner, state__in=states).order_by("-created_at", "-id").values_list("public_id", flat=True)
        )
        limit = rng.choice([1, 3, 7])
        url, pages = f"/api/job?state={','.join(states)}&limit={limit}", []
        while url:
            page = alice.get(url).json()
            pages.append(page)
            url = page["next"]
        assert [job["id"] for page in pages for job in page["results"]] == expected, states
        # And back from the last page, by the previous links.
        url, back = pages[-1]["previous"], [pages[-1]["results"]]
        while url:
            page = alice.get(url).json()
            back.insert(0, page["results"])
            url = page["previous"]
        assert [job["id"] for results in back for job in results] == expected, states


def test_several_states_are_read_a_state_at_a_time_each_through_an_index_then_the_page_by_id(alice):
    for state in ("waiting", "failed"):
        Job.objects.filter(pk=Job.objects.get(public_id=add(alice)).pk).update(state=state)
    # A cursor with an offset, as DRF makes for jobs created at the same moment (at most 1,000).
    cursor = base64.b64encode(b"o=3").decode()
    for query, found in (("limit=5", 2), (f"limit=5&cursor={cursor}", 0)):
        with CaptureQueriesContext(connection) as queries:
            assert len(alice.get(f"/api/job?state=waiting,failed&{query}").json()["results"]) == found
        listing = [q["sql"] for q in queries.captured_queries if "jobs_job" in q["sql"] and "api_key" not in q["sql"]]
        keys, rows = listing[:2], listing[2:]
        # Each state's keys: the page's end (offset + limit + 1), its own state, no IN of states.
        limit = 6 + (3 if "cursor" in query else 0)
        assert all(sql.startswith('SELECT "jobs_job"."created_at"') for sql in keys), keys
        assert all(f"LIMIT {limit}" in sql and " IN (" not in sql for sql in keys), keys
        # Then only the page's rows (none past the end of the listing).
        assert len(rows) == (1 if found else 0) and all('"jobs_job"."id" IN (' in sql for sql in rows), rows
        for sql in keys:
            found_plan = plan(sql)
            # PostgreSQL picks among indexes by its statistics, which a tiny table does not have.
            index = "jobs_job_owner_state_idx" if connection.vendor == "sqlite" else "Index Scan"
            assert index in found_plan and "Seq Scan" not in found_plan and "SCAN jobs_job |" not in f"{found_plan} |", found_plan


def test_every_state_at_once_is_the_whole_list_in_one_query(alice):
    ids = [add(alice) for _ in range(3)]
    with CaptureQueriesContext(connection) as queries:
        listed = alice.get(f"/api/job?state={','.join(JobState.values)}").json()["results"]
    assert [job["id"] for job in listed] == ids[::-1]
    listing = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('SELECT "jobs_job"."id"')]
    assert len(listing) == 1 and '"state"' not in listing[0].split("WHERE")[1], listing


@pytest.mark.parametrize(
    ("query", "field"),
    [("state=finished", "state"), ("limit=0", "limit"), ("limit=501", "limit"), ("createdAfter=yesterday", "createdAfter"),
     ("createdBefore=-1", "createdBefore"), ("createdAfter=3467167825658956", "createdAfter"), ("cursor=garbage", "cursor")],
)
def test_bad_list_parameters_are_400(alice, query, field):
    error = error_of(alice.get(f"/api/job?{query}"), 400, "invalid")
    assert field in error["details"]["fields"]


def test_the_latest_moments_are_accepted(alice):
    add(alice)
    assert alice.get("/api/job?createdAfter=253402300799999&createdBefore=253402300799999").json()["results"] == []


def test_an_unknown_state_names_the_states(alice):
    error = error_of(alice.get("/api/job?state=done"), 400, "invalid")
    assert error["details"]["fields"]["state"] == ["Unknown state 'done'; states are waiting, delayed, active, completed, failed."]


# -- counts -----------------------------------------------------------------------------------


def test_counts_per_state_only_the_callers(alice, bob):
    for name in ("noop", "noop", "fails"):
        add(alice, name)
    add(alice, opts={"delay": 60_000})
    run(add(alice, "fails"))
    add(bob)
    assert alice.get("/api/job/counts").json() == {"waiting": 3, "delayed": 1, "active": 0, "completed": 0, "failed": 1}
    assert bob.get("/api/job/counts").json() == {"waiting": 1, "delayed": 0, "active": 0, "completed": 0, "failed": 0}


def test_counts_per_name_and_queue(alice):
    add(alice, "noop")
    add(alice, "fails")
    add(alice, "solo_records", data={"path": "/dev/null"})
    by_name = alice.get("/api/job/counts?by=name").json()
    assert set(by_name) == {"fails", "noop", "solo_records"} and by_name["noop"]["waiting"] == 1
    assert alice.get("/api/job/counts?by=queue").json() == {
        "jobs": {"waiting": 2, "delayed": 0, "active": 0, "completed": 0, "failed": 0},
        "solo": {"waiting": 1, "delayed": 0, "active": 0, "completed": 0, "failed": 0},
    }
    error_of(alice.get("/api/job/counts?by=owner"), 400, "invalid")


def test_counts_is_not_a_job_id(alice):
    error = error_of(alice.post("/api/job", {"name": "noop", "opts": {"jobId": "counts"}}, format="json"), 400, "invalid")
    assert error["message"] == "opts.jobId 'counts' is reserved: /api/job/counts is an endpoint of its own."


# -- retry and promote ------------------------------------------------------------------------


def test_retry_puts_a_failed_job_back_as_new_and_it_runs_again(alice, django_capture_on_commit_callbacks):
    job_id = add(alice, "flaky", data={"fail_times": 1})
    run(job_id)
    failed = alice.get(f"/api/job/{job_id}").json()
    assert (failed["state"], failed["attemptsMade"]) == ("failed", 1)
    with django_capture_on_commit_callbacks(execute=False) as sends:
        retried = alice.post(f"/api/job/{job_id}/retry")
    assert retried.status_code == 200
    body = retried.json()
    assert (body["state"], body["attemptsMade"], body["failedReason"], body["finishedOn"]) == ("waiting", 0, None, None)
    assert len(body["stacktrace"]) == 1, "the failure's traceback stays as history"
    assert len(message_sends(sends)) == 1, "its message leaves after commit"
    Job.objects.filter(public_id=job_id).update(attempts_made=1)  # the flaky function succeeds on its second attempt
    assert run(job_id) == "completed"


@pytest.mark.parametrize(("setup", "state"), [("waiting", "waiting"), ("delayed", "delayed"), ("completed", "completed")])
def test_retry_of_a_job_that_has_not_failed_is_409(alice, setup, state):
    job_id = add(alice, "noop", opts={"delay": 60_000} if setup == "delayed" else {})
    if setup == "completed":
        run(job_id)
    error = error_of(alice.post(f"/api/job/{job_id}/retry"), 409, "job_not_failed")
    assert error["message"] == f"Job {job_id!r} is {state}: only a failed job can be retried."
    assert Job.objects.get(public_id=job_id).state == state


def test_promote_runs_a_delayed_job_now(alice, django_capture_on_commit_callbacks):
    job_id = add(alice, opts={"delay": 3_600_000})
    with django_capture_on_commit_callbacks(execute=False) as sends:
        body = alice.post(f"/api/job/{job_id}/promote").json()
    assert body["state"] == "waiting" and len(message_sends(sends)) == 1
    job = Job.objects.get(public_id=job_id)
    assert job.run_at <= timezone.now()
    error = error_of(alice.post(f"/api/job/{job_id}/promote"), 409, "job_not_delayed")
    assert error["message"] == f"Job {job_id!r} is waiting: only a delayed job can be promoted."


def test_another_accounts_job_cannot_be_retried_or_promoted(alice, bob):
    failed = add(alice, "fails")
    run(failed)
    delayed = add(alice, opts={"delay": 60_000})
    error_of(bob.post(f"/api/job/{failed}/retry"), 404, "not_found")
    error_of(bob.post(f"/api/job/{delayed}/promote"), 404, "not_found")
    assert [Job.objects.get(public_id=i).state for i in (failed, delayed)] == ["failed", "delayed"]


def test_retry_and_promote_need_job_update(api_key, alice):
    delayed = add(alice, opts={"delay": 60_000})
    reader = bearer_client(api_key("alice", ["job.read"])[1])
    error_of(reader.post(f"/api/job/{delayed}/promote"), 403, "forbidden")
    assert reader.get("/api/job").status_code == 200 and reader.get("/api/job/counts").status_code == 200


# -- jobs of internal functions: readable, not changeable -------------------------------------


@pytest.fixture
def internal_job(api_key):
    """A job of an internal function that code added for alice's account (as a tracked task would be)."""
    from accounts.services import account_for_user
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="alice")
    return jobs.Queue().add({"to": "system"}, name="internal_report", delay=60_000, owner=f"account:{account_for_user(user).pk}")


@pytest.mark.parametrize(("method", "path", "body"), [
    ("patch", "", {"to": "tenant"}), ("delete", "", None), ("post", "/promote", None),
])
def test_a_tenant_reads_but_cannot_change_a_job_of_an_internal_function(alice, internal_job, method, path, body):
    assert alice.get(f"/api/job/{internal_job.id}").json()["data"] == {"to": "system"}
    error = error_of(getattr(alice, method)(f"/api/job/{internal_job.id}{path}", body, format="json"), 403, "job_internal")
    assert error["message"] == (
        f"Job {internal_job.id!r} runs the internal job function 'internal_report': it can be read through the API but not changed."
    )
    job = Job.objects.get(pk=internal_job._record.pk)
    assert (job.state, job.data) == ("delayed", {"to": "system"})


def test_a_failed_internal_job_cannot_be_retried_by_a_tenant(alice, internal_job):
    services.job_promote(owner=internal_job.owner, job_id=internal_job.id)
    Job.objects.filter(pk=internal_job._record.pk).update(state="failed")
    error_of(alice.post(f"/api/job/{internal_job.id}/retry"), 403, "job_internal")
    # code may
    assert services.job_retry(owner=internal_job.owner, job_id=internal_job.id).state == "waiting"


# -- interactive docs -------------------------------------------------------------------------


def test_the_api_docs_are_served_with_their_own_assets(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page and "cdn" not in page.lower() and "/static/drf_spectacular_sidecar/" in page
    asset = page.split('src="')[1].split('"')[0]
    assert client.get(asset).status_code == 200
