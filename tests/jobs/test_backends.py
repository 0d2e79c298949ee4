"""Django's Tasks framework on the jobs backend: enqueue, results, priority, run_after, context, owners."""

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.core.checks import Error
from django.http import JsonResponse
from django.tasks import TaskResult, TaskResultStatus, default_task_backend, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist, TaskResultMismatch
from django.tasks.signals import task_enqueued, task_finished, task_started
from django.urls import path
from django.utils import timezone

from jobs import registry, services
from jobs.backends import JobsBackend, bull_priority, for_owner
from jobs.errors import InvalidJob, JobFailed
from jobs.models import Job, JobState
from jobs.runner import job_execute
from tests import djangotasks
from tests.clients import bearer_client

pytestmark = pytest.mark.django_db


def run(result: TaskResult, worker: str = "host:1:2") -> str:
    """Run the result's job once, as a worker would."""
    return job_execute(job_id=result.id, worker=worker)


async def enqueue_view(request):
    """An async view, as Django's docs enqueue from one."""
    with for_owner("account:9"):
        result = await djangotasks.add.aenqueue(2, 3)
    again = await djangotasks.add.aget_result(result.id)
    return JsonResponse({"id": result.id, "status": again.status})


urlpatterns = [path("enqueue", enqueue_view)]


def test_the_projects_default_backend_is_the_jobs_backend():
    backend = task_backends["default"]
    assert isinstance(backend, JobsBackend)
    assert (backend.supports_defer, backend.supports_get_result, backend.supports_priority, backend.supports_async_task) == (
        True, True, True, True
    )


def test_enqueue_adds_an_internal_job_sent_after_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = djangotasks.add.enqueue(2, 3)
    assert len(callbacks) == 1
    job = Job.objects.get(pk=result.id)
    assert (job.name, job.owner, job.queue, job.state, job.data["args"]) == ("tests.djangotasks.add", "", "jobs", "waiting", [2, 3])
    assert registry.get("tests.djangotasks.add", public_only=True) is None
    assert (result.status, result.enqueued_at, result.started_at, result.finished_at) == ("READY", job.created_at, None, None)
    assert (result.args, result.kwargs, result.backend, result.errors, result.worker_ids) == ([2, 3], {}, "default", [], [])
    with pytest.raises(ValueError, match="^Task has not finished yet$"):
        result.return_value


def test_a_result_refreshes_from_the_job_it_ran_as():
    result = djangotasks.add.enqueue(x=20, y=22)
    assert run(result) == "completed"
    assert result.status == TaskResultStatus.READY
    result.refresh()
    job = Job.objects.get(pk=result.id)
    assert (result.status, result.return_value, result.is_finished) == ("SUCCESSFUL", 42, True)
    assert (result.started_at, result.last_attempted_at, result.finished_at) == (job.processed_on, job.processed_on, job.finished_on)
    assert (result.worker_ids, result.attempts) == (["host:1:2"], 1)
    fetched = djangotasks.add.get_result(result.id)
    assert (fetched.status, fetched.return_value, fetched.kwargs) == ("SUCCESSFUL", 42, {"x": 20, "y": 22})
    assert default_task_backend.get_result(result.id).id == result.id


def test_a_failed_task_keeps_its_error():
    result = djangotasks.fails.enqueue("card declined")
    assert run(result) == "failed"
    result = djangotasks.fails.get_result(result.id)
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert (error.exception_class_path, error.exception_class) == ("builtins.ValueError", ValueError)
    assert error.traceback.endswith("ValueError: card declined\n")
    with pytest.raises(ValueError, match="^Task failed$"):
        result.return_value


def test_an_async_task_function_runs_in_the_worker():
    result = djangotasks.async_add.enqueue(1, 2)
    run(result)
    result.refresh()
    assert (result.status, result.return_value) == ("SUCCESSFUL", 3)


@pytest.mark.parametrize(
    ("django_priority", "bull"),
    [(100, 1), (88, 1), (87, 2), (50, 3), (13, 4), (12, 5), (0, 5), (-12, 5), (-13, 6), (-50, 7), (-87, 8), (-88, 9), (-100, 9)],
)
def test_djangos_priorities_map_onto_nine_of_bulls(django_priority, bull):
    assert bull_priority(django_priority) == bull


def test_a_tasks_priority_orders_its_job_and_comes_back_as_enqueued():
    result = djangotasks.add.using(priority=50).enqueue(1, 1)
    job = Job.objects.get(pk=result.id)
    assert (job.priority, services.celery_priority(job.priority)) == (3, 2)
    assert djangotasks.add.get_result(result.id).task.priority == result.task.priority == 50


