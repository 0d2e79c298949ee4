"""System checks that fail early on a bad JOBS setting."""

import ipaddress

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.utils.module_loading import import_string

from .conf import DEFAULTS
from .errors import InvalidJob
from .options import Retention
from .worker import pool_name


@register()
def check_jobs_settings(app_configs=None, **kwargs):
    errors = []
    jobs_settings = getattr(settings, "JOBS", {})
    if not isinstance(jobs_settings, dict):
        return [Error("JOBS must be a dict.", id="jobs.E001")]
    for key in sorted(set(jobs_settings) - set(DEFAULTS)):
        errors.append(Error(f"JOBS has an unknown key {key!r}.", hint=f"Known keys: {', '.join(DEFAULTS)}.", id="jobs.E002"))
    values = {**DEFAULTS, **jobs_settings}
    if not isinstance(values["QUEUE"], str) or not values["QUEUE"]:
        errors.append(Error("JOBS['QUEUE'] must be a non-empty string.", id="jobs.E003"))
    try:
        if not callable(import_string(values["OWNER_RESOLVER"])):
            raise ImportError
    except ImportError:
        errors.append(Error(f"JOBS['OWNER_RESOLVER'] {values['OWNER_RESOLVER']!r} is not an importable callable.", id="jobs.E004"))
    if values["OWNER_NAMES"] is not None and not _importable_callable(values["OWNER_NAMES"]):
        message = f"JOBS['OWNER_NAMES'] {values['OWNER_NAMES']!r} is not an importable callable."
        errors.append(Error(message, id="jobs.E011"))
    for key in ("SWEEP_INTERVAL", "SEND_GRACE", "RESEND_AFTER", "LOCK_DURATION", "TIMEOUT_GRACE", "SHUTDOWN_GRACE", "CLEAN_INTERVAL"):
        if isinstance(values[key], bool) or not isinstance(values[key], int | float) or values[key] < 0:
            errors.append(Error(f"JOBS[{key!r}] must be a number of seconds, 0 or more.", id="jobs.E005"))
    if isinstance(values["MAX_STALLED_COUNT"], bool) or not isinstance(values["MAX_STALLED_COUNT"], int) or values["MAX_STALLED_COUNT"] < 0:
        errors.append(Error("JOBS['MAX_STALLED_COUNT'] must be a whole number, 0 or more.", id="jobs.E006"))
    for key in ("REMOVE_ON_COMPLETE", "REMOVE_ON_FAIL"):
        try:
            Retention.parse(values[key], key)
        except InvalidJob:
            errors.append(Error(
                f"JOBS[{key!r}] must be True, False, a number of jobs to keep, or {{'age': seconds, 'count': jobs}}.",
                id="jobs.E010",
            ))
    for key in ("SWEEP_BATCH", "CLEAN_BATCH", "MAX_BULK", "MAX_ATTEMPTS", "MAX_DELAY", "STACKTRACE_LIMIT", "MAX_BODY_BYTES", "MAX_JSON_DEPTH"):
        if isinstance(values[key], bool) or not isinstance(values[key], int) or values[key] < 1:
            errors.append(Error(f"JOBS[{key!r}] must be a whole number, 1 or more.", id="jobs.E006"))
    if not isinstance(values["PREPARED_STATEMENTS"], bool):
        errors.append(Error("JOBS['PREPARED_STATEMENTS'] must be True or False.", id="jobs.E015"))
    if values["RATE_LIMIT"] is not None and not _valid_rate(values["RATE_LIMIT"]):
        errors.append(Error("JOBS['RATE_LIMIT'] must be None or a rate such as '600/minute'.", id="jobs.E008"))
    errors += _metrics_errors(values)
    if getattr(settings, "CELERY_TASK_SERIALIZER", "json") != "json":
        errors.append(Error("CELERY_TASK_SERIALIZER must be 'json': job messages carry ids, never pickles.", id="jobs.E007"))
    pool = getattr(settings, "CELERY_WORKER_POOL", None)
    if pool is not None and pool_name(pool) != "prefork":
        errors.append(
            Warning(
                f"CELERY_WORKER_POOL {pool!r} cannot stop a job at its opts.timeout: jobs with opts.timeout fail at once on it.",
                hint="Use the prefork pool for workers that take jobs with a timeout.",
                id="jobs.W001",
            )
        )
    if not getattr(settings, "CELERY_DB_REUSE_MAX", None):
        errors.append(
            Warning(
                "CELERY_DB_REUSE_MAX is not set: Celery's Django fixup closes every database connection after each "
                "task, so each job opens a new one.",
                hint="Set CELERY_DB_REUSE_MAX to a large number; workers then close connections as Django closes a "
                "request's (CONN_MAX_AGE, CONN_HEALTH_CHECKS).",
                id="jobs.W002",
            )
        )
    return errors


# A token short enough to guess is no protection.
MIN_METRICS_TOKEN = 16


def _metrics_errors(values) -> list[Error]:
    errors = []
    token = values["METRICS_TOKEN"]
    if not isinstance(token, str) or 0 < len(token) < MIN_METRICS_TOKEN:
        message = f"JOBS['METRICS_TOKEN'] must be empty or a string of at least {MIN_METRICS_TOKEN} characters."
        errors.append(Error(message, id="jobs.E012"))
    allowed = values["METRICS_ALLOWED_IPS"]
    if isinstance(allowed, str) or not isinstance(allowed, list | tuple) or not all(map(_network, allowed)):
        message = "JOBS['METRICS_ALLOWED_IPS'] must be a list of addresses or networks, such as ['10.0.0.0/8']."
        errors.append(Error(message, id="jobs.E013"))
    window = values["METRICS_WINDOW"]
    if isinstance(window, bool) or not isinstance(window, int | float) or not 0 < window <= 86400:
        errors.append(Error("JOBS['METRICS_WINDOW'] must be a number of seconds, more than 0 and at most a day.",
                            id="jobs.E014"))
    return errors


def _network(value) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except (TypeError, ValueError):
        return False
    return True


def _importable_callable(path) -> bool:
    try:
        return isinstance(path, str) and callable(import_string(path))
    except ImportError:
        return False


def _valid_rate(rate) -> bool:
    from .throttling import parse_rate

    try:
        parse_rate(rate)
    except ValueError:
        return False
    return True
