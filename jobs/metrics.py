"""Prometheus metrics of the job table at /metrics, for the scrapers that the metrics settings admit."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterator
from datetime import timedelta

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from rest_framework.throttling import BaseThrottle

from . import conf, selectors
from .api_errors import error_body
from .models import JobState

logger = logging.getLogger(__name__)

# Run-time buckets in seconds, from quick jobs to an hour.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

OFF = "Metrics are off: no token or address may read them (METRICS_TOKEN, METRICS_ALLOWED_IPS)."
ADDRESS_REFUSED = "This address may not read the metrics (METRICS_ALLOWED_IPS)."
TOKEN_NEEDED = "Reading the metrics needs the metrics token: Authorization: Bearer <METRICS_TOKEN>."


class JobsCollector:
    """Read the database at each scrape: three queries, no state kept in the web process.

    Workers are other processes, often on other machines, and gunicorn runs several web
    processes: counters kept in any one of them would see no jobs, or a different count each
    scrape. So everything here is read from the rows. Gauges are exact now; what finished is
    counted over the last JOBS["METRICS_WINDOW"] seconds (a gauge and a gauge histogram, not a
    counter: a retry takes a failed job out of the table's failed jobs, and retention deletes rows,
    so the table cannot give a total that only grows).
    """

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        window = float(conf.get("METRICS_WINDOW"))
        in_state = GaugeMetricFamily("jobs_in_state", "Jobs in each state now, per queue.", labels=["queue", "state"])
        oldest = GaugeMetricFamily(
            "jobs_oldest_waiting_seconds",
            "Seconds the oldest waiting job of each queue has been free to run and not started (0: none waiting).",
            labels=["queue"],
        )
        # Two reads, one after the other: a job added in between is counted as waiting with no oldest
        # (0 s), one started in between leaves an oldest behind a count of 0 (ignored).
        waiting_since = selectors.oldest_waiting_by_queue()
        for queue, counts in selectors.job_counts(owner=None, by="queue").items():
            for state, count in counts.items():
                in_state.add_metric([queue, state], count)
            since = waiting_since.get(queue) if counts[JobState.WAITING] else None
            oldest.add_metric([queue], 0.0 if since is None else max(0.0, (now - since).total_seconds()))
        yield in_state
        yield oldest

        finished = GaugeMetricFamily(
            "jobs_finished_in_window",
            "Jobs that completed or failed in the last jobs_metrics_window_seconds, per queue, name and state.",
            labels=["queue", "name", "state"],
        )
        run_time = GaugeHistogramMetricFamily(
            "jobs_run_seconds_in_window",
            "Run time of the latest attempt of the jobs that finished in the last jobs_metrics_window_seconds.",
            labels=["queue", "name", "state"],
        )
        for row in selectors.finished_by_name(since=now - timedelta(seconds=window), buckets=BUCKETS):
            labels = [row["queue"], row["name"], row["state"]]
            finished.add_metric(labels, row["n"])
            buckets = [(repr(bound), row[f"le_{index}"]) for index, bound in enumerate(BUCKETS)]
            total = row["total"].total_seconds() if row["total"] is not None else 0.0
            run_time.add_metric(labels, [*buckets, ("+Inf", row["timed"])], gsum_value=total)
        yield finished
        yield run_time
        yield GaugeMetricFamily(
            "jobs_metrics_window_seconds", "The window of jobs_finished_in_window and jobs_run_seconds_in_window.",
            value=window,
        )


# Our own registry, not the client's global one: the web process's own metrics (its memory, its GC)
# would differ per gunicorn process and say nothing about jobs.
prometheus_registry = CollectorRegistry(auto_describe=False)
prometheus_registry.register(JobsCollector())


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: Prometheus' text format (OpenMetrics if asked for), to allowed scrapers only."""
    if request.method not in ("GET", "HEAD"):
        return _error(405, "method_not_allowed", f'Method "{request.method}" not allowed.')
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    try:
        body = encode(prometheus_registry)
    except DatabaseError:
        logger.exception("Database unavailable")
        response = _error(503, "unavailable", "The database is unavailable; try again shortly.")
        response["Retry-After"] = "5"
        return response
    return HttpResponse(body, content_type=content_type)


def _refusal(request: HttpRequest) -> JsonResponse | None:
    """The answer to a scraper the settings do not let in, or None: the address first, then the token."""
    token: str = conf.get("METRICS_TOKEN")
    allowed: list[str] = conf.get("METRICS_ALLOWED_IPS")
    # Never open by default: a setting must name who may read.
    if not token and not allowed:
        return _error(403, "forbidden", OFF)
    if allowed and not _address_allowed(BaseThrottle().get_ident(request), allowed):
        return _error(403, "forbidden", ADDRESS_REFUSED)
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            response = _error(401, "unauthenticated", TOKEN_NEEDED)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return None


def _address_allowed(address: str, allowed: list[str]) -> bool:
    """Whether the client's address (DRF's view of it, behind TRUSTED_PROXIES) is in one of the allowed networks."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return any(ip in ipaddress.ip_network(network, strict=False) for network in allowed)


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(status, code, message), status=status)
