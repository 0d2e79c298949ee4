"""The Bull-like Python API: Queue, JobHandle, @jobs.job (tracked tasks: test_tracked.py)."""

import pytest

import jobs
from jobs import registry
from jobs.errors import AlreadyRegistered, JobStarted
from jobs.models import Job
from jobs.runner import job_execute

pytestmark = pytest.mark.django_db


def test_queue_add_get_update_remove():
    queue = jobs.Queue("jobs")
    job = queue.add({"user_id": 7})
    assert (job.name, job.data, job.state, job.queue) == ("__default__", {"user_id": 7}, "waiting", "jobs")
    same = queue.get_job(job.id)
    same.update({"user_id": 8})
    assert job.reload().data == {"user_id": 8}
    job.remove()
    assert queue.get_job(job.id) is None


def test_queue_add_takes_bull_options():
    job = jobs.Queue().add(
        {"to": "a@b.c"},
        name="noop",
        delay=5000,
        attempts=3,
        backoff={"type": "exponential", "delay": 1000},
        priority=1,
        job_id="report-7",
    )
    assert job.id == "report-7"
    assert job.to_json()["opts"] == {
        "attempts": 3,
        "delay": 5000,
        "backoff": {"type": "exponential", "delay": 1000},
        "priority": 1,
        "jobId": "report-7",
    }
    assert job.to_json()["state"] == "delayed"


def test_to_json_has_bulls_keys_and_millisecond_times():
    job = jobs.Queue().add({"a": 1}, name="noop")
    body = job.to_json()
    assert set(body) == {
        "id", "name", "data", "opts", "progress", "delay", "timestamp", "attemptsMade", "stalledCounter",
        "failedReason", "stacktrace", "returnvalue", "finishedOn", "processedOn", "state",
    }
    assert body["timestamp"] == int(Job.objects.get(pk=job.id).created_at.timestamp() * 1000)
    assert (body["finishedOn"], body["processedOn"], body["progress"], body["failedReason"]) == (None, None, 0, None)


def test_remove_of_a_started_job_raises_a_clear_error():
    job = jobs.Queue().add({}, name="noop")
    job_execute(job_id=job.id, worker="w")
    with pytest.raises(JobStarted, match="is completed: only a waiting or delayed job can be removed."):
        job.remove()
    assert job.get_state() == "completed"


def test_process_registers_a_job_function_on_a_queue():
    queue = jobs.Queue("reports")

    @queue.process("monthly_report")
    def monthly_report(job):
        job.progress("started")
        return job.data["month"]

    try:
        job = jobs.Queue("reports").add({"month": "2026-11"}, name="monthly_report")
        assert job.queue == "reports"
        job_execute(job_id=job.id, worker="w")
        assert (job.reload().return_value, job.progress()) == ("2026-11", "started")
    finally:
        registry.unregister("monthly_report")


def test_a_second_function_under_a_taken_name_is_refused():
    with pytest.raises(AlreadyRegistered, match="A job function is already registered as 'noop': tests.jobfunctions.noop."):
        jobs.job("noop")(lambda job: None)
