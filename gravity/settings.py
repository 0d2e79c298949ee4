"""Django settings for gravity-jobs, read from the environment and .env (see .env.example)."""

import os
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import dj_email_url
import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# Every process (web, worker, beat, a shell's manage.py) reads .env when there is one, so they
# agree; a variable set in the real environment wins over the file. Below, only os.environ is read.
environ.Env.read_env(BASE_DIR / ".env")

INSECURE_DEV_KEY = "django-insecure-gravity-jobs-development-only"


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}.")


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", INSECURE_DEV_KEY if DEBUG else "")
if not DEBUG and (not SECRET_KEY or SECRET_KEY == INSECURE_DEV_KEY or len(SECRET_KEY) < 32):
    # Production must never sign sessions with a key that is public in this repository.
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random value of at least 32 characters when DEBUG is false."
    )
ALLOWED_HOSTS = [
    host.strip()
    for host in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "").split(",")
    if host.strip()
]
CSRF_TRUSTED_ORIGINS = [
    origin.strip() for origin in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if origin.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_results",
    "django_celery_beat",
    "accounts",
    "jobs",
    "onboarding",
    "worker",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "jobs.middleware.ChunkedBodyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gravity.urls"
LOGIN_URL = "signin-page"
WSGI_APPLICATION = "gravity.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# The web process and every worker write to one file: IMMEDIATE transactions take the write lock
# up front (so read-modify-write blocks such as a PATCH merge serialize instead of failing), WAL
# lets readers run beside a writer, and the timeout waits out a busy writer. Workers checkpoint the
# log every 0.1 s (jobs/checkpoint.py), so no commit has to: a commit still does past 10,000 pages
# (~40 MB), as when no worker runs. Connections are kept as on PostgreSQL (DATABASE_CONN_MAX_AGE):
# a worker opened one per job.
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 30,
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=10000;",
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = SQLITE_OPTIONS
    if os.environ.get("SQLITE_TEST_NAME"):
        DATABASES["default"]["TEST"] = {"NAME": os.environ["SQLITE_TEST_NAME"]}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# In development WhiteNoise serves straight from the apps; production runs collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# How many proxies in front of the web processes append to X-Forwarded-For (Heroku's router: 1).
TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", "0"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Every endpoint needs credentials and names the scope of each action (jobs.permissions.HasScope,
    # which refuses an action that names none); anonymous endpoints say so explicitly.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated", "jobs.permissions.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": ["jobs.throttling.ApiKeyRateThrottle"],
    # Who the client is, for the per-address limits of the anonymous endpoints: the connection's
    # address, or the one the last of TRUSTED_PROXIES proxies put in X-Forwarded-For.
    "NUM_PROXIES": TRUSTED_PROXIES,
    # OPTIONS answers 405: no endpoint describes itself outside the OpenAPI schema.
    "DEFAULT_METADATA_CLASS": None,
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "jobs.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "gravity-jobs API",
    "DESCRIPTION": "Background jobs: add, read, change and delete jobs. The job JSON is Bull's job.toJSON() plus state.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "jobs.schema.add_job_names"],
    # /api/docs serves Swagger UI from the app's own static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# The job system. Every key is documented in jobs/conf.py and the README.
JOBS = {
    "QUEUE": "jobs",
    "OWNER_RESOLVER": "accounts.services.account_key_for_request",
    # The admin shows an account's name where a job's owner is account:<id>.
    "OWNER_NAMES": "accounts.owners.owner_names",
    # Who may read /metrics: a bearer token, and/or client addresses or networks (comma-separated).
    # With neither set, /metrics answers 403 to everyone.
    "METRICS_TOKEN": os.environ.get("METRICS_TOKEN", ""),
    "METRICS_ALLOWED_IPS": [
        network.strip() for network in os.environ.get("METRICS_ALLOWED_IPS", "").split(",") if network.strip()
    ],
    # PostgreSQL: the statements every job runs are prepared once per connection. Off behind a
    # pooler in transaction mode that does not keep prepared statements (PgBouncer before 1.22).
    "PREPARED_STATEMENTS": env_bool("DATABASE_PREPARED_STATEMENTS", True),
}
# Django's Tasks framework (django.tasks): @task functions enqueue jobs, run by the job workers.
TASKS = {"default": {"BACKEND": "jobs.backends.JobsBackend"}}

# Celery: the broker is the job queue's Redis. JSON only, never pickle.
REDIS_JOB_URL = os.environ.get("REDIS_JOB_URL", "redis://127.0.0.1:6379/0")

# The API's rate-limit counters live in the same Redis, so every web process shares them.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_JOB_URL,
        "KEY_PREFIX": "gravity-cache",
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}
CELERY_BROKER_URL = REDIS_JOB_URL
# A tracked task's job answers for its id (AsyncResult(id)); other tasks' results are django-celery-results'.
CELERY_RESULT_BACKEND = "jobs.celery_compat.JobsResultBackend"
CELERY_RESULT_EXTENDED = True
# Plain Celery tasks' results go after a day (beat runs celery.backend_cleanup daily); jobs have
# their own retention (JOBS["REMOVE_ON_COMPLETE"], JOBS["REMOVE_ON_FAIL"]).
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = JOBS["QUEUE"]
# A message is acknowledged only after its job ran, so a worker that dies mid-job leaves the
# message to be delivered again; the job row decides whether it may still run.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes every database connection after each task unless this is set (then
# after 2 × this many tasks): a new connection per job, ~10% of a no-op job's time on SQLite and
# more on PostgreSQL. Set high, workers close connections instead as Django closes a request's,
# when older than DATABASE_CONN_MAX_AGE or broken (jobs.worker.on_task_boundary).
CELERY_DB_REUSE_MAX = 1_000_000_000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A web request that commits a job while Redis is down must not hang: try briefly, then leave
# the message to the sweep (the job row is already committed).
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
REDIS_VISIBILITY_TIMEOUT = int(os.environ.get("REDIS_VISIBILITY_TIMEOUT", "300"))
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A message taken by a worker that died unacknowledged goes back on the queue after this
    # long. Short is safe here: a second delivery of a job that is running or done is ignored
    # by the claim, so the timeout need not cover the longest job.
    "visibility_timeout": REDIS_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": max(1, min(10, REDIS_VISIBILITY_TIMEOUT // 10)),
    "unacked_restore_throttle": 1,
    # Never wait forever on a broker that vanished without closing the connection.
    "socket_connect_timeout": 3,
    "socket_timeout": 10,
    # Bull's priority 1 is the highest; jobs.services maps it onto Redis priority steps.
    "queue_order_strategy": "priority",
    "priority_steps": list(range(10)),
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The schedule lives in the database, so it can be seen and changed in the admin.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# Email: EMAIL_URL picks the backend. console: (default, development), file:///path (one file per
# message), smtp://user:password@host:587/?tls=True, or smtps:// for SSL.
# dj-email-url returns EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, … as Django names them.
EMAIL_URL = os.environ.get("EMAIL_URL", "console:")
globals().update(dj_email_url.parse(EMAIL_URL))
if EMAIL_URL.startswith("file:"):
    # dj-email-url drops the leading slash of file:///abs/path; keep the path as written.
    EMAIL_FILE_PATH = urlsplit(EMAIL_URL).path
