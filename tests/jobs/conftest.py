"""Fixtures of the jobs app's tests: a broker that records messages instead of sending them."""

from __future__ import annotations

from datetime import datetime

import pytest

from jobs import messages


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


@pytest.fixture(autouse=True)
def broker(monkeypatch) -> FakeBroker:
    """Every jobs test talks to this broker rather than to a Redis."""
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
