"""Statements made once: every value goes in and comes out exactly as through the ORM."""

from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from django.db import DataError, IntegrityError, NotSupportedError, connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import statements
from jobs.models import Job, JobState

pytestmark = pytest.mark.django_db

FIELDS = [field.attname for field in Job._meta.concrete_fields]


def as_stored(job: Job) -> dict:
    """Every column of the job but its ids, read back through the ORM, with the Python type of each value."""
    row = Job.objects.filter(pk=job.pk).values(*FIELDS).get()
    return {name: (value, type(value)) for name, value in row.items() if name not in ("id", "public_id")}


AT = timezone.now()


def a_job(**fields) -> Job:
    job = Job(**{"name": "noop", "queue": "jobs", "state": JobState.WAITING, "run_at": AT, "created_at": AT, **fields})
    job.public_id = job.public_id or job.pk
    return job


def test_an_inserted_job_is_stored_as_the_orm_stores_it():
    now = timezone.now()
    fields = {"data": {"text": "é ☃", "n": [1, 2.5, None]}, "opts": {"attempts": 3}, "priority": 4,
              "progress": {"at": 1}, "return_value": None, "stacktrace": ["a"], "sent_at": now}
    ours, orm = a_job(**fields), a_job(**fields)
    statements.insert([ours])
    Job.objects.bulk_create([orm])
    assert as_stored(ours) == as_stored(orm)
    # None in a JSON field is SQL NULL, as the ORM writes it, not the JSON text 'null'.
    assert Job.objects.filter(pk=ours.pk, return_value__isnull=True).exists()
    assert ours._state.adding is False


def test_an_update_writes_as_the_orms_update_and_counts_the_rows_it_changed():
    ours, orm = a_job(), a_job()
    Job.objects.bulk_create([ours, orm])
    later = timezone.now() + timedelta(hours=1)
    values = {"state": JobState.COMPLETED, "return_value": {"a": [1, "b"]}, "finished_on": later,
              "lock_token": "", "lock_until": None, "keep_last": 5}
    assert statements.update(values, where={"pk": ours.pk, "state": JobState.WAITING}) == 1
    assert Job.objects.filter(pk=orm.pk, state=JobState.WAITING).update(**values) == 1
    assert as_stored(ours) == as_stored(orm)
    # None in a JSON field is SQL NULL here too.
    assert statements.update({"return_value": None}, where={"pk": ours.pk}) == 1
    assert Job.objects.filter(pk=ours.pk, return_value__isnull=True).exists()
    # The guard holds: the job is no longer waiting, so nothing changes.
    assert statements.update({"state": JobState.FAILED}, where={"pk": ours.pk, "state": JobState.WAITING}) == 0
    assert Job.objects.get(pk=ours.pk).state == JobState.COMPLETED


def test_an_update_returning_loads_the_job_as_the_orm_loads_it():
    if not statements.returns_rows():
        pytest.fail("both databases the suite runs on (SQLite 3.35+, PostgreSQL) return updated rows")
    job = a_job(data={"x": ["y"]}, opts={"timeout": 5}, progress=7, stacktrace=["t"], attempts=3)
    Job.objects.bulk_create([job])
    now = timezone.now()
    claimed, = statements.update_returning(
        {"state": JobState.ACTIVE, "processed_on": now, "lock_token": "t" * 32}, where={"pk": job.pk, "state": JobState.WAITING}
    )
    loaded = Job.objects.get(pk=job.pk)
    assert {name: (getattr(claimed, name), type(getattr(claimed, name))) for name in FIELDS} == {
        name: (getattr(loaded, name), type(getattr(loaded, name))) for name in FIELDS
    }
    assert claimed.processed_on == now and claimed.processed_on.tzinfo is not None
    assert (claimed._state.adding, claimed._state.db) == (False, "default")
    assert statements.update_returning({"state": JobState.ACTIVE}, where={"pk": job.pk, "state": JobState.WAITING}) == []


def test_a_failed_statement_inside_a_transaction_marks_it_for_rollback_as_the_orm_does():
    job = a_job()
    Job.objects.bulk_create([job])
    with pytest.raises(TransactionManagementError), transaction.atomic():
        with pytest.raises((IntegrityError, DataError)):
            # A duplicate primary key: the database refuses the row.
            statements.insert([a_job(id=job.pk, public_id="other")])
        # The transaction is broken: using it again is refused instead of committing half of it.
        Job.objects.count()


