"""Adding many jobs at once: Queue.add_bulk and POST /api/job with a list; all or none, errors name the index."""

import pytest

import jobs
from jobs.errors import InvalidJob, JobExists, UnknownJobName
from jobs.models import Job
from tests.clients import bearer_client

pytestmark = pytest.mark.django_db


def test_add_bulk_adds_all_in_one_transaction_and_sends_them_in_one_batch(broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        added = jobs.Queue().add_bulk([
            {"name": "noop", "data": {"n": n}} for n in range(5)
        ] + [{"name": "noop", "data": {"later": True}, "opts": {"delay": 60_000, "jobId": "later-1"}}])
    assert [job.data for job in added] == [{"n": n} for n in range(5)] + [{"later": True}]
    assert [job.state for job in added] == ["waiting"] * 5 + ["delayed"]
    assert added[-1].id == "later-1"
    assert broker.batches == [5], "the waiting jobs' messages go in one pipelined batch after commit"
    assert len(callbacks) == 1
    assert Job.objects.count() == 6


@pytest.mark.parametrize(
    ("jobs_list", "error", "message"),
    [
        ([{"name": "noop"}, {"name": "nope"}], UnknownJobName, "jobs[1]: No job function is registered as 'nope'"),
        ([{"name": "noop"}, {"name": "noop", "data": [1]}], InvalidJob, "jobs[1]: data must be a JSON object."),
        ([{"name": "noop", "opts": {"attempts": 0}}], InvalidJob, "jobs[0]: opts.attempts must be a whole number from 1 to 100."),
        ([{"opts": {"jobId": "x"}}, {"opts": {"jobId": "x"}}], InvalidJob, "jobs[1]: opts.jobId 'x' is also the id of jobs[0]."),
    ],
)
def test_one_bad_job_adds_none_and_names_its_index(jobs_list, error, message):
    with pytest.raises(error) as caught:
        jobs.Queue().add_bulk(jobs_list)
    assert str(caught.value).startswith(message)
    assert Job.objects.count() == 0


def test_a_taken_id_adds_none(broker):
    jobs.Queue().add({"first": True}, name="noop", job_id="taken")
    with pytest.raises(JobExists, match=r"jobs\[1\]: A job with id 'taken' already exists."):
        jobs.Queue().add_bulk([{"name": "noop"}, {"name": "noop", "opts": {"jobId": "taken"}}])
    assert list(Job.objects.values_list("public_id", flat=True)) == ["taken"]


@pytest.fixture
def alice(api_key):
    return bearer_client(api_key("alice")[1])


def test_post_a_list_adds_them_all(alice, django_capture_on_commit_callbacks, broker):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post("/api/job", [{"name": "noop", "data": {"n": n}} for n in range(3)], format="json")
    assert response.status_code == 201
    assert [job["data"] for job in response.json()] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert broker.batches == [3]


@pytest.mark.parametrize(
    ("body", "code", "details"),
    [
        ([{"name": "noop"}, {"name": "onboarding.daily_flow"}], "unknown_name", {"index": 1, "field": "jobs[1].name"}),
        ([{"name": "noop"}, {"name": "noop", "data": "x"}], "invalid", {"index": 1, "field": "jobs[1].data"}),
        ([{"name": "noop"}, {"nmae": "noop"}], "invalid", None),
        ([{"name": "noop"}, 7], "invalid", None),
        ([], "invalid", None),
    ],
)
def test_a_bad_list_is_400_naming_the_job_and_adds_none(alice, body, code, details):
    response = alice.post("/api/job", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code
    if details:
        assert {key: error["details"][key] for key in details} == details
    elif body:
        assert "jobs[1]" in error["details"]["fields"]
    assert Job.objects.count() == 0


def test_the_list_is_limited(alice, settings):
    settings.JOBS = {**settings.JOBS, "MAX_BULK": 2}
    response = alice.post("/api/job", [{"name": "noop"}] * 3, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"]["jobs"] == ["Send from 1 to 2 jobs in one request, not 3."]
    assert Job.objects.count() == 0


def test_a_taken_id_in_a_list_is_409_naming_the_job(alice):
    alice.post("/api/job", {"name": "noop", "opts": {"jobId": "r-1"}}, format="json")
    response = alice.post("/api/job", [{"name": "noop"}, {"name": "noop", "opts": {"jobId": "r-1"}}], format="json")
    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"id": "r-1", "index": 1}
    assert Job.objects.count() == 1
