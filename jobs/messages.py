"""Job messages on the broker: send them, tell whether one is still queued, notice a broker that lost its data."""

from __future__ import annotations

import atexit
import base64
import collections
import functools
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from celery import current_app
from django.utils import timezone
from kombu.transport.redis import Channel as RedisChannel
from kombu.utils.functional import retry_over_time
from kombu.utils.json import dumps
from kombu.utils.uuid import uuid
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .threads import ProcessThread

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
# Messages per pipelined round trip when many are sent at once.
PUBLISH_BATCH = 1000
# How long the notes thread of a pool process waits after a note for the next ones of the same job
# (its claim, its finish, its message) to go in the same round trip: each round trip costs the
# process about 0.1 ms of CPU, more than a no-op job's own work. A job's changes reach its live
# streams that much later; the sweep's, from the worker's main process, are sent at once.
NOTES_LINGER = 0.005
# Where a job's changes are announced, for the live event streams of GET /api/job/<id>/events.
EVENTS_CHANNEL = "gravity-jobs:events:{}"


class Script:
    """A Lua script that pipelines run by its SHA1 (EVALSHA): one short command, however long the script."""

    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def queue(self, pipe: Any, keys: list[str], args: list[Any]) -> None:
        pipe.evalsha(self.sha, len(keys), *keys, *args)


# A message, then its key, in one script: Redis runs a script whole, and its log and replicas keep
# the order of its writes, so Redis never holds a key without the message it names. One command
# and one reply per message (a MULTI of the two cost ~20 µs more a message, ~20 %).
_PUSH = Script("redis.call('lpush', KEYS[1], ARGV[1]) redis.call('set', KEYS[2], ARGV[2], 'EX', ARGV[3]) return 1")
# Deleted only if it still names the message being forgotten: a newer message of the same job
# (a retry sent while the old one was being acknowledged) keeps its key.
_FORGET = Script("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0")


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
        return self.publish_many([message])[0]

    def publish_many(self, outgoing: list[Outgoing]) -> list[str]:
        """Send messages (and, on Redis, their keys) in one round trip per PUBLISH_BATCH; return their ids.

        On Redis each message and its key go in one script (_PUSH), the key after the message, so
        Redis never holds a key without the message it names. The messages are Celery's own, filled in
        from an envelope Celery and kombu made (see Envelopes). Elsewhere: Celery's apply_async.
        """
        with current_app.producer_or_acquire() as producer:
            client = _redis(producer.channel)
            if client is None:
                return _apply_async(producer, outgoing)
            ids: list[str] = []
            for start in range(0, len(outgoing), PUBLISH_BATCH):
                batch = outgoing[start:start + PUBLISH_BATCH]
                try:
                    ids += _push(client, producer, batch)
                except (RedisConnectionError, RedisTimeoutError):
                    # Then retried as Celery's apply_async retries a publish: max_retries after the first try.
                    policy = _retry_policy()
                    if policy["max_retries"] < 1:
                        raise
                    ids += retry_over_time(
                        _push, (RedisConnectionError, RedisTimeoutError), args=(client, producer, batch),
                        **{**policy, "max_retries": policy["max_retries"] - 1},
                    )
        return ids

    def announce(self, job_id: str) -> None:
        """Tell whoever watches the job (its live events) that its row changed; nothing if nobody does."""
        self.notify([Note.announce(job_id)])

    def forget(self, job_id: str, message_id: str) -> None:
        """Stop tracking a message that a worker has taken for good (acknowledged, not requeued)."""
        self.notify([Note.forget(job_id, message_id)])

    def notify(self, notes: list[Note]) -> None:
        """Send these announcements and forgettings in one pipelined round trip, in their order."""
        with current_app.pool.acquire(block=True) as conn:
            client = _redis(conn.default_channel)
            if client is None:
                return

            def commands(pipe: Any) -> None:
                for note in notes:
                    if note.message_id is None:
                        pipe.publish(EVENTS_CHANNEL.format(note.job_id), b"changed")
                    else:
                        _FORGET.queue(pipe, [MESSAGE_KEY.format(note.job_id)], [note.message_id])

            _execute(client, commands, [_FORGET])

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


