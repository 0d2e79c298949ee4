"""Counts kept as jobs change: after any writes, by anyone, they equal a count of the rows, folded or not."""

from collections import Counter

import pytest
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs import counts, selectors, services
from jobs.models import Job, JobState
from jobs.sweep import jobs_sweep
from tests.seeding import EXAMPLES, seeded

pytestmark = pytest.mark.django_db

OWNERS = ["", "account:1", "account:2"]
QUEUES = ["jobs", "mail"]
NAMES = ["noop", "sleeps"]
STATES = list(JobState.values)


def truth(owner: str | None = None) -> Counter:
    """What a GROUP BY over the job rows says: {(owner, queue, name, state): n}."""
    jobs = Job.objects.all() if owner is None else Job.objects.filter(owner=owner)
    rows = jobs.values_list("owner", "queue", "name", "state").annotate(n=Count("pk")).order_by()
    return Counter({row[:4]: row[4] for row in rows})


def kept(owner: str | None = None) -> Counter:
    return Counter({(c.owner, c.queue, c.name, c.state): c.n for c in counts.counts(owner=owner)})


def assert_counts_hold() -> None:
    for owner in [None, *OWNERS]:
        assert kept(owner) == truth(owner), owner


def change_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM jobs_count_change")
        return cursor.fetchone()[0]


def add(owner="", queue="jobs", name="noop", state=JobState.WAITING) -> Job:
    job = Job(owner=owner, queue=queue, name=name, state=state, run_at=timezone.now())
    job.public_id = job.pk
    Job.objects.bulk_create([job])
    return job


def test_every_transition_of_the_services_is_counted_and_a_sweep_folds_them(django_capture_on_commit_callbacks, sent):
    with django_capture_on_commit_callbacks(execute=True):
        first = services.job_create(name="noop", owner="account:1")
        second, third = services.jobs_create_bulk(jobs=[{"name": "noop"}, {"name": "noop", "opts": {"delay": 60_000}}], owner="account:1")
        claimed = services.job_claim(job_id=first.pk, worker="w")
        services.job_complete(job_id=first.pk, token=claimed.lock_token, return_value=1)
        claimed = services.job_claim(job_id=second.pk, worker="w")
        services.job_fail(job_id=second.pk, token=claimed.lock_token, reason="no", stacktrace="")
    assert selectors.job_counts(owner="account:1") == {"waiting": 0, "delayed": 1, "active": 0, "completed": 1, "failed": 1}
    assert change_rows() > 0
    assert_counts_hold()
    jobs_sweep()
    assert change_rows() == 0
    assert selectors.job_counts(owner="account:1") == {"waiting": 0, "delayed": 1, "active": 0, "completed": 1, "failed": 1}
    services.job_retry(owner="account:1", job_id=second.public_id)
    services.job_remove(owner="account:1", job_id=third.public_id)
    assert selectors.job_counts(owner="account:1") == {"waiting": 1, "delayed": 0, "active": 0, "completed": 1, "failed": 0}
    assert selectors.job_counts(owner="account:2") == dict.fromkeys(STATES, 0)
    assert_counts_hold()


def test_writes_that_bypass_the_services_are_counted_too():
    jobs = [add(owner=owner, queue=queue) for owner in OWNERS for queue in QUEUES]
    Job.objects.filter(queue="mail").update(state=JobState.FAILED)  # one UPDATE of many rows
    Job.objects.filter(pk=jobs[0].pk).update(queue="mail", name="sleeps")  # moved, same state
    Job.objects.filter(pk=jobs[1].pk).update(progress=50)  # no counted column: no change row
    Job.objects.filter(owner="account:2").delete()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM jobs_job WHERE id = %s", [jobs[2].pk])
    assert_counts_hold()
    counts.jobs_counts_fold()
    assert_counts_hold()


def test_counts_per_queue_and_name_and_every_owners():
    add(owner="account:1", queue="mail", name="sleeps", state=JobState.ACTIVE)
    add(owner="account:1", queue="jobs", name="noop")
    add(owner="account:2", queue="jobs", name="noop", state=JobState.FAILED)
    empty = dict.fromkeys(STATES, 0)
    assert selectors.job_counts(owner="account:1", by="queue") == {
        "jobs": {**empty, "waiting": 1}, "mail": {**empty, "active": 1},
    }
    assert selectors.job_counts(owner="account:1", by="name") == {
        "noop": {**empty, "waiting": 1}, "sleeps": {**empty, "active": 1},
    }
    assert selectors.job_counts(owner=None) == {**empty, "waiting": 1, "active": 1, "failed": 1}


