"""The sweep loop that runs beside every worker: due delayed jobs, unsent messages."""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections, connection

from . import conf
from .services import jobs_sweep

logger = logging.getLogger(__name__)


class Sweeper:
    """Call jobs_sweep every `interval` seconds in a daemon thread until stopped."""

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.run, name="jobs-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sweep_once()
        connection.close()

    def sweep_once(self) -> None:
        close_old_connections()
        try:
            report = jobs_sweep()
        except Exception:
            logger.exception("Job sweep failed; trying again in %ss", self.interval)
            # A broken connection must not poison the next sweep.
            connection.close()
            return
        if report.promoted or report.sent:
            logger.info("Job sweep: %d delayed jobs due, %d messages sent", report.promoted, report.sent)


_sweeper: Sweeper | None = None


def start_in_worker(**_signal_kwargs) -> None:
    """Start the sweeper of this worker process (celery's worker_ready signal)."""
    global _sweeper
    interval = conf.get("SWEEP_INTERVAL")
    if interval and _sweeper is None:
        _sweeper = Sweeper(interval)
        _sweeper.start()


def stop_in_worker(**_signal_kwargs) -> None:
    """Stop the sweeper (celery's worker_shutdown signal)."""
    global _sweeper
    if _sweeper is not None:
        _sweeper.stop()
        _sweeper = None
