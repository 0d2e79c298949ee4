"""Settings read .env when there is one, the real environment winning; and EMAIL_TIMEOUT always bounds a send."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READ = ("EMAIL_URL", "EMAIL_TIMEOUT", "SITE_URL", "ACCOUNT_TRIAL_DAYS")
PRINT = (
    "import json, os, gravity.settings as s; print(json.dumps({'backend': s.EMAIL_BACKEND, 'host': s.EMAIL_HOST,"
    " 'timeout': s.EMAIL_TIMEOUT, 'site': s.SITE_URL, 'trial': s.ACCOUNT_TRIAL_DAYS, 'env_site': os.environ.get('SITE_URL')}))"
)


def settings_in(tmp_path, env_file: str | None, **env) -> dict:
    """Load a copy of gravity/settings.py in a project whose root holds `env_file` as .env."""
    project = tmp_path / "project"
    (project / "gravity").mkdir(parents=True)
    shutil.copy(ROOT / "gravity" / "settings.py", project / "gravity" / "settings.py")
    (project / "gravity" / "__init__.py").write_text("")
    if env_file is not None:
        (project / ".env").write_text(env_file)
    clean = {k: v for k, v in os.environ.items() if k not in READ}
    result = subprocess.run(
        [sys.executable, "-c", PRINT], cwd=project, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


ENV_FILE = """# a comment
EMAIL_URL=smtp://mailer:secret@smtp.example.com:587/?tls=True
SITE_URL=https://app.example.com
ACCOUNT_TRIAL_DAYS=30
"""


def test_settings_read_the_env_file(tmp_path):
    loaded = settings_in(tmp_path, ENV_FILE)
    assert loaded == {
        "backend": "django.core.mail.backends.smtp.EmailBackend", "host": "smtp.example.com", "timeout": 10.0,
        "site": "https://app.example.com", "trial": 30, "env_site": "https://app.example.com",
    }


def test_the_real_environment_wins_over_the_env_file(tmp_path):
    loaded = settings_in(tmp_path, ENV_FILE, EMAIL_URL="console:", SITE_URL="http://127.0.0.1:9000")
    assert (loaded["backend"], loaded["site"], loaded["env_site"]) == (
        "django.core.mail.backends.console.EmailBackend", "http://127.0.0.1:9000", "http://127.0.0.1:9000")
    assert loaded["trial"] == 30  # what the environment does not set still comes from the file


def test_without_an_env_file_the_defaults_hold(tmp_path):
    loaded = settings_in(tmp_path, None)
    assert (loaded["backend"], loaded["timeout"], loaded["site"]) == (
        "django.core.mail.backends.console.EmailBackend", 10.0, "http://127.0.0.1:8000")


@pytest.mark.parametrize(
    ("env", "timeout"),
    [
        ({}, 10.0),
        ({"EMAIL_TIMEOUT": "2.5"}, 2.5),
        ({"EMAIL_URL": "smtp://smtp.example.com:25/?timeout=7"}, 7.0),
        ({"EMAIL_URL": "smtp://smtp.example.com:25/?timeout=7", "EMAIL_TIMEOUT": "3"}, 3.0),
    ],
)
def test_email_timeout_defaults_to_ten_seconds(tmp_path, env, timeout):
    assert settings_in(tmp_path, None, **env)["timeout"] == timeout


def test_the_env_file_is_never_committed():
    ignored = subprocess.run(["git", "check-ignore", "--quiet", ".env"], cwd=ROOT)
    assert ignored.returncode == 0, ".env must stay in .gitignore: it holds secrets"
