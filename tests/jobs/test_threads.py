"""Periodic threads and fork(): a child never inherits one of their database connections open."""

import os
import threading
import time

import pytest
from django.db import DEFAULT_DB_ALIAS, connections

from jobs.threads import Periodic

# A fork with threads running warns (Python 3.12); prefork does exactly this, on purpose.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")]


class Probe(Periodic):
    """Queries the database each tick; one tick can be held open until released."""

    name = "jobs-test-probe"

    def __init__(self):
        super().__init__(interval=0.01)
        self.ticks, self.wrappers = [], []
        self.hold, self.held, self.ended = threading.Event(), threading.Event(), []

    def tick(self) -> None:
        db = connections[DEFAULT_DB_ALIAS]  # this thread's own
        with db.cursor() as cursor:
            cursor.execute("SELECT 1")
        self.wrappers.append(db)
        self.ticks.append(time.monotonic())
        if self.hold.is_set():
            self.hold.clear()
            self.held.set()
            time.sleep(0.2)
            self.ended.append(time.monotonic())


@pytest.fixture
def closed(monkeypatch) -> list:
    """The database wrappers closed: each as it was left by its close (the backend's close, recorded)."""
    calls = []
    backend = type(connections[DEFAULT_DB_ALIAS])
    close = backend.close

    def recorded(db):
        try:
            return close(db)
        finally:
            # Closed: no connection, unless SQLite in memory (which Django never closes).
            calls.append((db, db.connection is None or db.is_in_memory_db()))

    monkeypatch.setattr(backend, "close", recorded)
    return calls


@pytest.fixture
def probe(closed):
    periodic = Probe()
    periodic.start()
    yield periodic
    periodic.stop()


def is_closed(db, closed: list) -> bool:
    """`db` was closed (the next tick may have opened it again since)."""
    return (db, True) in closed


def fork_and_wait() -> float:
    """fork() a child that exits at once; return when the fork returned in the parent."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    returned = time.monotonic()
    os.waitpid(pid, 0)
    return returned


def wait_for(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_fork_closes_the_threads_connection_and_the_next_tick_opens_one(probe, closed):
    wait_for(lambda: len(probe.ticks) >= 2)
    wrapper = probe.wrappers[-1]
    assert wrapper.connection is not None and not is_closed(wrapper, closed)
    fork_and_wait()
    assert is_closed(wrapper, closed)
    before = len(probe.ticks)
    wait_for(lambda: len(probe.ticks) >= before + 2)
    assert probe.wrappers[-1] is wrapper and wrapper.connection is not None


def test_a_fork_waits_for_a_tick_under_way(probe, closed):
    probe.hold.set()
    assert probe.held.wait(5)
    forked = fork_and_wait()
    assert probe.ended and forked >= probe.ended[0]
    assert is_closed(probe.wrappers[-1], closed)


def test_a_stopped_periodic_closes_its_connections_and_is_left_alone_by_forks(probe, closed):
    wait_for(lambda: probe.ticks)
    probe.stop()
    assert is_closed(probe.wrappers[-1], closed)
    count = len(closed)
    fork_and_wait()
    assert len(closed) == count


def test_a_tick_that_forks_does_not_wait_for_itself(closed):
    forked = threading.Event()

    class Forking(Probe):
        def tick(self) -> None:
            super().tick()
            if not forked.is_set():
                fork_and_wait()  # the hook skips this thread's own lock and connection
                forked.set()

    periodic = Forking()
    periodic.start()
    try:
        assert forked.wait(5), "the fork inside a tick never returned"
        wait_for(lambda: len(periodic.ticks) >= 3)  # and the ticks go on
    finally:
        periodic.stop()