def test_a_read_is_one_query_and_a_fold_leaves_no_empty_totals():
    job = add(owner="account:1")
    counts.jobs_counts_fold()
    Job.objects.filter(pk=job.pk).delete()
    with CaptureQueriesContext(connection) as queries:
        assert selectors.job_counts(owner="account:1") == dict.fromkeys(STATES, 0)
    assert len(queries.captured_queries) == 1
    assert counts.jobs_counts_fold() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM jobs_count")
        assert cursor.fetchone()[0] == 0


# One write to the job table, by index into the jobs that exist (the index wraps around).
operations = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(OWNERS), st.sampled_from(QUEUES), st.sampled_from(NAMES), st.sampled_from(STATES)),
    st.tuples(st.just("state"), st.integers(0, 50), st.sampled_from(STATES)),
    st.tuples(st.just("queue"), st.integers(0, 50), st.sampled_from(QUEUES)),
    st.tuples(st.just("owner"), st.integers(0, 50), st.sampled_from(OWNERS)),
    st.tuples(st.just("name"), st.integers(0, 50), st.sampled_from(NAMES)),
    st.tuples(st.just("delete"), st.integers(0, 50)),
    st.tuples(st.just("every"), st.sampled_from(STATES), st.sampled_from(STATES)),
    st.tuples(st.just("fold")),
)


def apply(operation: tuple) -> None:
    kind, *args = operation
    ids = list(Job.objects.order_by("pk").values_list("pk", flat=True))
    if kind == "add":
        owner, queue, name, state = args
        add(owner=owner, queue=queue, name=name, state=state)
    elif kind == "fold":
        counts.jobs_counts_fold(batch=3)  # small batches: some changes stay unfolded
    elif kind == "every":
        Job.objects.filter(state=args[0]).update(state=args[1])
    elif ids:
        one = Job.objects.filter(pk=ids[args[0] % len(ids)])
        if kind == "delete":
            one.delete()
        else:
            one.update(**{kind: args[1]})


@seeded
@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operations, max_size=30))
def test_any_writes_in_any_order_leave_counts_equal_to_the_rows(operations):
    Job.objects.all().delete()
    for operation in operations:
        apply(operation)
        assert_counts_hold()


def test_a_fold_goes_a_batch_at_a_time_within_its_budget():
    for _ in range(7):
        add(owner="account:1")
    assert counts.jobs_counts_fold(batch=3, budget=0) == 3  # one batch, then the budget is spent
    assert change_rows() == 4
    assert_counts_hold()
    assert counts.jobs_counts_fold(batch=3) == 4
    assert change_rows() == 0
    assert_counts_hold()


def test_the_triggers_exist_after_every_migration():
    """A migration that rebuilds jobs_job on SQLite drops its triggers: it must create them again (see 0006)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'jobs_job'::regclass AND NOT tgisinternal")
        else:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'jobs_job'")
        names = {row[0] for row in cursor.fetchall()}
    expected = {
        "postgresql": {"jobs_job_counted", "jobs_job_counted_update", "jobs_job_counted_truncate"},
        "sqlite": {"jobs_job_counted_insert", "jobs_job_counted_delete", "jobs_job_counted_update"},
    }
    assert names == expected[connection.vendor]


@pytest.mark.django_db(transaction=True)
def test_a_flush_of_the_tables_leaves_no_counts_behind():
    """What a TransactionTestCase does between tests: SQLite DELETEs every row, PostgreSQL TRUNCATEs."""
    for owner in OWNERS:
        add(owner=owner)
    counts.jobs_counts_fold()
    add(owner="account:1", state=JobState.FAILED)
    call_command("flush", interactive=False, verbosity=0)
    assert Job.objects.count() == 0
    assert kept() == Counter()
    counts.jobs_counts_fold()
    assert kept() == Counter()


@pytest.mark.django_db(transaction=True)
def test_one_fold_at_a_time():
    """PostgreSQL: a sweep that finds another folding goes on at once (an advisory lock).

    SQLite: a fold's transaction takes the one write lock as it begins (IMMEDIATE), so no other
    writer, fold or job, runs in the middle of it.
    """
    if connection.vendor == "sqlite":
        assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
        return
    add(owner="account:1")
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [counts.FOLD_LOCK])
        assert counts.jobs_counts_fold() is None
        assert change_rows() == 1
        other.commit()
        assert counts.jobs_counts_fold() == 1
        assert_counts_hold()
    finally:
        other.close()
