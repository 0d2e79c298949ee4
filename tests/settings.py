"""Settings for the test suite: the project's, plus the fixture job functions."""

from gravity.settings import *  # noqa: F403

# Faults are noticed in seconds, not minutes, so fault-injection tests stay short.
JOBS = {  # noqa: F405
    **JOBS,  # noqa: F405
    # tests.faults: injected database errors, and a delete receiver as audit apps connect one;
    # tests.djangotasks: functions decorated with Django's @task.
    "MODULES": ["tests.jobfunctions", "tests.faults", "tests.djangotasks"],
    "LOCK_DURATION": 3.0,
    "SHUTDOWN_GRACE": 4.0,
    "RESEND_AFTER": 30.0,
    "TIMEOUT_GRACE": 2.0,
    # Retention is seen at work within seconds.
    "CLEAN_INTERVAL": 2.0,
    # The e2e tests poll hard; rate limits are tested with keys that carry their own.
    "RATE_LIMIT": None,
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Django's Tasks: a second queue for the priority tests' single worker, and a backend whose jobs
# retry, for the context's attempt number.
TASKS = {
    "default": {"BACKEND": "jobs.backends.JobsBackend", "QUEUES": ["default", "solo"]},
    "retrying": {"BACKEND": "jobs.backends.JobsBackend", "OPTIONS": {"ATTEMPTS": 3, "BACKOFF": 200}},
}
