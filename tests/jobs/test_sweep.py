"""The sweep: due jobs promoted, stalled jobs recovered, missing messages sent, and never one message too many."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import services
from jobs.models import Job
from jobs.sweep import Sweeper, jobs_sweep

pytestmark = pytest.mark.django_db


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def test_sweep_promotes_due_delayed_jobs_and_sends_them(sent):
    due = services.job_create(name="noop", opts={"delay": 1000})
    later_job = services.job_create(name="noop", opts={"delay": 60_000})
    report = jobs_sweep(now=later(2))
    assert (report.promoted, report.sent) == (1, 1)
    assert [m["args"] for m in sent] == [[due.pk]]
    assert Job.objects.get(pk=due.pk).state == "waiting"
    assert Job.objects.get(pk=later_job.pk).state == "delayed"


def test_sweep_sends_waiting_jobs_whose_message_never_left(sent):
    job = services.job_create(name="noop")  # on_commit never ran: the message never left
    assert jobs_sweep().sent == 0  # still within the grace period
    report = jobs_sweep(now=later(10))
    assert report.sent == 1 and sent[0]["args"] == [job.pk]
    assert jobs_sweep(now=later(20)).sent == 0


def test_a_message_still_queued_is_never_sent_twice_however_long_it_waits(sent, broker, settings):
    settings.JOBS = {**settings.JOBS, "RESEND_AFTER": 60}
    job = services.job_create(name="noop")
    services.job_send(job_id=job.pk)
    for minutes in (2, 30, 600):
        report = jobs_sweep(now=later(minutes * 60))
        assert (report.sent, report.still_queued) == (0, 1)
    assert [m["args"] for m in sent] == [[job.pk]]


def test_a_queued_message_is_looked_for_once_per_resend_after(sent, broker, settings):
    settings.JOBS = {**settings.JOBS, "RESEND_AFTER": 60}
    job = services.job_create(name="noop")
    services.job_send(job_id=job.pk)
    first = later(61)
    assert jobs_sweep(now=first).still_queued == 1
    assert Job.objects.get(pk=job.pk).sent_at == first
    assert jobs_sweep(now=first + timedelta(seconds=30)).still_queued == 0
    assert jobs_sweep(now=first + timedelta(seconds=61)).still_queued == 1


def test_a_message_the_broker_lost_is_sent_again_after_resend_after(sent, broker, settings):
    settings.JOBS = {**settings.JOBS, "RESEND_AFTER": 60}
    job = services.job_create(name="noop")
    services.job_send(job_id=job.pk)
    broker.queued.clear()  # lost inside Redis
    assert jobs_sweep(now=later(30)).sent == 0
    assert jobs_sweep(now=later(61)).sent == 1
    assert [m["args"] for m in sent] == [[job.pk], [job.pk]]
    assert jobs_sweep(now=later(62)).sent == 0


def test_after_the_broker_lost_its_data_every_waiting_job_is_sent_again_a_batch_per_sweep(sent, broker, settings):
    settings.JOBS = {**settings.JOBS, "SWEEP_BATCH": 2}
    waiting = [services.job_create(name="noop") for _ in range(5)]
    for job in waiting:
        services.job_send(job_id=job.pk)
    delayed = services.job_create(name="noop", opts={"delay": 60_000})
    broker.queued.clear()
    broker.lost = later(1)  # the mark was set again: messages sent before it may be gone
    counts = [jobs_sweep(now=later(2)).sent for _ in range(4)]
    assert counts == [2, 2, 1, 0]
    assert sorted(m["args"][0] for m in sent[5:]) == sorted(job.pk for job in waiting)
    assert Job.objects.get(pk=delayed.pk).state == "delayed"


def test_a_job_sent_after_the_loss_is_not_sent_again(sent, broker):
    job = services.job_create(name="noop")
    broker.lost = later(-5)
    services.job_send(job_id=job.pk)
    assert jobs_sweep(now=later(1)).sent == 0
    assert len(sent) == 1


def test_with_the_broker_out_of_sight_nothing_is_sent_again(sent, broker, settings):
    settings.JOBS = {**settings.JOBS, "RESEND_AFTER": 60}
    job = services.job_create(name="noop")
    services.job_send(job_id=job.pk)
    broker.down = True
    report = jobs_sweep(now=later(61))
    assert (report.sent, report.still_queued) == (0, 1)
    assert len(sent) == 1


def test_sweep_recovers_a_job_whose_lock_ran_out_then_fails_it_after_max_stalls(sent, settings):
    settings.JOBS = {**settings.JOBS, "LOCK_DURATION": 10, "MAX_STALLED_COUNT": 1}
    job = services.job_create(name="noop")
    first = services.job_claim(job_id=job.pk, worker="w1").lock_token
    assert jobs_sweep(now=later(5)).recovered == 0
    report = jobs_sweep(now=later(11))
    assert (report.recovered, report.sent) == (1, 1)
    job.refresh_from_db()
    assert (job.state, job.stalled_count, job.attempts_made, job.lock_token) == ("waiting", 1, 0, "")
    # the lost worker's late result is ignored
    assert services.job_complete(job_id=job.pk, token=first, return_value="late") is False
    services.job_claim(job_id=job.pk, worker="w2")
    report = jobs_sweep(now=later(11))
    assert (report.recovered, report.stalled_out) == (0, 1)
    job.refresh_from_db()
    assert (job.state, job.stalled_count, job.failed_reason) == ("failed", 2, "job stalled more than allowable limit")
    assert job.finished_on is not None


def test_sweep_with_the_broker_down_promotes_and_leaves_messages_for_later(broker_down):
    services.job_create(name="noop", opts={"delay": 1000})
    report = jobs_sweep(now=later(2))
    assert (report.promoted, report.sent) == (1, 0)
    assert Job.objects.get().state == "waiting"
    assert Job.objects.get().sent_at is None


def test_every_sweep_query_sets_its_own_order(settings):
    """Meta.ordering (newest first) must never pick the plan: it made SQLite scan the created_at index."""
    settings.JOBS = {**settings.JOBS, "LOCK_DURATION": 1}
    services.job_create(name="noop", opts={"delay": 1000})
    services.job_create(name="noop")
    services.job_claim(job_id=services.job_create(name="noop").pk, worker="w")
    with CaptureQueriesContext(connection) as queries:
        jobs_sweep(now=later(5))
    selects = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and "jobs_job" in q["sql"]]
    assert len(selects) >= 4
    assert [sql for sql in selects if "created_at" in sql.split("ORDER BY")[-1]] == []
    assert all("ORDER BY" in sql for sql in selects if "LIMIT" in sql)


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_thread_logs_what_a_sweep_did(caplog, sent):
    services.job_create(name="noop", opts={"delay": 1})
    Job.objects.update(run_at=later(-10))
    with caplog.at_level("INFO", logger="jobs.sweep"):
        report = Sweeper(interval=1).sweep_once()
    assert (report.promoted, report.sent) == (1, 1)
    assert "Job sweep: 1 delayed jobs due, 0 stalled jobs back to waiting, 0 failed as stalled, 1 messages sent, 0 messages found still queued" in caplog.text