# Seconds the SMTP backend waits to connect and for each answer (EMAIL_URL's ?timeout= also sets
# it): a hung mail server then fails the send, which is retried, instead of holding a worker.
EMAIL_TIMEOUT = float(os.environ.get("EMAIL_TIMEOUT") or globals()["EMAIL_TIMEOUT"] or 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Gravity <hello@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Where links in emails point (the verification link).
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# The client app's pages that emails link to. The defaults are this app's own minimal pages;
# point them at your front end when you have one.
APP_SIGNIN_URL = os.environ.get("APP_SIGNIN_URL", f"{SITE_URL}/signin")
APP_PLANS_URL = os.environ.get("APP_PLANS_URL", f"{SITE_URL}/account")
# Requests per client address to the anonymous endpoints, shared by all web processes (Redis).
ACCOUNT_RATE_LIMITS = {
    "signup": os.environ.get("SIGNUP_RATE_LIMIT", "10/hour"),
    "verify": os.environ.get("VERIFY_RATE_LIMIT", "60/hour"),
    "signin": os.environ.get("SIGNIN_RATE_LIMIT", "30/hour"),
}

# Accounts: the plans an account can choose and the length of its trial.
ACCOUNT_PLANS = [plan.strip() for plan in os.environ.get("ACCOUNT_PLANS", "starter,pro,business").split(",") if plan.strip()]
ACCOUNT_TRIAL_DAYS = int(os.environ.get("ACCOUNT_TRIAL_DAYS", "14"))

# Scheduled jobs: cron lines, read when migrations run to create the entries that beat fires
# (after that, change them in the admin under Periodic tasks).
WORKER_SCHEDULE = {"onboarding": os.environ.get("ONBOARDING_SCHEDULE", "5 12 * * *")}
WORKER_SCHEDULE_TIMEZONE = os.environ.get("WORKER_SCHEDULE_TIMEZONE", "Europe/London")
ONBOARDING = {
    # Where trial data comes from: a class with the interface of onboarding.trials.DatabaseTrials.
    "TRIALS": "onboarding.trials.DatabaseTrials",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # While a job runs, its lines say which: "… [job=report-7 name=send_report] …".
    "filters": {"job": {"()": "jobs.logs.JobContextFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s%(job)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["job"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
