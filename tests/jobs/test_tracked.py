"""Tracked tasks: Celery's task idiom (@jobs.task, delay, apply_async, self.retry) over jobs."""

from datetime import datetime, timedelta

import pytest
from celery.exceptions import MaxRetriesExceededError, Retry, TaskRevokedError
from celery.result import AsyncResult
from django.utils import timezone

import jobs
from gravity.celery import app
from jobs import registry, services
from jobs.errors import AlreadyRegistered, InvalidJob
from jobs.models import Job, JobState
from jobs.runner import job_execute
from tests.jobfunctions import add, autoretries, progress_task, raises, retries_then_succeeds

pytestmark = pytest.mark.django_db


def run(result):
    """Run the result's job once, as a worker would; return what the runner says happened."""
    return job_execute(job_id=result.id, worker="test:1")


def run_expecting_a_wait(result, seconds):
    """Run the job once; check that its next attempt waits `seconds`; return its row."""
    before = timezone.now()
    run(result)
    record = Job.objects.get(pk=result.id)
    assert before + timedelta(seconds=seconds) <= record.run_at <= timezone.now() + timedelta(seconds=seconds)
    return record


def make_due(result):
    """Let a delayed retry run now (tests of real waits run against a worker: tests/e2e)."""
    Job.objects.filter(pk=result.id, state=JobState.DELAYED).update(state=JobState.WAITING)


@pytest.fixture
def declared():
    """Declare tracked tasks for one test; forget them after it."""
    names = []

    def declare(func=None, **options):
        def decorator(inner):
            options.setdefault("name", f"tests.tmp.{inner.__name__}")
            names.append(options["name"])
            return jobs.task(inner, **options)

        return decorator(func) if func else decorator

    yield declare
    for name in names:
        registry.unregister(name)


# -- delay and apply_async -----------------------------------------------------------------------


def test_delay_returns_celerys_async_result_for_a_job_sent_after_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = add.delay(2, y=3)
    assert isinstance(result, AsyncResult)
    assert len(callbacks) == 1
    job = result.job
    assert (result.id, job.id, job.name, job.data) == (
        job.id, Job.objects.get().pk, "tests.jobfunctions.add", {"args": [2], "kwargs": {"y": 3}}
    )
    assert (result.state, result.ready()) == ("PENDING", False)
    assert run(result) == "completed"
    assert (result.state, result.get(timeout=1), result.result, result.successful()) == ("SUCCESS", 5, 5, True)
    assert add(1, 1) == 2


def test_a_bound_task_gets_its_job_handle_with_celerys_request_first():
    result = progress_task.apply_async(["hello"])
    run(result)
    assert (result.get(), result.job.progress()) == ("hello", {"label": "hello"})
    request_seen = retries_then_succeeds.apply_async((0, 1), task_id="named-7")
    run(request_seen)
    assert request_seen.get() == {"retries": 0, "max_retries": 2, "id": request_seen.id}


def test_countdown_and_eta_become_the_jobs_delay():
    assert add.apply_async((1, 2), countdown=1.5).job.to_json()["delay"] == 1500
    eta = timezone.now() + timedelta(seconds=30)
    job = add.apply_async((1, 2), eta=eta).job
    assert (job.state, 29_000 < job.to_json()["delay"] <= 30_000) == ("delayed", True)
    assert add.apply_async((1, 2), countdown=-5).job.state == "waiting"


def test_priority_is_celerys_on_redis_zero_the_highest(monkeypatch):
    sent = []
    monkeypatch.setattr(services, "job_send", lambda job_id: sent.append(job_id))
    assert add.apply_async((1, 2), priority=0).job.to_json()["opts"]["priority"] == 1
    assert add.apply_async((1, 2), priority=9).job.to_json()["opts"]["priority"] == 10
    assert [services.celery_priority(p) for p in Job.objects.order_by("priority").values_list("priority", flat=True)] == [0, 8]


def test_queue_and_task_id_place_and_name_the_job():
    result = add.apply_async((1, 2), queue="reports", task_id="nightly-7")
    job = Job.objects.get(pk=result.id)
    assert (job.queue, job.public_id, result.job.id) == ("reports", "nightly-7", "nightly-7")
    assert result.id == job.pk != "nightly-7"
    assert add.apply_async((1, 2), job_id="nightly-8").job.id == "nightly-8"
    owned = add.apply_async((1, 2), owner="account:7", task_id="nightly-7")
    assert (owned.job.owner, owned.job.id) == ("account:7", "nightly-7")