@pytest.mark.parametrize("priority", [101, -101, 1.5])
def test_a_priority_outside_djangos_range_is_refused(priority):
    with pytest.raises(InvalidTask, match="^priority must be a whole number between -100 and 100.$"):
        djangotasks.add.using(priority=priority)


def test_run_after_delays_the_job_until_then():
    run_after = timezone.now() + timedelta(seconds=30)
    result = djangotasks.add.using(run_after=run_after).enqueue(1, 1)
    job = Job.objects.get(pk=result.id)
    assert (job.state, result.status) == (JobState.DELAYED, "READY")
    assert run_after <= job.run_at < run_after + timedelta(milliseconds=50)
    assert djangotasks.add.get_result(result.id).task.run_after == run_after
    past = djangotasks.add.using(run_after=timezone.now() - timedelta(days=1)).enqueue(1, 1)
    assert Job.objects.get(pk=past.id).state == JobState.WAITING


def test_run_after_must_be_aware_and_within_the_longest_delay():
    with pytest.raises(InvalidTask, match="^run_after must be an aware datetime.$"):
        djangotasks.add.using(run_after=timezone.now().replace(tzinfo=None))
    with pytest.raises(InvalidTask, match="^run_after must be at most 31536000 seconds from now.$"):
        djangotasks.add.using(run_after=timezone.now() + timedelta(days=366)).enqueue(1, 1)
    assert Job.objects.count() == 0


def test_queue_name_picks_the_celery_queue_default_being_the_jobs_queue():
    assert Job.objects.get(pk=djangotasks.solo_records.enqueue("/dev/null", "x").id).queue == "solo"
    assert Job.objects.get(pk=djangotasks.add.using(queue_name="default").enqueue(1, 1).id).queue == "jobs"
    with pytest.raises(InvalidTask, match="^Queue 'reports' is not valid for backend.$"):
        djangotasks.add.using(queue_name="reports")


def test_a_task_that_takes_context_sees_its_attempt_and_result():
    result = djangotasks.describe.using(priority=-30).enqueue("hello")
    run(result)
    result.refresh()
    assert result.return_value == {
        "label": "hello", "attempt": 1, "id": result.id, "status": "RUNNING", "worker_ids": ["host:1:2"], "priority": -30
    }


def test_the_attempt_counts_retries_of_a_backend_with_attempts():
    result = djangotasks.flaky.enqueue(2)
    assert Job.objects.get(pk=result.id).attempts == 3
    for worker in ("a:1:1", "b:1:1", "c:1:1"):
        Job.objects.filter(pk=result.id, state=JobState.DELAYED).update(state=JobState.WAITING)
        run(result, worker)
    result.refresh()
    assert (result.status, result.return_value, result.attempts) == ("SUCCESSFUL", 3, 3)
    # The row keeps the latest attempt's worker only; earlier attempts count with "".
    assert result.worker_ids == ["", "", "c:1:1"]
    assert [error.traceback.splitlines()[-1] for error in result.errors] == [
        "RuntimeError: attempt 1 fails", "RuntimeError: attempt 2 fails"
    ]


def test_arguments_must_be_json():
    with pytest.raises(TypeError, match="^Unsupported type: <class 'object'>$"):
        djangotasks.add.enqueue(object(), 1)
    with pytest.raises(InvalidJob) as caught:
        djangotasks.add.enqueue(float("nan"), 1)
    assert str(caught.value) == "the task's arguments must be JSON: Out of range float values are not JSON compliant: nan."
    with pytest.raises(InvalidJob) as caught:
        djangotasks.add.enqueue("a\x00b", 1)
    assert str(caught.value).startswith("the task's arguments holds a NUL character")
    assert Job.objects.count() == 0


def test_get_result_of_an_unknown_id_or_of_another_kind_of_job_does_not_exist():
    with pytest.raises(TaskResultDoesNotExist, match="^nope$"):
        default_task_backend.get_result("nope")
    plain = services.job_create(name="noop")
    with pytest.raises(TaskResultDoesNotExist):
        djangotasks.add.get_result(plain.pk)
    other = djangotasks.fails.enqueue("x")
    with pytest.raises(TaskResultMismatch, match="^Task does not match \\(received 'tests.djangotasks.fails'\\)$"):
        djangotasks.add.get_result(other.id)


