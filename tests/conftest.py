"""Fixtures for every test (the e2e tests start real processes and use none of these in them)."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.contrib.auth import get_user_model

from accounts.models import SCOPES
from jobs import messages
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


class FakeBroker:
    """Records the messages it is given and holds them, as a Redis nobody consumes from would.

    `queued` maps a job id to the id of its message still on the broker; clear it to lose them.
    """

    # As Redis: each message leaves a key (until a worker takes it for good), which says it was sent.
    tracks_messages = True

    def __init__(self) -> None:
        self.published: list[dict] = []
        self.queued: dict[str, str] = {}
        self.lost: datetime | None = None
        self.down = False
        self.announced: list[str] = []
        self.batches: list[int] = []

    def publish(self, message: messages.Outgoing) -> str:
        if self.down:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        sent = {"args": [message.job_id], "queue": message.queue, "priority": message.priority}
        for limit in ("soft_time_limit", "time_limit"):
            if getattr(message, limit) is not None:
                sent[limit] = getattr(message, limit)
        self.published.append(sent)
        message_id = f"message-{len(self.published)}"
        self.queued[message.job_id] = message_id
        return message_id

    def publish_many(self, outgoing: list[messages.Outgoing]) -> list[str]:
        self.batches.append(len(outgoing))
        return [self.publish(message) for message in outgoing]

    def forget(self, job_id: str, message_id: str) -> None:
        if self.queued.get(job_id) == message_id:
            del self.queued[job_id]

    def sent(self, job_ids: list[str]) -> set[str]:
        if self.down:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return {job_id for job_id in job_ids if job_id in self.queued}

    def still_queued(self, jobs: list[messages.Queued]) -> set[str]:
        if self.down:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return {job.job_id for job in jobs if job.job_id in self.queued}

    def lost_before(self) -> datetime | None:
        return self.lost

    def announce(self, job_id: str) -> None:
        self.announced.append(job_id)

    def notify(self, notes: list[messages.Note]) -> None:
        for note in notes:
            if note.message_id is None:
                self.announce(note.job_id)
            else:
                self.forget(note.job_id, note.message_id)


@pytest.fixture(autouse=True)
def broker(monkeypatch) -> FakeBroker:
    """Every test talks to this broker rather than to a Redis."""
    fake = FakeBroker()
    monkeypatch.setattr(messages, "broker", lambda: fake)
    return fake


@pytest.fixture
def sent(broker) -> list[dict]:
    """The messages put on the broker, in order."""
    return broker.published


@pytest.fixture
def broker_down(broker) -> FakeBroker:
    broker.down = True
    return broker