def test_expires_fails_a_job_that_starts_too_late_without_retrying():
    late = add.apply_async((1, 2), expires=timezone.now() - timedelta(seconds=1), attempts=3)
    assert run(late) == "failed"
    assert late.state == "REVOKED"
    with pytest.raises(TaskRevokedError, match="^expired: the task had not started by "):
        late.get()
    in_time = add.apply_async((1, 2), expires=60)
    run(in_time)
    assert in_time.get() == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": 10}, "priority must be a whole number from 0 (the highest) to 9, as Celery's on Redis; got 10."),
        ({"priority": -1}, "priority must be a whole number from 0 (the highest) to 9, as Celery's on Redis; got -1."),
        ({"priority": True}, "priority must be a whole number from 0 (the highest) to 9, as Celery's on Redis; got True."),
        ({"eta": datetime(2030, 1, 1)}, "eta must be an aware datetime."),
        ({"expires": datetime(2030, 1, 1)}, "expires must be an aware datetime."),
        ({"countdown": 1, "eta": timezone.now()}, "Give countdown or eta, not both."),
        ({"task_id": "a", "job_id": "b"}, "Give task_id or job_id (the same thing), not both."),
        ({"task_id": "no spaces"}, "opts.jobId must be 1 to 200 characters of letters, digits and _ . : @ ~ -."),
    ],
)
def test_bad_options_are_refused_and_make_no_job(options, message):
    with pytest.raises(InvalidJob) as caught:
        add.apply_async((1, 2), **options)
    assert str(caught.value) == message
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((object(),), "the task's arguments must be JSON: Object of type object is not JSON serializable."),
        ((float("nan"),), "the task's arguments must be JSON: Out of range float values are not JSON compliant: nan."),
    ],
)
def test_arguments_must_be_json(args, message):
    with pytest.raises(InvalidJob) as caught:
        add.delay(*args)
    assert str(caught.value) == message
    assert Job.objects.count() == 0


# -- retries: Celery's rules, or Bull's --------------------------------------------------------


def test_by_celerys_rules_an_exception_fails_the_job_at_once():
    result = raises.delay("card declined")
    assert result.job.to_json()["opts"]["attempts"] == 4  # max_retries 3: Celery's default
    assert run(result) == "failed"
    assert (result.state, result.job.attempts_made) == ("FAILURE", 1)
    with pytest.raises(ValueError, match="^card declined$"):
        result.get()


def test_by_bulls_rules_attempts_retry_any_failure(declared):
    @declared(attempts=2, backoff=1000)
    def flaky_bull():
        raise RuntimeError("again")

    result = flaky_bull.delay()
    assert run(result) == "delayed"
    assert result.state == "RETRY"
    make_due(result)
    assert run(result) == "failed"
    assert (result.state, result.job.attempts_made) == ("FAILURE", 2)


def test_self_retry_schedules_the_next_attempt_after_its_countdown():
    result = retries_then_succeeds.delay(2, 30)
    record = run_expecting_a_wait(result, 30)
    assert (result.state, record.state, record.failed_reason) == ("RETRY", "delayed", "Retry in 30s: ConnectionError('try 1 failed')")
    assert isinstance(result.info, Retry)
    make_due(result)
    run(result)
    make_due(result)
    assert run(result) == "completed"
    assert result.get() == {"retries": 2, "max_retries": 2, "id": result.id}


def test_self_retry_at_an_eta_waits_until_then(declared):
    eta = timezone.now() + timedelta(minutes=5)

    @declared(bind=True)
    def retries_at(task, naive):
        raise task.retry(eta=eta.replace(tzinfo=None) if naive else eta)

    result = retries_at.delay(False)
    run(result)
    # Never before the eta: the wait is counted in whole milliseconds, rounded up.
    assert eta <= Job.objects.get(pk=result.id).run_at < eta + timedelta(milliseconds=50)
    naive = retries_at.delay(True)
    assert run(naive) == "failed"
    assert naive.job.failed_reason == "eta must be an aware datetime."


def test_self_retry_without_a_countdown_waits_default_retry_delay(declared):
    @declared(bind=True, default_retry_delay=45)
    def retries_later(task):
        raise task.retry()

    assert run_expecting_a_wait(retries_later.delay(), 45).failed_reason == "Retry in 45s"


