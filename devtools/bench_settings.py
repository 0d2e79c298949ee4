"""Settings of the benchmark (`./dev bench`): the project's, plus the no-op tasks and the baseline endpoint."""

import os

from gravity.settings import *  # noqa: F403

JOBS = {**JOBS, "MODULES": ["devtools.bench_tasks"], "RATE_LIMIT": None}  # noqa: F405
ROOT_URLCONF = "devtools.bench_urls"
CELERY_IMPORTS = ["devtools.bench_tasks"]
# Raw Celery's two result stores, picked per worker: django-celery-results ("django-db") or Redis.
CELERY_RESULT_BACKEND = os.environ.get("BENCH_RESULT_BACKEND", "django-db")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}  # noqa: F405
