"""The jobs app's background threads: one per process (lock renewals, a worker's notes), and periodic ones (sweeps, checkpoints)."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class ProcessThread:
    """Run `target` in a daemon thread of this process: started on first use, and again in a process
    forked after it (a fork copies no threads) or when it is no longer alive.

    `before_start` runs (under the same lock) just before each start: a forked process drops what
    it inherited there, such as a queue the parent's thread was reading.
    """

    def __init__(self, name: str, target: Callable[[], None], *, before_start: Callable[[], None] | None = None):
        self.name = name
        self._target = target
        self._before_start = before_start
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def ensure_running(self) -> None:
        with self._guard:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            if self._before_start is not None:
                self._before_start()
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._target, name=self.name, daemon=True)
            self._thread.start()

    @property
    def thread(self) -> threading.Thread | None:
        """This process's thread, once started."""
        return self._thread if self._pid == os.getpid() else None


# A worker's main process runs its Periodic threads (the sweep, SQLite's checkpoints) while prefork
# forks its pool processes. A child must not inherit a database connection that is open: SQLite
# forbids carrying one across fork() (its locks are per process), and a PostgreSQL socket would be
# shared with the parent. So a fork waits for the ticks under way (up to FORK_WAIT each), and closes
# the connections of every Periodic thread before it happens; their next ticks open new ones.
FORK_WAIT = 5.0
_running: weakref.WeakSet[Periodic] = weakref.WeakSet()
# One fork at a time goes through the hooks: each fork's hooks take and give back their own locks.
_forking = threading.Lock()
_held_over_fork: list[Periodic] = []


def _before_fork() -> None:
    _forking.acquire()
    for periodic in list(_running):
        if periodic._thread is threading.current_thread():
            continue  # a tick that forks: its own connection is in use, and its lock is its own
        if not periodic._ticking.acquire(timeout=FORK_WAIT):
            logger.warning("Forking while %s is still in a tick after %ss: its connection is left open", periodic.name, FORK_WAIT)
            continue
        _held_over_fork.append(periodic)
        periodic.close_connections()


def _after_fork() -> None:
    while _held_over_fork:
        _held_over_fork.pop()._ticking.release()
    _forking.release()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)


class Periodic:
    """Call `tick` every `interval` seconds in a daemon thread named `name`, until stopped; close the thread's database connection at the end."""

    name = "jobs-periodic"

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._databases: list[Any] = []
        self._ticking = threading.Lock()

    def start(self) -> None:
        _running.add(self)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run(self) -> None:
        from django.db import connections

        while not self._stop.wait(self.interval):
            with self._ticking:
                try:
                    self.tick()
                finally:
                    # This thread's connections (Django keeps one per thread and database), for a fork to close.
                    self._databases = list(connections.all(initialized_only=True))
        # Left by forks only once its connections are closed (a fork may be closing them now).
        with self._ticking:
            _running.discard(self)
            connections.close_all()

    def close_connections(self) -> None:
        """Close this thread's database connections, from another thread, while no tick runs (a fork's)."""
        for db in self._databases:
            if db.connection is None:
                continue
            db.inc_thread_sharing()
            try:
                db.close()
            except Exception:  # a connection that fails to close is dropped all the same
                pass
            finally:
                db.dec_thread_sharing()

    def tick(self) -> None:
        raise NotImplementedError