def test_self_retry_under_bulls_attempts_waits_the_jobs_backoff(declared):
    @declared(bind=True, attempts=3, backoff={"type": "fixed", "delay": 7000})
    def retries_with_backoff(task):
        raise task.retry(exc=KeyError("k"))

    record = run_expecting_a_wait(retries_with_backoff.delay(), 7)
    assert record.failed_reason == "Retry after the job's backoff: KeyError('k')"


def test_once_retries_run_out_self_retry_raises_its_exception(declared):
    result = retries_then_succeeds.delay(5, 0)
    assert [run(result) for _ in range(3)] == ["waiting", "waiting", "failed"]
    assert result.job.attempts_made == 3
    with pytest.raises(ConnectionError, match="^try 3 failed$"):
        result.get()

    @declared(bind=True, max_retries=0)
    def cannot_retry(task):
        raise task.retry()

    bare = cannot_retry.delay()
    run(bare)
    with pytest.raises(MaxRetriesExceededError, match=r"^Can't retry tests\.tmp\.cannot_retry\[\w+\] args:\[\] kwargs:\{\}$"):
        bare.get()


def test_autoretry_for_retries_those_exceptions_with_exponential_backoff(tmp_path):
    result = autoretries.delay(str(tmp_path / "runs"), 5)
    waits = []
    for _ in range(3):
        before = timezone.now()
        run(result)
        record = Job.objects.get(pk=result.id)
        waits.append(round((record.run_at - before).total_seconds()) if record.state == "delayed" else record.state)
        make_due(result)
    assert waits == [1, 2, "failed"]
    with pytest.raises(ConnectionError, match="^run 3 could not connect$"):
        result.get()


def test_autoretry_for_leaves_other_exceptions_alone(declared):
    @declared(autoretry_for=(ConnectionError,))
    def wrong_kind():
        raise ValueError("not retried")

    result = wrong_kind.delay()
    assert run(result) == "failed"
    assert result.job.attempts_made == 1


def test_ignore_result_stores_no_return_value(declared):
    @declared(ignore_result=True)
    def big_result():
        return {"rows": list(range(3))}

    result = big_result.delay()
    run(result)
    assert (result.state, result.result, result.job.return_value) == ("SUCCESS", None, None)


# -- declaring ---------------------------------------------------------------------------------


def test_bulls_and_celerys_retry_options_do_not_mix():
    with pytest.raises(TypeError) as caught:
        jobs.task(attempts=3, max_retries=2, retry_backoff=True)
    assert str(caught.value) == (
        "Give attempts/backoff (Bull's: every failure is retried) or Celery's retry options "
        "(max_retries, retry_backoff: only self.retry() and autoretry_for retry), not both."
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_retries": -1}, "max_retries must be a whole number from 0 to 99, or None; got -1."),
        ({"max_retries": 100}, "max_retries must be a whole number from 0 to 99, or None; got 100."),
        ({"autoretry_for": (int,)}, "autoretry_for must be a tuple of exception classes; got (<class 'int'>,)."),
        ({"attempts": 0}, "opts.attempts must be a whole number from 1 to 100."),
        ({"backoff": {"type": "linear"}}, 'opts.backoff must be a number of ms or {"type": "fixed" or "exponential", "delay": ms}.'),
    ],
)
def test_bad_task_options_fail_at_declaration(options, message):
    with pytest.raises(InvalidJob) as caught:
        jobs.task(**options)
    assert str(caught.value) == message


def test_max_retries_none_retries_up_to_the_most_attempts_allowed(declared):
    @declared(max_retries=None)
    def keeps_trying():
        return "ok"

    assert keeps_trying.delay().job.to_json()["opts"]["attempts"] == 100


def test_a_second_function_under_a_taken_task_name_is_refused(declared):
    def first():
        return 1

    def second():
        return 2

    declared(first, name="tests.tmp.taken")
    declared(first, name="tests.tmp.taken")  # the same function again is harmless
    with pytest.raises(AlreadyRegistered) as caught:
        jobs.task(name="tests.tmp.taken")(second)
    assert str(caught.value) == (
        "A job function is already registered as 'tests.tmp.taken': "
        "tests.jobs.test_tracked.test_a_second_function_under_a_taken_task_name_is_refused.<locals>.first."
    )


def test_async_result_of_a_task_and_of_the_app_find_the_job():
    result = add.delay(4, 4)
    run(result)
    assert (add.AsyncResult(result.id).get(), app.AsyncResult(result.id).get()) == (8, 8)