def test_for_owner_gives_the_job_to_an_account_which_sees_it_in_the_api(api_key, owner_of):
    user, key = api_key("alice")
    with for_owner(owner_of(user)):
        result = djangotasks.add.enqueue(1, 2)
    assert Job.objects.get(pk=djangotasks.add.enqueue(3, 4).id).owner == ""  # only inside the block
    run(result)
    client = bearer_client(key)
    body = client.get(f"/api/job/{result.id}").json()
    assert (body["name"], body["state"], body["returnvalue"]) == ("tests.djangotasks.add", "completed", 3)
    # Django's tasks stay internal: no API client may add one.
    response = client.post("/api/job", {"name": "tests.djangotasks.add"}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "unknown_name")


def test_the_signals_of_djangos_tasks_are_sent():
    seen = []

    def receiver(signal, sender, task_result, **kwargs):
        seen.append((signal, sender, task_result.status))

    for signal in (task_enqueued, task_started, task_finished):
        signal.connect(receiver)
    try:
        run(djangotasks.add.enqueue(1, 2))
        run(djangotasks.fails.enqueue("x"))
    finally:
        for signal in (task_enqueued, task_started, task_finished):
            signal.disconnect(receiver)
    assert seen == [
        (task_enqueued, JobsBackend, "READY"),
        (task_started, JobsBackend, "RUNNING"),
        (task_finished, JobsBackend, "SUCCESSFUL"),
        (task_enqueued, JobsBackend, "READY"),
        (task_started, JobsBackend, "RUNNING"),
        (task_finished, JobsBackend, "FAILED"),
    ]


@pytest.mark.urls(__name__)
def test_an_async_view_enqueues_with_aenqueue(async_client):
    response = async_to_sync(async_client.get)("/enqueue")
    body = response.json()
    assert body["status"] == "READY"
    job = Job.objects.get(pk=body["id"])
    assert (job.name, job.owner, job.data["args"]) == ("tests.djangotasks.add", "account:9", [2, 3])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ATTEMPTS": 3, "RETRIES": 1}, "TASKS['checked']['OPTIONS'] has unknown keys: RETRIES."),
        ({"ATTEMPTS": 0}, "TASKS['checked']['OPTIONS']: opts.attempts must be a whole number from 1 to 100."),
    ],
)
def test_a_system_check_refuses_bad_options(settings, options, message):
    settings.TASKS = {**settings.TASKS, "checked": {"BACKEND": "jobs.backends.JobsBackend", "OPTIONS": options}}
    errors = [error for error in task_backends["checked"].check() if isinstance(error, Error)]
    assert [(error.id, error.msg) for error in errors] == [("jobs.E009", message)]


def test_a_tasks_job_shows_in_the_admin_like_any_other(admin_client):
    result = djangotasks.fails.enqueue("card declined")
    run(result)
    page = admin_client.get(f"/admin/jobs/job/{result.id}/change/").content.decode()
    assert "tests.djangotasks.fails" in page and "ValueError: card declined" in page


def test_get_result_finds_the_task_by_its_path_where_it_was_never_imported():
    result = djangotasks.add.enqueue(1, 2)
    function = registry.get("tests.djangotasks.add")
    registry.unregister("tests.djangotasks.add")
    try:
        assert default_task_backend.get_result(result.id).task.func is djangotasks.add.func
    finally:
        registry.register(function.name, function.func)


def test_the_account_sees_a_task_enqueued_for_it_but_cannot_change_its_arguments(api_key, owner_of):
    user, key = api_key("alice")
    with for_owner(owner_of(user)):
        result = djangotasks.add.enqueue(1, 2)
    client = bearer_client(key)
    assert client.get(f"/api/job/{result.id}").json()["data"]["args"] == [1, 2]
    response = client.patch(f"/api/job/{result.id}", {"args": [100, 200]}, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (403, "job_internal")
    run(result)
    assert djangotasks.add.get_result(result.id).return_value == 3


def test_data_changed_by_code_does_not_change_the_task_a_result_shows():
    result = djangotasks.add.enqueue(1, 2)
    job = Job.objects.get(pk=result.id)
    for patched in ({"task": "x"}, {"task": {"priority": 500, "backend": "nope", "run_after": "soon"}}):
        services.job_update_data(owner=job.owner, job_id=job.public_id, data=patched, merge=True)
        assert djangotasks.add.get_result(result.id).task == djangotasks.add


def test_a_task_whose_workers_kept_dying_fails_with_job_failed():
    result = djangotasks.add.enqueue(1, 2)
    Job.objects.filter(pk=result.id).update(
        state=JobState.FAILED, stalled_count=2, failed_reason=services.STALLED_REASON, processed_on=timezone.now(), worker="w:1:1"
    )
    result.refresh()
    assert (result.status, result.attempts) == ("FAILED", 2)
    assert [(error.exception_class, error.traceback) for error in result.errors] == [
        (JobFailed, "job stalled more than allowable limit")
    ]
