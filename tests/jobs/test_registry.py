"""The registry of job functions: names, and how each function's failures are retried."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import registry, services
from jobs.models import Job
from jobs.registry import RetryChoice
from jobs.runner import job_execute
from tests.jobs.test_runner import registered

pytestmark = pytest.mark.django_db


def fails_with(message):
    def job_function(job):
        raise RuntimeError(message)

    return job_function


def test_without_a_retry_policy_a_failure_is_retried_after_the_jobs_backoff():
    assert registry.get("fails").retry_choice(RuntimeError("x")) == RetryChoice(retry=True, delay=None)
    job = services.job_create(name="fails", opts={"attempts": 2, "backoff": 60_000})
    before = timezone.now()
    assert job_execute(job_id=job.pk, worker="w") == "delayed"
    job.refresh_from_db()
    assert before + timedelta(seconds=60) <= job.run_at <= timezone.now() + timedelta(seconds=60)


def test_a_retry_policy_may_choose_the_delay_of_the_next_attempt():
    with registered("chooses_delay", fails_with("later"), retry_policy=lambda exc: RetryChoice(delay=2_500)):
        job = services.job_create(name="chooses_delay", opts={"attempts": 2, "backoff": 60_000})
        before = timezone.now()
        assert job_execute(job_id=job.pk, worker="w") == "delayed"
    job.refresh_from_db()
    assert (job.attempts_made, job.failed_reason) == (1, "later")
    assert before + timedelta(milliseconds=2_500) <= job.run_at <= timezone.now() + timedelta(milliseconds=2_500)


def test_a_chosen_delay_of_zero_sends_the_retry_at_once(django_capture_on_commit_callbacks):
    with registered("retries_now", fails_with("again"), retry_policy=lambda exc: RetryChoice(delay=0)):
        job = services.job_create(name="retries_now", opts={"attempts": 2, "backoff": 60_000})
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert job_execute(job_id=job.pk, worker="w") == "waiting"
    assert len(callbacks) == 1


def test_a_retry_policy_may_fail_the_job_with_attempts_left():
    with registered("gives_up", fails_with("no point"), retry_policy=lambda exc: RetryChoice(retry=False)):
        job = services.job_create(name="gives_up", opts={"attempts": 5})
        assert job_execute(job_id=job.pk, worker="w") == "failed"
    job = Job.objects.get(pk=job.pk)
    assert (job.state, job.attempts_made, job.failed_reason) == ("failed", 1, "no point")


def test_the_policy_sees_the_exception_the_function_raised():
    seen = []

    def policy(exc):
        seen.append(exc)
        return RetryChoice()

    with registered("watched", fails_with("look"), retry_policy=policy):
        job_execute(job_id=services.job_create(name="watched").pk, worker="w")
    assert [(type(exc), str(exc)) for exc in seen] == [(RuntimeError, "look")]
