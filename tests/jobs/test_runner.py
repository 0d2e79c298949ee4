"""Running one job, as the worker does, without a broker."""

import time
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection, connections

from jobs import registry, services
from jobs.models import Job
from jobs.runner import ClaimFailed, job_execute

pytestmark = pytest.mark.django_db


@contextmanager
def registered(name, func, **options):
    """Register a job function for one test."""
    registry.register(name, func, **options)
    try:
        yield
    finally:
        registry.unregister(name)


def run(job):
    return job_execute(job_id=job.pk, worker="test:1")


def test_a_job_runs_once_with_its_data_and_stores_its_result():
    job = services.job_create(name="noop", data={"a": 1})
    assert run(job) == "completed"
    job.refresh_from_db()
    assert (job.state, job.return_value, job.worker) == ("completed", {"data": {"a": 1}}, "test:1")
    # A second message for the same job does nothing.
    assert run(job) == "skipped"


def test_a_deleted_job_is_skipped():
    job = services.job_create(name="noop")
    services.job_remove(owner="", job_id=job.pk)
    assert run(job) == "skipped"


def test_a_failing_job_records_its_reason_and_traceback():
    job = services.job_create(name="fails", data={"message": "no such user"})
    assert run(job) == "failed"
    job.refresh_from_db()
    assert (job.state, job.failed_reason, job.attempts_made) == ("failed", "no such user", 1)
    assert len(job.stacktrace) == 1
    assert "RuntimeError: no such user" in job.stacktrace[0]
    assert "tests/jobfunctions.py" in job.stacktrace[0]


def test_a_job_with_attempts_left_is_retried_until_it_succeeds():
    job = services.job_create(name="flaky", data={"fail_times": 2}, opts={"attempts": 3})
    assert run(job) == "waiting"
    assert run(job) == "waiting"
    assert run(job) == "completed"
    job.refresh_from_db()
    assert (job.state, job.attempts_made, job.return_value) == ("completed", 2, {"attempts_made": 2})
    assert job.failed_reason == "attempt 2 fails"


def test_a_result_that_is_not_json_fails_the_job_clearly():
    with registered("returns_object", lambda job: object()):
        job = services.job_create(name="returns_object")
        assert run(job) == "failed"
    job.refresh_from_db()
    assert job.failed_reason.startswith("the return value must be JSON: Object of type object is not JSON serializable")


def test_a_job_whose_function_is_unknown_to_this_worker_fails_without_retry():
    registry.register("gone_later", lambda job: 1)
    job = services.job_create(name="gone_later", opts={"attempts": 5})
    registry.unregister("gone_later")
    assert run(job) == "failed"
    job.refresh_from_db()
    assert (job.state, job.attempts_made) == ("failed", 1)
    assert job.failed_reason == "No job function is registered as 'gone_later' in this worker."


def test_a_job_that_exceeds_its_timeout_fails_with_a_clear_reason():
    from billiard.exceptions import SoftTimeLimitExceeded

    def too_slow(job):
        raise SoftTimeLimitExceeded()

    with registered("too_slow", too_slow):
        job = services.job_create(name="too_slow", opts={"timeout": 250})
        assert run(job) == "failed"
    job.refresh_from_db()
    assert job.failed_reason == "Job timed out after 250 ms (opts.timeout)."


@pytest.mark.django_db(transaction=True)
def test_a_running_job_keeps_renewing_its_lock(settings):
    settings.JOBS = {**settings.JOBS, "LOCK_DURATION": 0.4}
    seen = []

    def slow(job):
        for _ in range(6):
            time.sleep(0.2)
            seen.append(Job.objects.get(pk=job.id).lock_until)
        return "done"

    with registered("slow_locked", slow):
        job = services.job_create(name="slow_locked")
        assert run(job) == "completed"
    # the lock moved forward while the job ran, so it never ran out
    assert seen[-1] > seen[0]
    assert all(later >= earlier for earlier, later in zip(seen, seen[1:]))


def test_a_job_taken_back_while_running_does_not_overwrite_the_new_run(monkeypatch):
    def taken_back(job):
        # the sweep recovers the job as if this worker were gone
        Job.objects.filter(pk=job.id).update(state="waiting", lock_token="", lock_until=None)
        return "late"

    with registered("taken_back", taken_back):
        job = services.job_create(name="taken_back")
        assert run(job) == "lost"
    job.refresh_from_db()
    assert (job.state, job.return_value) == ("waiting", None)


