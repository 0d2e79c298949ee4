"""One daemon thread per process for the jobs app's background work (lock renewals, a worker's notes)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


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


class Periodic:
    """Call `tick` every `interval` seconds in a daemon thread named `name`, until stopped; close the thread's database connection at the end."""

    name = "jobs-periodic"

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run(self) -> None:
        from django.db import connection

        while not self._stop.wait(self.interval):
            self.tick()
        connection.close()

    def tick(self) -> None:
        raise NotImplementedError
