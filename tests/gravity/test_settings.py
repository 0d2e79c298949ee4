"""Settings read from the environment: production refuses to start without a real SECRET_KEY."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_settings(**env):
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"}}
    return subprocess.run(
        [sys.executable, "-c", "import gravity.settings as s; print(s.DEBUG, s.ALLOWED_HOSTS, s.DATABASES['default']['ENGINE'])"],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60,
    )


def test_development_defaults_need_nothing():
    result = load_settings()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True ['localhost', '127.0.0.1', '[::1]'] django.db.backends.sqlite3"


@pytest.mark.parametrize("secret", [None, "short", "django-insecure-gravity-jobs-development-only"])
def test_production_refuses_to_start_without_a_real_secret_key(secret):
    env = {"DEBUG": "false"} if secret is None else {"DEBUG": "false", "SECRET_KEY": secret}
    result = load_settings(**env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set to a random value of at least 32 characters when DEBUG is false." in result.stderr


def test_production_with_a_real_secret_key_starts():
    result = load_settings(DEBUG="false", SECRET_KEY="x" * 50, ALLOWED_HOSTS="jobs.example.com", DATABASE_URL="postgres://u:p@db:5432/jobs")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False ['jobs.example.com'] django.db.backends.postgresql"


def test_a_debug_value_that_is_not_a_boolean_is_refused():
    result = load_settings(DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG must be true or false, not 'maybe'." in result.stderr


def metrics_access(**env) -> str:
    """What a production process (DEBUG off) reads of the /metrics settings from `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("METRICS_") and k not in {"DEBUG", "SECRET_KEY"}}
    code = "import gravity.settings as s; print(repr(s.JOBS['METRICS_TOKEN']), s.JOBS['METRICS_ALLOWED_IPS'])"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, "DEBUG": "false", "SECRET_KEY": "x" * 50, **env},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_metrics_are_closed_unless_the_environment_opens_them():
    assert metrics_access() == "'' []"
    opened = metrics_access(METRICS_TOKEN="t" * 20, METRICS_ALLOWED_IPS=" 10.0.0.0/8, 127.0.0.1 ,")
    assert opened == "'tttttttttttttttttttt' ['10.0.0.0/8', '127.0.0.1']"