@contextmanager
def database_errors(statement: str, times: int = 1):
    """Make the first UPDATE(s) of jobs_job that set `statement`'s column fail as a lost connection would."""
    failed = []

    def fail(execute, sql, params, many, context):
        if len(failed) < times and sql.startswith("UPDATE") and f'"{statement}"' in sql.split("WHERE")[0]:
            failed.append(sql)
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(fail):
        yield failed


@pytest.fixture
def dead_after_error(monkeypatch):
    """The kept connection is found dead once its statement fails (Django's is_usable() says so)."""
    monkeypatch.setattr(connections["default"], "is_usable", lambda: False)


# Outside a test transaction, as in a worker: a database error ends the transaction it happens in.
@pytest.mark.django_db(transaction=True)
def test_a_claim_that_fails_on_a_kept_connection_that_died_goes_once_more_on_a_fresh_one(tmp_path, dead_after_error):
    marker = tmp_path / "runs.txt"
    job = services.job_create(name="records", data={"path": str(marker)})
    assert connection.connection is not None  # kept from the add, as from a worker's previous job
    with database_errors("processed_on") as failed:
        assert run(job) == "completed"
    assert len(failed) == 1 and marker.read_text().count(job.pk) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("connection_died", [True, False])
def test_a_database_error_at_claim_leaves_the_job_waiting_to_be_claimed_again(tmp_path, monkeypatch, connection_died):
    marker = tmp_path / "runs.txt"
    job = services.job_create(name="records", data={"path": str(marker)})
    Job.objects.filter(pk=job.pk).update(sent_at=job.created_at)
    monkeypatch.setattr(connections["default"], "is_usable", lambda: not connection_died)
    # A kept connection that died: its error, then one on the fresh connection, and no third try.
    # A live one (a lock timeout, say): its error only, as a second try would meet the same.
    with database_errors("processed_on", times=2) as failed:
        with pytest.raises(ClaimFailed, match=f"Job {job.pk}: the claim hit a database error: server closed the connection unexpectedly"):
            run(job)
    assert len(failed) == (2 if connection_died else 1)
    job.refresh_from_db()
    # still waiting, its message still counted as sent: the worker hands that message back
    assert (job.state, job.sent_at, job.lock_token) == ("waiting", job.created_at, "")
    assert run(job) == "completed"
    assert marker.read_text().count(job.pk) == 1


# Outside a test transaction, as in a worker: a database error ends the transaction it happens in.
@pytest.mark.django_db(transaction=True)
def test_a_database_error_while_completing_is_retried_and_the_job_runs_once(tmp_path):
    marker = tmp_path / "runs.txt"
    job = services.job_create(name="records", data={"path": str(marker)})
    with database_errors("return_value") as failed:
        assert run(job) == "completed"
    assert len(failed) == 1
    job.refresh_from_db()
    assert (job.state, job.return_value["data"], job.lock_token) == ("completed", {"path": str(marker)}, "")
    assert marker.read_text().count(job.pk) == 1


# Outside a test transaction, as in a worker: a database error ends the transaction it happens in.
@pytest.mark.django_db(transaction=True)
def test_a_database_error_while_recording_a_failure_is_retried():
    job = services.job_create(name="fails", data={"message": "card declined"})
    with database_errors("failed_reason") as failed:
        assert run(job) == "failed"
    assert len(failed) == 1
    job.refresh_from_db()
    assert (job.state, job.failed_reason, job.attempts_made) == ("failed", "card declined", 1)


def test_job_update_inside_a_job_that_was_taken_back_changes_nothing():
    def taken_back_then_updates(job):
        # the sweep recovers the job as if this worker were gone, and another run starts
        Job.objects.filter(pk=job._record.pk).update(lock_token="another-run")
        job.update({"written": "by the lost run"})
        return "late"

    with registered("taken_back_then_updates", taken_back_then_updates):
        job = services.job_create(name="taken_back_then_updates", data={"kept": True})
        assert run(job) == "lost"
    job.refresh_from_db()
    assert (job.state, job.data) == ("active", {"kept": True})


def test_job_update_inside_a_running_job_replaces_its_data():
    def updates(job):
        job.update({"step": 2})
        return job.data

    with registered("updates", updates):
        job = services.job_create(name="updates", data={"step": 1})
        assert run(job) == "completed"
    job.refresh_from_db()
    assert (job.data, job.return_value) == ({"step": 2}, {"step": 2})
