"""The job services: creation, sending, the guarded state changes, merging, removal."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models.signals import pre_delete
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import services
from jobs.errors import InvalidJob, JobExists, JobNotFound, JobStarted, UnknownJobName
from jobs.models import Job, JobState

pytestmark = pytest.mark.django_db


def test_create_stores_a_waiting_job_and_sends_it_only_after_commit(django_capture_on_commit_callbacks, sent):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = services.job_create(name="noop", data={"a": 1})
    assert (job.state, job.data, job.name, job.queue, job.attempts, job.delay) == ("waiting", {"a": 1}, "noop", "jobs", 1, 0)
    assert sent == [] and len(callbacks) == 1
    callbacks[0]()
    assert sent == [{"args": [job.pk], "queue": "jobs", "priority": 9}]
    # On a broker that tracks messages the key records the send: no second write on the way in.
    assert Job.objects.get(pk=job.pk).sent_at is None


def test_a_sweep_notes_a_sent_job_from_its_message_key_and_sends_nothing(broker, sent, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from jobs.sweep import jobs_sweep

    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(name="noop")
    report = jobs_sweep(now=timezone.now() + timedelta(seconds=10))
    assert (report.sent, len(sent)) == (0, 1)
    assert Job.objects.get(pk=job.pk).sent_at is not None


def test_on_a_broker_that_does_not_track_messages_sent_at_records_the_send(broker, sent, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(type(broker), "tracks_messages", False)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(name="noop")
    assert len(sent) == 1 and Job.objects.get(pk=job.pk).sent_at is not None


def test_create_without_a_name_uses_the_default_job_function():
    assert services.job_create().name == "__default__"


def test_a_delayed_job_is_not_sent_at_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = services.job_create(name="noop", opts={"delay": 5000})
    assert job.state == JobState.DELAYED
    assert job.run_at - job.created_at == timedelta(milliseconds=5000)
    assert callbacks == []


def test_unknown_name_lists_the_known_names():
    with pytest.raises(UnknownJobName) as caught:
        services.job_create(name="nope")
    assert "nope" in str(caught.value)
    assert {"__default__", "noop", "fails"} <= set(caught.value.known_names)
    assert Job.objects.count() == 0


@pytest.mark.parametrize("data", [[1, 2], "text", 3, {"x": float("nan")}, {"x": object()}])
def test_data_must_be_a_json_object(data):
    with pytest.raises(InvalidJob):
        services.job_create(name="noop", data=data)
    assert Job.objects.count() == 0


def test_a_taken_job_id_is_refused_and_the_existing_job_is_untouched():
    first = services.job_create(name="noop", data={"v": 1}, opts={"jobId": "report-7"})
    with pytest.raises(JobExists, match="A job with id 'report-7' already exists."):
        services.job_create(name="fails", data={"v": 2}, opts={"jobId": "report-7"})
    again = Job.objects.get(owner="", public_id="report-7")
    assert (again.name, again.data, again.created_at) == ("noop", {"v": 1}, first.created_at)


def test_a_taken_job_id_in_the_callers_transaction_leaves_it_usable(django_capture_on_commit_callbacks, sent):
    services.job_create(name="noop", opts={"jobId": "report-7"})
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        with pytest.raises(JobExists):
            services.job_create(name="noop", opts={"jobId": "report-7"})
        services.job_create(name="noop", opts={"jobId": "report-8"})
    assert sorted(Job.objects.values_list("public_id", flat=True)) == ["report-7", "report-8"]
    assert len(sent) == 1  # report-8's; the refused add sent nothing


def test_adding_a_job_is_one_statement_no_savepoint_around_it(sent):
    with CaptureQueriesContext(connection) as queries:
        services.job_create(name="noop", opts={"jobId": "report-7"})
        with pytest.raises(JobExists):
            services.job_create(name="noop", opts={"jobId": "report-7"})
    assert [query["sql"].split()[0] for query in queries.captured_queries] == ["INSERT", "INSERT"]


def test_priority_maps_bulls_highest_first_onto_redis_steps():
    assert services.celery_priority(1) == 0
    assert services.celery_priority(5) == 4
    assert services.celery_priority(1000) == 8
    assert services.celery_priority(None) == 9


def test_send_with_the_broker_down_keeps_the_job_waiting_and_unsent(broker_down):
    job = services.job_create(name="noop")
    assert services.job_send(job_id=job.pk) is False
    job.refresh_from_db()
    assert (job.state, job.sent_at) == ("waiting", None)


def test_only_one_claim_wins_and_it_holds_a_lock(settings):
    settings.JOBS = {**settings.JOBS, "LOCK_DURATION": 30}
    job = services.job_create(name="noop")
    token = services.job_claim(job_id=job.pk, worker="w1").lock_token
    assert token and services.job_claim(job_id=job.pk, worker="w2") is None
    job.refresh_from_db()
    assert (job.state, job.worker, job.lock_token) == ("active", "w1", token)
    assert timedelta(seconds=29) < job.lock_until - job.processed_on <= timedelta(seconds=30)


def test_a_deleted_or_unknown_job_cannot_be_claimed():
    assert services.job_claim(job_id="missing", worker="w") is None


def test_only_the_lock_holder_renews_reports_and_finishes():
    job = services.job_create(name="noop")
    token = services.job_claim(job_id=job.pk, worker="w").lock_token
    assert services.job_extend_lock(job_id=job.pk, token="not-the-token") is False
    assert services.job_set_progress(job_id=job.pk, progress=5, token="not-the-token") is False
    assert services.job_complete(job_id=job.pk, token="not-the-token", return_value=1) is False
    assert services.job_fail(job_id=job.pk, reason="x", stacktrace="", token="not-the-token") is None
    assert services.job_extend_lock(job_id=job.pk, token=token) is True
    assert services.job_complete(job_id=job.pk, token=token, return_value=1) is True
    job.refresh_from_db()
    assert (job.state, job.lock_token, job.lock_until, job.progress) == ("completed", "", None, 0)


def test_release_puts_an_active_job_back_without_counting_an_attempt_or_sending(sent):
    job = services.job_create(name="noop")
    token = services.job_claim(job_id=job.pk, worker="w").lock_token
    assert services.job_release(job_id=job.pk, token="not-the-token") is False
    assert services.job_release(job_id=job.pk, token=token) is True
    job.refresh_from_db()
    assert (job.state, job.attempts_made, job.stalled_count, job.lock_token) == ("waiting", 0, 0, "")
    # the message the worker took comes back from the broker: a second one would be a duplicate
    assert sent == [] and job.sent_at is not None
    assert services.job_release(job_id=job.pk, token=token) is False


def test_progress_is_recorded_only_for_an_active_job():
    job = services.job_create(name="noop")
    assert services.job_set_progress(job_id=job.pk, progress=10) is False
    token = services.job_claim(job_id=job.pk, worker="w").lock_token
    assert services.job_set_progress(job_id=job.pk, progress={"step": "two"}, token=token) is True
    job.refresh_from_db()
    assert job.progress == {"step": "two"}
    with pytest.raises(InvalidJob):
        services.job_set_progress(job_id=job.pk, progress=object())


def test_complete_sets_result_and_finished_on():
    job = services.job_create(name="noop")
    token = services.job_claim(job_id=job.pk, worker="w").lock_token
    assert services.job_complete(job_id=job.pk, token=token, return_value=[1, "two"]) is True
    job.refresh_from_db()
    assert (job.state, job.return_value, job.attempts_made) == ("completed", [1, "two"], 0)
    assert job.finished_on >= job.processed_on
    assert services.job_complete(job_id=job.pk, token=token, return_value="again") is False


def test_fail_without_attempts_left_fails_the_job():
    job = services.job_create(name="fails")
    token = services.job_claim(job_id=job.pk, worker="w").lock_token
    assert services.job_fail(job_id=job.pk, token=token, reason="boom", stacktrace="Traceback ...") == JobState.FAILED
    job.refresh_from_db()
    assert (job.state, job.failed_reason, job.stacktrace, job.attempts_made) == ("failed", "boom", ["Traceback ..."], 1)
    assert job.finished_on is not None


def test_fail_with_attempts_left_and_backoff_delays_the_retry():
    job = services.job_create(name="fails", opts={"attempts": 3, "backoff": {"type": "exponential", "delay": 1000}})
    token = services.job_claim(job_id=job.pk, worker="w").lock_token
    before = timezone.now()
    assert services.job_fail(job_id=job.pk, token=token, reason="one", stacktrace="t1") == JobState.DELAYED
    job.refresh_from_db()
    assert (job.state, job.attempts_made, job.finished_on, job.sent_at) == ("delayed", 1, None, None)
    assert timedelta(milliseconds=1000) <= job.run_at - before < timedelta(milliseconds=1500)
    # the second failure waits (2^2 - 1) * 1000 ms
    Job.objects.filter(pk=job.pk).update(state=JobState.WAITING)
    token = services.job_claim(job_id=job.pk, worker="w").lock_token
    before = timezone.now()
    assert services.job_fail(job_id=job.pk, token=token, reason="two", stacktrace="t2") == JobState.DELAYED
    job.refresh_from_db()
    assert timedelta(milliseconds=3000) <= job.run_at - before < timedelta(milliseconds=3500)
    assert (job.failed_reason, job.stacktrace) == ("two", ["t1", "t2"])


def test_fail_with_attempts_left_and_no_backoff_sends_again_at_once(django_capture_on_commit_callbacks, sent):
    job = services.job_create(name="fails", opts={"attempts": 2})
    token = services.job_claim(job_id=job.pk, worker="w").lock_token
    with django_capture_on_commit_callbacks(execute=True):
        assert services.job_fail(job_id=job.pk, token=token, reason="once", stacktrace="t") == JobState.WAITING
    assert sent == [{"args": [job.pk], "queue": "jobs", "priority": 9}]


def test_stacktraces_are_capped(settings):
    settings.JOBS = {**settings.JOBS, "STACKTRACE_LIMIT": 2}
    job = services.job_create(name="fails", opts={"attempts": 4})
    for n in range(3):
        Job.objects.filter(pk=job.pk).update(state=JobState.WAITING)
        token = services.job_claim(job_id=job.pk, worker="w").lock_token
        services.job_fail(job_id=job.pk, token=token, reason=str(n), stacktrace=f"t{n}")
    job.refresh_from_db()
    assert job.stacktrace == ["t1", "t2"]


def test_update_data_merges_or_replaces_and_touches_nothing_else():
    job = services.job_create(name="noop", data={"a": 1, "b": 2})
    services.job_claim(job_id=job.pk, worker="w")
    services.job_update_data(owner="", job_id=job.pk, data={"b": 3, "c": 4}, merge=True)
    job.refresh_from_db()
    assert (job.data, job.state) == ({"a": 1, "b": 3, "c": 4}, "active")
    services.job_update_data(owner="", job_id=job.pk, data={"z": 0}, merge=False)
    job.refresh_from_db()
    assert job.data == {"z": 0}


def test_update_data_refuses_what_is_not_an_object_and_keeps_the_data():
    job = services.job_create(name="noop", data={"a": 1})
    with pytest.raises(InvalidJob, match="data must be a JSON object."):
        services.job_update_data(owner="", job_id=job.pk, data=["a"], merge=True)
    job.refresh_from_db()
    assert job.data == {"a": 1}


def test_update_data_of_another_owners_job_is_not_found():
    job = services.job_create(name="noop", owner="account:1")
    with pytest.raises(JobNotFound):
        services.job_update_data(owner="account:2", job_id=job.pk, data={"x": 1}, merge=True)


@pytest.mark.parametrize("opts", [{}, {"delay": 10_000}])
def test_remove_deletes_a_job_that_has_not_started(opts):
    job = services.job_create(name="noop", opts=opts)
    services.job_remove(owner="", job_id=job.pk)
    assert not Job.objects.filter(pk=job.pk).exists()
    assert services.job_claim(job_id=job.pk, worker="w") is None


@pytest.mark.parametrize("finish", [None, "complete", "fail"])
def test_remove_refuses_a_started_job_and_leaves_it_as_it_was(finish):
    job = services.job_create(name="noop")
    token = services.job_claim(job_id=job.pk, worker="w").lock_token
    if finish == "complete":
        services.job_complete(job_id=job.pk, token=token, return_value=1)
    elif finish == "fail":
        services.job_fail(job_id=job.pk, token=token, reason="x", stacktrace="")
    state = Job.objects.get(pk=job.pk).state
    with pytest.raises(JobStarted) as caught:
        services.job_remove(owner="", job_id=job.pk)
    assert str(caught.value) == f"Job {job.pk!r} is {state}: only a waiting or delayed job can be removed."
    assert Job.objects.get(pk=job.pk).state == state


def test_remove_of_an_unknown_or_foreign_job_is_not_found():
    job = services.job_create(name="noop", owner="account:1")
    with pytest.raises(JobNotFound):
        services.job_remove(owner="", job_id="missing")
    with pytest.raises(JobNotFound):
        services.job_remove(owner="account:2", job_id=job.pk)
    assert Job.objects.filter(pk=job.pk).exists()


def test_a_job_goes_to_the_queue_its_function_names_whichever_way_it_is_added(django_capture_on_commit_callbacks, sent):
    with django_capture_on_commit_callbacks(execute=True):
        by_api = services.job_create(name="solo_records", data={"path": "x"})
        through_a_queue = services.job_create(name="solo_records", data={"path": "x"}, queue="jobs")
        plain = services.job_create(name="noop", queue="reports")
        default = services.job_create(name="noop")
    assert [job.queue for job in (by_api, through_a_queue, plain, default)] == ["solo", "solo", "reports", "jobs"]
    assert [message["queue"] for message in sent] == ["solo", "solo", "reports", "jobs"]


def test_a_timeout_gives_the_message_its_time_limits(django_capture_on_commit_callbacks, sent, settings):
    settings.JOBS = {**settings.JOBS, "TIMEOUT_GRACE": 2.0}
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(name="sleeps", opts={"timeout": 1500, "priority": 2})
    assert sent == [{"args": [job.pk], "queue": "jobs", "priority": 1, "soft_time_limit": 1.5, "time_limit": 3.5}]


def test_remove_holds_its_guard_with_delete_receivers_connected_and_the_claim_racing_it():
    """An audit app's pre_delete receiver (connected for every model) must not turn the guarded DELETE
    into a SELECT then a DELETE by id: a claim landing between them would lose its running job."""
    job = services.job_create(name="noop")
    audited, claimed = [], []

    def audit(sender, instance, **kwargs):
        audited.append(instance.pk)

    def claim_just_before_the_delete(execute, sql, params, many, context):
        if sql.startswith("DELETE") and not claimed:
            claimed.append(services.job_claim(job_id=job.pk, worker="racer"))
        return execute(sql, params, many, context)

    pre_delete.connect(audit, dispatch_uid="test-audit")
    try:
        with connection.execute_wrapper(claim_just_before_the_delete):
            with pytest.raises(JobStarted, match=f"Job {job.pk!r} is active: only a waiting or delayed job can be removed."):
                services.job_remove(owner="", job_id=job.pk)
    finally:
        pre_delete.disconnect(dispatch_uid="test-audit")
    assert claimed[0] is not None
    assert Job.objects.get(pk=job.pk).state == "active"


def test_set_data_writes_only_for_the_lock_holder():
    job = services.job_create(name="noop", data={"a": 1})
    token = services.job_claim(job_id=job.pk, worker="w").lock_token
    assert services.job_set_data(job_id=job.pk, token="not-the-token", data={"b": 2}) is False
    assert Job.objects.get(pk=job.pk).data == {"a": 1}
    assert services.job_set_data(job_id=job.pk, token=token, data={"b": 2}) is True
    assert Job.objects.get(pk=job.pk).data == {"b": 2}
    with pytest.raises(InvalidJob, match="data must be a JSON object."):
        services.job_set_data(job_id=job.pk, token=token, data=[1])


def test_the_claim_loads_the_row_it_claims_in_one_statement(django_assert_num_queries):
    from django.db import connection

    job = services.job_create(name="noop", data={"a": 1})
    with django_assert_num_queries(1 if connection.vendor in ("postgresql", "sqlite") else 2):
        claimed = services.job_claim(job_id=job.pk, worker="w")
    assert (claimed.pk, claimed.state, claimed.data, claimed.worker) == (job.pk, "active", {"a": 1}, "w")
    assert claimed.lock_token and claimed.lock_until > claimed.processed_on
    stored = Job.objects.get(pk=job.pk)
    assert (stored.lock_token, stored.processed_on) == (claimed.lock_token, claimed.processed_on)
