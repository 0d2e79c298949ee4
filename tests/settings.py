"""Settings for the test suite: the project's, plus the fixture job functions."""

from gravity.settings import *  # noqa: F403

JOBS = {**JOBS, "MODULES": ["tests.jobfunctions"]}  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