def prepared_statements() -> list[str]:
    """The statements this connection has prepared on the PostgreSQL server."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def a_life() -> list[str]:
    """Add, claim and complete one job through the statements; return the SQL Django logged for them."""
    job = a_job()
    with CaptureQueriesContext(connection) as queries:
        statements.insert([job])
        claimed = statements.update_returning({"state": JobState.ACTIVE, "lock_token": "t"}, where={"pk": job.pk, "state": JobState.WAITING})
        assert [row.pk for row in claimed] == [job.pk]
        assert statements.update({"state": JobState.COMPLETED, "lock_token": ""}, where={"pk": job.pk, "lock_token": "t"}) == 1
    assert Job.objects.get(pk=job.pk).state == JobState.COMPLETED
    return [query["sql"] for query in queries.captured_queries]


def test_the_statements_are_prepared_on_postgresql_and_logged_by_django():
    before = prepared_statements() if connection.vendor == "postgresql" else []
    logged = a_life()
    assert [sql.split()[0] for sql in logged] == ["INSERT", "UPDATE", "UPDATE"]
    if connection.vendor == "postgresql":
        for _ in range(3):
            assert a_life() == logged
            Job.objects.filter(state=JobState.COMPLETED).count()  # the ORM's own queries stay unprepared
        # Prepared statements outlive the test's transaction: those of earlier tests may be there.
        new = [sql for sql in prepared_statements() if sql not in before]
        assert all(sql in logged for sql in new) and all(sql in before or sql in new for sql in logged), (logged, new)
        assert all("$1" in sql for sql in logged)
        # psycopg watches only these statements: the ORM's rollback of a savepoint (or its ALTER,
        # DROP) would otherwise make it deallocate every prepared statement.
        kept = prepared_statements()
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            Job.objects.filter(state=JobState.WAITING).update(worker="x")
            1 / 0
        assert prepared_statements() == kept
    else:
        # SQLite has no server: sqlite3 keeps its own cache of compiled statements.
        assert all("?" not in sql for sql in logged)


def test_with_prepared_statements_off_nothing_is_prepared(settings):
    settings.JOBS = {**settings.JOBS, "PREPARED_STATEMENTS": False}
    before = prepared_statements() if connection.vendor == "postgresql" else []
    for _ in range(3):
        logged = a_life()
    assert [sql.split()[0] for sql in logged] == ["INSERT", "UPDATE", "UPDATE"]
    if connection.vendor == "postgresql":
        assert prepared_statements() == before
        assert all("$1" not in sql for sql in logged), "Django's own client-side binding logs the values"


@contextmanager
def column_retyped():
    """A migration run meanwhile by another process: a column the claim returns gets a new type (then its own back)."""
    settings = connection.settings_dict
    params = {"dbname": settings["NAME"], "user": settings["USER"], "password": settings["PASSWORD"],
              "host": settings["HOST"], "port": settings["PORT"]}
    with psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True) as other:
        other.execute('ALTER TABLE jobs_job ALTER COLUMN "worker" TYPE varchar(300)')
        try:
            yield
        finally:
            other.execute('ALTER TABLE jobs_job ALTER COLUMN "worker" TYPE varchar(200)')


def claim(job: Job) -> list[str]:
    claimed = statements.update_returning({"state": JobState.ACTIVE, "worker": "w"}, where={"pk": job.pk, "state": JobState.WAITING})
    return [row.pk for row in claimed]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only: SQLite prepares statements again itself")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("in_transaction", [False, True])
def test_a_prepared_claim_outlives_a_migration_that_retypes_a_column_it_returns(in_transaction):
    jobs = [a_job() for _ in range(4)]
    statements.insert(jobs)
    try:
        # Prepared at its second run, with the column's old type.
        assert [claim(job) for job in jobs[:2]] == [[job.pk] for job in jobs[:2]]
        with column_retyped():
            if in_transaction:
                # The error ends the transaction; its rollback makes psycopg forget what it prepared.
                with pytest.raises(NotSupportedError, match="cached plan must not change result type"), transaction.atomic():
                    claim(jobs[2])
                with transaction.atomic():
                    assert claim(jobs[3]) == [jobs[3].pk]
            else:
                # Outside one (as a worker claims), the statement is prepared again and runs.
                assert claim(jobs[2]) == [jobs[2].pk]
                assert claim(jobs[3]) == [jobs[3].pk]
        assert Job.objects.get(pk=jobs[2].pk).state == (JobState.WAITING if in_transaction else JobState.ACTIVE)
    finally:
        connection.close()  # its statements were prepared for the column's other type