class Envelopes:
    """The broker's form of run_job's messages: one made by Celery and kombu per route, then filled in per job.

    Celery's apply_async costs ~0.3 ms a message here (routing, options, kombu's preparation and a
    Redis client per push), more than a job's INSERT; filling in a copy of a message it made costs
    ~0.02 ms. The envelope comes from the real path (apply_async into a kombu publish batch that is
    discarded, never sent), once per process and route, so it is exactly what Celery would send;
    only what is unique to a message is replaced: the task id (and root and correlation ids), the
    argument and its repr, kombu's delivery tag. A test compares the two forms field by field.
    Messages carry no parent task (jobs track their own lineage) and send no task_publish signals.
    """

    _PLACEHOLDER = "gravity-jobs-envelope"

    def __init__(self) -> None:
        self._made: dict[tuple[Any, ...], tuple[str, dict[str, Any]]] = {}

    def fill(self, producer: Any, message: Outgoing) -> tuple[str, str, str]:
        """Return the Redis list the message goes to, its payload and its id."""
        route = (os.getpid(), message.queue, message.priority, message.soft_time_limit, message.time_limit)
        made = self._made.get(route)
        if made is None:
            made = self._made[route] = self._make(producer, message)
        key, envelope = made
        message_id = uuid()
        headers = {**envelope["headers"], "id": message_id, "root_id": message_id, "parent_id": None,
                   "argsrepr": repr([message.job_id])}
        properties = {**envelope["properties"], "correlation_id": message_id, "delivery_tag": uuid()}
        body = base64.b64encode(dumps([[message.job_id], {}, envelope["embed"]]).encode()).decode()
        return key, dumps({**envelope["message"], "body": body, "headers": headers, "properties": properties}), message_id

    def _make(self, producer: Any, message: Outgoing) -> tuple[str, dict[str, Any]]:
        from .tasks import run_job

        batch = producer.batch(max_size=PUBLISH_BATCH)
        try:
            with batch:
                run_job.apply_async(args=[self._PLACEHOLDER], task_id=self._PLACEHOLDER, producer=producer, **_routing(message))
                # kombu's Redis batch holds the push it would send: take it, then leave the batch unsent.
                (command, _options), = batch.state.session.pipeline.command_stack
                raise _Made(command)
        except _Made as made:
            name, key, payload = made.command
        if name.upper() != "LPUSH":
            raise RuntimeError(f"kombu's Redis transport sent {name!r}, not LPUSH: the envelope of run_job is unknown")
        envelope = json.loads(payload)
        args, kwargs, embed = json.loads(base64.b64decode(envelope["body"]))
        if args != [self._PLACEHOLDER] or kwargs or envelope["headers"]["id"] != self._PLACEHOLDER:
            raise RuntimeError("Celery's message for run_job is not of the known shape")
        rest = {k: v for k, v in envelope.items() if k not in ("body", "headers", "properties")}
        key = key.decode() if isinstance(key, bytes) else key
        return key, {"message": rest, "headers": envelope["headers"], "properties": envelope["properties"], "embed": embed}


class _Made(Exception):
    def __init__(self, command: tuple[Any, ...]):
        self.command = command


def _push(client: Any, producer: Any, outgoing: list[Outgoing]) -> list[str]:
    """One round trip: a script per message that pushes it, then sets its key."""
    ids = []

    def commands(pipe: Any) -> None:
        ids.clear()
        for message in outgoing:
            key, payload, message_id = _envelopes.fill(producer, message)
            _PUSH.queue(pipe, [key, MESSAGE_KEY.format(message.job_id)], [payload, message_id, MESSAGE_KEY_TTL])
            ids.append(message_id)

    _execute(client, commands, [_PUSH])
    return ids


def _execute(client: Any, commands: Callable[[Any], None], scripts: list[Script]) -> list[Any]:
    """Run the commands `commands` puts in a pipeline, in one round trip; load the scripts first if Redis lacks them.

    Redis forgets its scripts when it restarts (or on SCRIPT FLUSH): then every EVALSHA fails and
    none ran, so loading the scripts and sending the pipeline again sends each message once (a
    pipeline's other commands, the notes' announcements, go twice: a second "changed" is harmless).
    If the scripts went in the middle of the pipeline, some messages go twice: a duplicate message
    finds its job already claimed, as any duplicate does. Unlike a MULTI, a pipeline cut off by a
    lost connection may have run part of its commands; the retry sends them all again, and the
    same holds.
    """
    def send() -> list[Any]:
        with client.pipeline(transaction=False) as pipe:
            commands(pipe)
            return pipe.execute()

    try:
        return send()
    except NoScriptError:
        for script in scripts:
            client.script_load(script.source)
        return send()


def _apply_async(producer: Any, outgoing: list[Outgoing]) -> list[str]:
    """Send with Celery's apply_async, in kombu's publish batches (a broker other than Redis)."""
    from .tasks import run_job

    with producer.batch(max_size=PUBLISH_BATCH):
        return [run_job.apply_async(args=[message.job_id], producer=producer, **_routing(message)).id for message in outgoing]


