"""SQLite's log: copied into the database by a worker's thread, not by the commits of adds, claims and completions."""

import threading
import time
from types import SimpleNamespace

import pytest
from django.db import DatabaseError
from django.db.utils import ConnectionHandler

from jobs import checkpoint
from jobs.checkpoint import Checkpointer, wal_checkpoint
from jobs.worker import Worker


@pytest.fixture
def sqlite_file(settings, tmp_path, django_db_blocker):
    """A connection to a new SQLite file with the project's SQLite options."""
    django_db_blocker.unblock()
    db = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "db.sqlite3"), "OPTIONS": settings.SQLITE_OPTIONS}}
    )["default"]
    yield db
    db.close()
    django_db_blocker.restore()


def test_commits_leave_the_log_to_the_checkpointer_and_a_checkpoint_copies_all_of_it(sqlite_file):
    with sqlite_file.cursor() as cursor:
        cursor.execute("CREATE TABLE t (x BLOB)")
        # Each commit logs 3 pages (4 KB each): 600 of them pass SQLite's default autocheckpoint (1,000 pages).
        for _ in range(600):
            cursor.execute("INSERT INTO t VALUES (randomblob(8000))")
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone() == (10_000,)
    busy, logged, copied = wal_checkpoint(sqlite_file)
    assert (busy, copied) == (0, logged) and logged > 1000
    # Nothing written since: the log is all in the database already.
    assert wal_checkpoint(sqlite_file) == (0, logged, logged)


def test_only_an_sqlite_file_has_a_log_to_checkpoint(sqlite_file):
    memory = ConnectionHandler({"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})["default"]
    other = SimpleNamespace(vendor="postgresql")
    assert (checkpoint.wanted(sqlite_file), checkpoint.wanted(memory), checkpoint.wanted(other)) == (True, False, False)
    assert wal_checkpoint(other) is None


def test_the_checkpointer_keeps_checkpointing_after_a_database_error(monkeypatch):
    calls = []

    def flaky(db=None):
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise DatabaseError("database is locked")
        return (0, 0, 0)

    monkeypatch.setattr(checkpoint, "wal_checkpoint", flaky)
    checkpointer = Checkpointer(interval=0.01)
    checkpointer.start()
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    checkpointer.stop()
    assert len(calls) >= 3
    assert not any(thread.name == "jobs-checkpointer" and thread.is_alive() for thread in threading.enumerate())


@pytest.mark.django_db
@pytest.mark.parametrize("has_log", [True, False])
def test_a_worker_runs_a_checkpointer_only_where_there_is_a_log_and_stops_it_at_shutdown(settings, monkeypatch, has_log):
    settings.JOBS = {**settings.JOBS, "SWEEP_INTERVAL": 0}
    monkeypatch.setattr(checkpoint, "wanted", lambda: has_log)
    monkeypatch.setattr(checkpoint, "wal_checkpoint", lambda: (0, 0, 0))
    worker = Worker(nodename="w@h")
    worker.ready()
    started = worker.checkpointer
    assert (started is not None, started and started._thread.is_alive()) == ((True, True) if has_log else (False, None))
    worker.stopped()
    assert worker.checkpointer is None
    assert started is None or not started._thread.is_alive()
