"""The JOBS settings dict, with defaults; the only place that reads it."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # The Celery queue that jobs go to when a Queue is not named.
    "QUEUE": "jobs",
    # Dotted path to a callable(request) -> str giving the tenant a request acts for. Jobs created
    # over HTTP belong to it, and the API shows a request only the jobs of its tenant.
    "OWNER_RESOLVER": "jobs.conf.user_owner",
    # Modules with job functions that are not in an installed app's jobs.py.
    "MODULES": [],
    # How often each worker sweeps the table: promotes due delayed jobs and re-sends the
    # messages of waiting jobs that never reached the broker (seconds).
    "SWEEP_INTERVAL": 1.0,
    # A waiting job whose message has not left this long after commit is sent again (seconds).
    "SEND_GRACE": 5.0,
    # How old a waiting job's message must be before a sweep checks that the broker still holds
    # it; only a message that is gone (lost inside the broker) is sent again, so a backlog keeps
    # one message per job however long it waits (seconds).
    "RESEND_AFTER": 900.0,
    # Bull's lockDuration: seconds a running job's lock lasts; the worker renews it at half that.
    # A job whose lock ran out (its worker was killed or cut off) is stalled: it runs again.
    "LOCK_DURATION": 30.0,
    # Bull's maxStalledCount: stalls allowed before the job fails.
    "MAX_STALLED_COUNT": 1,
    # Seconds past opts.timeout before a job function that ignores the timeout is killed.
    "TIMEOUT_GRACE": 5.0,
    # Seconds a worker told to stop (SIGTERM, to its main process or to all its processes) lets
    # running jobs finish before it puts them back.
    "SHUTDOWN_GRACE": 20.0,
    # Most rows one sweep handles per kind of work, so a big backlog (or a broker that lost all its
    # messages) cannot stall a worker.
    "SWEEP_BATCH": 500,
    # On PostgreSQL, the statements every job runs (its insert, claim and completion) are prepared
    # once per connection. Turn off behind a pooler in transaction mode that does not keep prepared
    # statements (PgBouncer before 1.22, or without max_prepared_statements).
    "PREPARED_STATEMENTS": True,
    # Largest accepted values of the job options.
    "MAX_ATTEMPTS": 100,
    "MAX_DELAY": 365 * 24 * 3600 * 1000,
    # Most jobs one POST /api/job may add (a JSON list of jobs).
    "MAX_BULK": 1000,
    # Largest accepted request body (bytes) and deepest nesting of JSON in it.
    "MAX_BODY_BYTES": 1024 * 1024,
    "MAX_JSON_DEPTH": 32,
    # Requests per API key (or per user, for sessions) as DRF rates: "600/minute"; None for no
    # limit. A key's own rate_limit overrides it.
    "RATE_LIMIT": "1200/minute",
    # Stack traces kept per job (Bull's stackTraceLimit): the newest ones.
    "STACKTRACE_LIMIT": 10,
    # How long finished jobs are kept when their opts say nothing (Bull's removeOnComplete and
    # removeOnFail, the same shapes: True, False, a count of the newest, {"age": s, "count": n}).
    "REMOVE_ON_COMPLETE": {"age": 7 * 24 * 3600},
    "REMOVE_ON_FAIL": {"age": 30 * 24 * 3600},
    # How often each worker removes the finished jobs that are due (seconds; 0 turns it off), and
    # the most rows one DELETE takes, so no clean holds a long lock.
    "CLEAN_INTERVAL": 60.0,
    "CLEAN_BATCH": 1000,
    # Dotted path to a callable(owners: set[str]) -> dict[str, str] that names owners for people
    # (the admin and the dashboard call it once per page). None: owners show as their keys.
    "OWNER_NAMES": None,
    # Who may read /metrics (jobs.metrics.metrics_view): scrapers sending this bearer token, and/or
    # clients at these addresses or networks ("10.0.0.0/8"). With both set, both are needed; with
    # neither, nobody may (403).
    "METRICS_TOKEN": "",
    "METRICS_ALLOWED_IPS": [],
    # Seconds of finished jobs that /metrics counts and times (jobs_finished_in_window, …).
    "METRICS_WINDOW": 300,
}


def get(key: str) -> Any:
    """Return the value of JOBS[key], or its default."""
    return getattr(settings, "JOBS", {}).get(key, DEFAULTS[key])


def user_owner(request) -> str:
    """Give each user a tenant of their own (the default OWNER_RESOLVER)."""
    return f"user:{request.user.pk}"