def _retry_policy() -> dict[str, Any]:
    """Celery's publish retry policy (CELERY_TASK_PUBLISH_RETRY_POLICY) as retry_over_time takes it."""
    policy = {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2,
              **(current_app.conf.task_publish_retry_policy or {})}
    return {k: policy[k] for k in ("max_retries", "interval_start", "interval_step", "interval_max")}


def _routing(message: Outgoing) -> dict[str, Any]:
    """apply_async's arguments for the message: its queue, its priority step and the run's time limits."""
    limits = {"soft_time_limit": message.soft_time_limit, "time_limit": message.time_limit}
    return {"queue": message.queue, "priority": message.priority, **{k: v for k, v in limits.items() if v is not None}}


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


@dataclass(frozen=True, slots=True)
class Note:
    """A write to the broker that no one waits for: a job changed (message_id None), or its message was taken for good."""

    job_id: str
    message_id: str | None = None

    @classmethod
    def announce(cls, job_id: str) -> Note:
        return cls(job_id)

    @classmethod
    def forget(cls, job_id: str, message_id: str) -> Note:
        return cls(job_id, message_id)


class Outbox:
    """Writes to the broker that no caller waits for, sent from one thread of the process in batches, in order.

    Off (`deferred` False) each call sends at once, in the caller's thread; a process turns it on
    where a round trip per write is worth saving (`notes` below, in workers). What is still queued
    when the process ends goes out with flush(), called at exit (and by a worker's pool process as
    it stops, as those end without running exit handlers); a write lost with a process that dies
    costs only what `deliver`'s backstop says.
    """

    def __init__(self, name: str, deliver: Callable[[list[Any]], None], what: str) -> None:
        self.deferred = False
        # Seconds the thread waits after an item for more (NOTES_LINGER in a worker's pool processes).
        self.linger = 0.0
        self._deliver = deliver
        self._what = what
        self._fresh()
        # A process forked after the thread started has a queue and locks of its own, not its parent's.
        self._sender = ProcessThread(name, self._run, before_start=self._fresh)
        atexit.register(self.flush)

    def _fresh(self) -> None:
        self._items: collections.deque[Any] = collections.deque()
        # Guards _items: the thread takes a batch only while holding it, so flush() sees every item
        # either still queued or in a batch that is out.
        self._queue = threading.Condition()
        # Held while a batch is out, so that flush() sends its items after it, in order.
        self._sending = threading.Lock()
        self._hurry = False

    def send(self, item: Any) -> None:
        self.send_many([item])

    def send_many(self, items: list[Any]) -> None:
        if not self.deferred:
            self._deliver(items)
            return
        self._sender.ensure_running()
        with self._queue:
            self._items.extend(items)
            self._queue.notify()

    def flush(self, timeout: float = 2.0) -> None:
        """Send in this thread what is still queued, after the batch that is out (if any); give up after `timeout`."""
        if self._sender.thread is None:
            return  # this process queued nothing
        deadline = time.monotonic() + timeout
        if not self._queue.acquire(timeout=timeout):
            return
        try:
            self._hurry = True  # a batch lingering for more leaves now
            self._queue.notify()
            pending = list(self._items)
            self._items.clear()
        finally:
            self._queue.release()
        if not self._sending.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return
        try:
            for start in range(0, len(pending), PUBLISH_BATCH):
                if time.monotonic() > deadline:
                    logger.warning("Gave up sending %d %s at exit", len(pending) - start, self._what)
                    return
                self._send(pending[start:start + PUBLISH_BATCH])
        finally:
            self._sending.release()

    def _run(self) -> None:
        while True:
            with self._queue:
                while not self._items:
                    self._queue.wait()
                until = time.monotonic() + self.linger
                while not self._hurry and (left := until - time.monotonic()) > 0:
                    self._queue.wait(left)
                batch = [self._items.popleft() for _ in range(min(len(self._items), PUBLISH_BATCH))]
                if not batch:
                    continue  # flush() took them
                self._sending.acquire()
            try:
                self._send(batch)
            finally:
                self._sending.release()

    def _send(self, batch: list[Any]) -> None:
        try:
            self._deliver(batch)
        except Exception:
            logger.warning("Could not send %d %s", len(batch), self._what, exc_info=True)


_broker = Broker()
_envelopes = Envelopes()
# A job's announcements to its live streams and the forgetting of its message, deferred in workers
# (jobs.worker), where a job's run waits on none of them. A note lost with its process costs little:
# a live event stream reads the job again within its keep-alive, a message key left behind expires.
def notes_outbox() -> Outbox:
    return Outbox("jobs-notes", lambda batch: broker().notify(batch), "notes to the broker (live events, message keys)")


notes = notes_outbox()


def broker() -> Broker:
    """The broker that job messages go through (tests put a fake in its place)."""
    return _broker
