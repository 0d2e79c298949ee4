"""Fixtures for every test."""

import pytest
from django.contrib.auth import get_user_model

from accounts.models import SCOPES
from accounts.services import account_for_user, api_key_create


@pytest.fixture
def make_user(db):
    def make(username: str = "alice", **extra):
        return get_user_model().objects.create_user(username=username, password="pw-not-used", **extra)

    return make


@pytest.fixture
def api_key(make_user):
    """Return (user, clear key) for a new user with every scope."""

    def make(username: str = "alice", scopes=SCOPES):
        user = get_user_model().objects.filter(username=username).first() or make_user(username)
        _, clear = api_key_create(user=user, scopes=scopes)
        return user, clear

    return make


@pytest.fixture
def owner_of():
    """Return the owner key that jobs created over the API by `user` carry."""
    return lambda user: f"account:{account_for_user(user).pk}"


@pytest.fixture(autouse=True)
def local_cache(settings):
    """Unit tests keep rate-limit counters in memory; the e2e stack uses Redis as in production."""
    from django.core.cache import cache

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    cache.clear()
