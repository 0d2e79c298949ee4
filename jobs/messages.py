"""Job messages on the broker: send them, tell whether one is still queued, notice a broker that lost its data."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import current_app
from django.utils import timezone
from kombu.transport.redis import Channel as RedisChannel

logger = logging.getLogger(__name__)

# Kept in the broker with no expiry, holding the moment it was set: if it is gone, the broker lost
# its data (a restart without persistence, a flush, a failover to an empty replica), and with it
# the messages of the waiting jobs sent before the moment it is set again.
MARK_KEY = "gravity-jobs:broker-mark"
# One key per job whose message is on the broker, holding that message's id: set just after the
# message is pushed, so Redis (whose log and replication keep the order of writes) can lose the
# key without the message but never the message without the key.
MESSAGE_KEY = "gravity-jobs:message:{}"
# Keys of jobs that vanished with their message still queued expire. A sweep that finds a job's
# message still queued renews the key, so a long backlog keeps its keys.
MESSAGE_KEY_TTL = 7 * 24 * 3600
# Deleted only if it still names the message being forgotten: a newer message of the same job
# (a retry sent while the old one was being acknowledged) keeps its key.
_FORGET = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outgoing:
    """A message to send: the job it is for, where it goes, and the time limits of its run."""

    job_id: str
    queue: str
    priority: int
    soft_time_limit: float | None = None
    time_limit: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Queued:
    """A waiting job whose message was sent, and the queue it was sent to."""

    job_id: str
    queue: str


class Broker:
    """Celery's broker as the jobs app uses it; on Redis it also tracks each job's message.

    On another broker nothing is tracked: `still_queued` knows of no message, so every waiting job
    whose message left RESEND_AFTER ago is sent again, as the broker cannot say it still holds it.
    """

    @functools.cached_property
    def tracks_messages(self) -> bool:
        """Whether each job's message leaves a key (on Redis), which says it was sent; asked once."""
        with current_app.pool.acquire(block=True) as conn:
            return _redis(conn.default_channel) is not None

    def sent(self, job_ids: list[str]) -> set[str]:
        """Return the ids, among these, of the jobs whose message has left (its key is there)."""
        if not job_ids:
            return set()
        with current_app.pool.acquire(block=True) as conn:
            client = _redis(conn.default_channel)
            if client is None:
                return set()
            keys = client.mget([MESSAGE_KEY.format(job_id) for job_id in job_ids])
        return {job_id for job_id, key in zip(job_ids, keys) if key}

    def publish(self, message: Outgoing) -> str:
        """Send the message that lets a worker run the job; return its id."""
        from .tasks import run_job

        limits = {
            key: value
            for key, value in (("soft_time_limit", message.soft_time_limit), ("time_limit", message.time_limit))
            if value is not None
        }
        with current_app.producer_or_acquire() as producer:
            result = run_job.apply_async(
                args=[message.job_id], queue=message.queue, priority=message.priority, producer=producer, **limits
            )
            client = _redis(producer.channel)
            if client is not None:
                client.set(MESSAGE_KEY.format(message.job_id), result.id, ex=MESSAGE_KEY_TTL)
        return result.id

    def forget(self, job_id: str, message_id: str) -> None:
        """Stop tracking a message that a worker has taken for good (acknowledged, not requeued)."""
        with current_app.pool.acquire(block=True) as conn:
            client = _redis(conn.default_channel)
            if client is not None:
                client.eval(_FORGET, 1, MESSAGE_KEY.format(job_id), message_id)

    def still_queued(self, jobs: list[Queued]) -> set[str]:
        """Return the ids of the jobs whose message is still on the broker, and renew their keys.

        A tracked message counts as queued while its queue holds messages (it is among them, or
        a worker holds it); once the queue is empty, only if a worker holds it unacknowledged. So
        a message lost while its key survived (a crash between Redis handing it over and the
        worker recording it, a purge) is noticed once its queue runs dry.
        """
        if not jobs:
            return set()
        with current_app.pool.acquire(block=True) as conn:
            channel = conn.default_channel
            client = _redis(channel)
            if client is None:
                return set()
            ids = client.mget([MESSAGE_KEY.format(job.job_id) for job in jobs])
            tracked = {job: message_id.decode() for job, message_id in zip(jobs, ids) if message_id}
            # _size counts every priority list of the queue in one pipeline (kombu's own helper).
            sizes = {queue: channel._size(queue) for queue in {job.queue for job in tracked}}
            held: set[str] | None = None
            queued = set()
            for job, message_id in tracked.items():
                if not sizes[job.queue]:
                    held = _held_message_ids(client, channel.unacked_key) if held is None else held
                    if message_id not in held:
                        continue
                queued.add(job.job_id)
            if queued:
                with client.pipeline() as pipe:
                    for job_id in queued:
                        pipe.expire(MESSAGE_KEY.format(job_id), MESSAGE_KEY_TTL)
                    pipe.execute()
        return queued

    def lost_before(self) -> datetime | None:
        """Return the moment before which the broker may have lost messages: when its mark was last set.

        Sets the mark if it is missing (the broker's first start, or it lost its data). None on a
        broker without keys.
        """
        with current_app.pool.acquire(block=True) as conn:
            client = _redis(conn.default_channel)
            if client is None:
                return None
            with client.pipeline() as pipe:
                created, value = pipe.set(MARK_KEY, timezone.now().isoformat(), nx=True).get(MARK_KEY).execute()
        if created:
            logger.warning(
                "The broker's mark is missing (its first start, or it lost its data): "
                "sending the messages of waiting jobs again, a batch each sweep"
            )
        return datetime.fromisoformat(value.decode())


def _redis(channel: object) -> Any:
    """The Redis client behind a kombu channel, or None when the broker is not Redis."""
    return channel.client if isinstance(channel, RedisChannel) else None


def _held_message_ids(client: Any, unacked_key: str) -> set[str]:
    """Ids of the messages that workers have taken and not yet acknowledged (kombu's unacked hash)."""
    held = set()
    for raw in client.hvals(unacked_key):
        try:
            held.add(json.loads(raw)[0]["headers"]["id"])
        except (ValueError, LookupError, TypeError):
            continue
    return held


_broker = Broker()


def broker() -> Broker:
    """The broker that job messages go through (tests put a fake in its place)."""
    return _broker
