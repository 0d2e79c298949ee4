"""Celery's side of results: state names, AsyncResult and the result backend that reads jobs first."""

import pytest
from celery import states
from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.utils import timezone
from django_celery_results.models import TaskResult

from gravity.celery import app
from jobs import services
from jobs.celery_compat import JobsResultBackend, TrackedResult, celery_state
from jobs.errors import JobFailed, JobNotFound
from jobs.models import Job
from jobs.runner import job_execute
from tests.jobfunctions import add, raises, task_waits_for_gate

pytestmark = pytest.mark.django_db


def test_the_app_reads_results_through_the_jobs_backend():
    assert isinstance(app.backend, JobsResultBackend)


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({"state": "waiting"}, states.PENDING),
        ({"state": "delayed"}, states.PENDING),
        ({"state": "delayed", "attempts_made": 1}, states.RETRY),
        ({"state": "waiting", "stalled_count": 1}, states.RETRY),
        ({"state": "active"}, states.STARTED),
        ({"state": "completed"}, states.SUCCESS),
        ({"state": "failed", "failed_reason": "x", "stacktrace": ["Traceback (most recent call last):\nValueError: x"]}, states.FAILURE),
        (
            {"state": "failed", "failed_reason": "x", "stacktrace": ["Traceback (most recent call last):\ncelery.exceptions.TaskRevokedError: x"]},
            states.REVOKED,
        ),
    ],
)
def test_each_job_state_has_celerys_name(fields, state):
    job = services.job_create(name="noop")
    Job.objects.filter(pk=job.pk).update(**fields)
    assert celery_state(Job.objects.get(pk=job.pk)) == state


def test_app_async_result_reads_a_tracked_jobs_state_and_result():
    result = add.delay(20, 22)
    found = app.AsyncResult(result.id)
    assert (found.state, found.status, found.ready(), found.result) == ("PENDING", "PENDING", False, None)
    job_execute(job_id=result.id, worker="host:1:2")
    found = app.AsyncResult(result.id)
    assert (found.state, found.ready(), found.successful(), found.failed(), found.result, found.info) == (
        "SUCCESS", True, True, False, 42, 42
    )
    assert (found.name, found.args, found.kwargs, found.worker, found.retries, found.queue) == (
        "tests.jobfunctions.add", [20, 22], {}, "host:1:2", 0, "jobs"
    )
    assert found.date_done == Job.objects.get(pk=result.id).finished_on


def test_get_of_a_failed_job_raises_its_error_as_celery_does():
    result = raises.delay("card declined")
    job_execute(job_id=result.id, worker="w")
    found = app.AsyncResult(result.id)
    assert (found.state, found.failed(), found.ready()) == ("FAILURE", True, True)
    with pytest.raises(ValueError, match="^card declined$"):
        found.get(timeout=1)
    assert repr(found.get(propagate=False)) == "ValueError('card declined')"
    assert found.traceback.endswith("ValueError: card declined\n")
    assert "tests/jobfunctions.py" in found.traceback


def test_an_error_class_that_cannot_be_found_is_made_up_by_name_as_celery_does():
    job = services.job_create(name="noop")
    Job.objects.filter(pk=job.pk).update(
        state="failed", failed_reason="gone", stacktrace=["Traceback (most recent call last):\nnowhere.GoneError: gone\n"]
    )
    with pytest.raises(Exception, match="^gone$") as caught:
        app.AsyncResult(job.pk).get()
    assert type(caught.value).__name__ == "GoneError"


def test_a_failure_without_an_exception_raises_job_failed():
    job = services.job_create(name="noop")
    Job.objects.filter(pk=job.pk).update(state="failed", failed_reason=services.STALLED_REASON)
    with pytest.raises(JobFailed, match="^job stalled more than allowable limit$"):
        app.AsyncResult(job.pk).get()


def test_get_with_a_timeout_raises_celerys_timeout_error():
    result = add.apply_async((1, 2), countdown=60)
    started = timezone.now()
    with pytest.raises(CeleryTimeoutError, match="^The operation timed out.$"):
        result.get(timeout=0.2)
    assert (timezone.now() - started).total_seconds() < 2


def test_info_of_a_running_job_is_its_progress(tmp_path):
    gate = tmp_path / "gate"
    result = task_waits_for_gate.delay(str(gate))
    job = Job.objects.get(pk=result.id)
    Job.objects.filter(pk=job.pk).update(state="active", progress={"waiting_for": str(gate)})
    assert (result.state, result.info) == ("STARTED", {"waiting_for": str(gate)})


def test_a_system_job_id_given_by_code_is_found_too_but_not_an_accounts():
    system = add.apply_async((1, 1), task_id="report-7")
    owned = add.apply_async((2, 2), task_id="report-8", owner="account:7")
    for result in (system, owned):
        job_execute(job_id=result.id, worker="w")
    assert app.AsyncResult("report-7").get() == 2
    # An account's ids are its own: AsyncResult takes the internal id the result gave.
    assert app.AsyncResult("report-8").state == "PENDING"
    assert (app.AsyncResult(owned.id).get(), owned.get()) == (4, 4)


def test_other_celery_tasks_results_come_from_django_celery_results():
    TaskResult.objects.create(
        task_id="plain-celery-1", status=states.SUCCESS, result="7", content_type="application/json", content_encoding="utf-8"
    )
    assert (app.AsyncResult("plain-celery-1").state, app.AsyncResult("plain-celery-1").result) == ("SUCCESS", 7)
    assert app.AsyncResult("never-heard-of").state == "PENDING"


def test_a_removed_jobs_result_is_pending_and_has_no_job():
    result = add.apply_async((1, 2), countdown=60)
    result.job.remove()
    assert TrackedResult(result.id).state == "PENDING"
    with pytest.raises(JobNotFound, match=f"^No job with id '{result.id}'.$"):
        result.job


def test_revoke_says_to_remove_the_job_instead():
    result = add.apply_async((1, 2), countdown=60)
    with pytest.raises(NotImplementedError, match=r"^A tracked task's job is not revoked: remove it before it starts, with result\.job\.remove\(\)\.$"):
        result.revoke()
    assert result.job.state == "delayed"
