"""What runs beside every worker: the sweep loop, and putting jobs back when the worker stops."""

from __future__ import annotations

import logging
import os
import signal
import threading

from celery import current_app
from django.db import close_old_connections, connection
from django.utils import timezone

from . import conf
from .runner import release_worker_jobs
from .services import jobs_sweep

logger = logging.getLogger(__name__)

# Kept in the broker with no expiry: if it is gone, the broker lost its data (a restart without
# persistence, a flush, a failover to an empty replica), and with it the messages of waiting jobs.
BROKER_MARK_KEY = "gravity-jobs:broker-mark"


def broker_lost_messages() -> bool:
    """Return True if the broker's mark is missing (and set it again); False on a broker without keys."""
    with current_app.connection_for_write() as conn:
        client = getattr(conn.default_channel, "client", None)
        if client is None:
            return False
        return bool(client.set(BROKER_MARK_KEY, timezone.now().isoformat(), nx=True))


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
            lost = _broker_lost_messages_or_false()
            if lost:
                logger.warning(
                    "The broker's mark is missing (its first start, or it lost its data): "
                    "sending the messages of all waiting jobs again"
                )
            report = jobs_sweep(broker_lost_messages=lost)
        except Exception:
            logger.exception("Job sweep failed; trying again in %ss", self.interval)
            # A broken connection must not poison the next sweep.
            connection.close()
            return
        if report.promoted or report.recovered or report.stalled_out or report.sent:
            logger.info(
                "Job sweep: %d delayed jobs due, %d stalled jobs back to waiting, %d failed as stalled, %d messages sent",
                report.promoted, report.recovered, report.stalled_out, report.sent,
            )


def _broker_lost_messages_or_false() -> bool:
    try:
        return broker_lost_messages()
    except Exception:
        logger.warning("Could not reach the broker to check its mark", exc_info=True)
        return False


_sweeper: Sweeper | None = None
_grace_timer: threading.Timer | None = None


def start_in_worker(**_signal_kwargs) -> None:
    """Start the sweeper of this worker process (celery's worker_ready signal)."""
    global _sweeper
    interval = conf.get("SWEEP_INTERVAL")
    if interval and _sweeper is None:
        _sweeper = Sweeper(interval)
        _sweeper.start()


def on_shutting_down(how: str = "Warm", **_signal_kwargs) -> None:
    """A warm shutdown (SIGTERM) waits for running jobs; past the grace period, put them back and stop."""
    global _grace_timer
    if how != "Warm" or _grace_timer is not None:
        return
    _grace_timer = threading.Timer(conf.get("SHUTDOWN_GRACE"), _grace_period_over)
    _grace_timer.daemon = True
    _grace_timer.start()


def _grace_period_over() -> None:
    logger.warning("Jobs still running after the %ss shutdown grace period: putting them back", conf.get("SHUTDOWN_GRACE"))
    try:
        release_worker_jobs()
    finally:
        connection.close()
        # A cold shutdown ends the pool processes that still run the released jobs.
        os.kill(os.getpid(), signal.SIGQUIT)


def stop_in_worker(**_signal_kwargs) -> None:
    """Stop the sweeper and put back any job this worker still holds (celery's worker_shutdown signal)."""
    global _sweeper
    if _sweeper is not None:
        _sweeper.stop()
        _sweeper = None
    if _grace_timer is not None:
        _grace_timer.cancel()
    try:
        release_worker_jobs()
    except Exception:
        logger.exception("Could not put this worker's running jobs back; the sweep will once their locks run out")
    finally:
        connection.close()
