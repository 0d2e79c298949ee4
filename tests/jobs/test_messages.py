"""Job messages against a real redis-server: tracked while queued, forgotten once taken, lost ones noticed."""

import json
import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis as redis_py
from celery import current_app
from django.utils import timezone
from kombu import pools
from kombu.utils.collections import eqhash

from devtools import redis as dev_redis
from jobs import messages

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


@pytest.fixture
def redis(tmp_path):
    """A redis-server of the test's own, as Celery's broker for the test."""
    port = dev_redis.free_port()
    server = dev_redis.start(port, tmp_path / "redis")
    url = f"redis://127.0.0.1:{port}/0"
    conf = current_app.conf
    saved = conf.broker_url, current_app._pool, current_app.amqp._producer_pool
    # The app caches its connection and producer pools per broker: new ones for this broker.
    conf.broker_url, current_app._pool, current_app.amqp._producer_pool = url, None, None
    client = redis_py.Redis.from_url(url)
    try:
        yield client
    finally:
        current_app.pool.force_close_all()
        # kombu keeps its pools per broker for the whole process: a later test whose free port is this
        # one's would be handed these closed pools ("Acquire on closed pool").
        broker = current_app.connection_for_write()
        for group in (pools.connections, pools.producers):
            group.pop(eqhash(broker), None)
        conf.broker_url, current_app._pool, current_app.amqp._producer_pool = saved
        client.close()
        server.terminate()
        server.wait()


def message(job_id: str = "job-1", queue: str = "jobs", priority: int = 9) -> messages.Outgoing:
    return messages.Outgoing(job_id=job_id, queue=queue, priority=priority)


def queued_ids(redis, queue: str = "jobs") -> list[tuple[str, str]]:
    """(list, job id) of each message in the queue's priority lists."""
    keys = [queue, *(f"{queue}\x06\x16{step}" for step in range(1, 10))]
    return [(key, json.loads(raw)["headers"]["argsrepr"]) for key in keys for raw in redis.lrange(key, 0, -1)]


def test_a_published_message_is_queued_and_tracked_until_forgotten(redis):
    broker = messages.Broker()
    message_id = broker.publish(message(priority=3))
    assert queued_ids(redis) == [("jobs\x06\x163", "['job-1']")]
    assert redis.get("gravity-jobs:message:job-1").decode() == message_id
    assert 0 < redis.ttl("gravity-jobs:message:job-1") <= messages.MESSAGE_KEY_TTL
    assert broker.still_queued([messages.Queued(job_id="job-1", queue="jobs")]) == {"job-1"}
    broker.forget("job-1", "some-older-message")
    assert redis.get("gravity-jobs:message:job-1").decode() == message_id
    broker.forget("job-1", message_id)
    assert redis.get("gravity-jobs:message:job-1") is None


def test_a_message_is_still_queued_while_its_queue_holds_messages_or_a_worker_holds_it(redis):
    broker = messages.Broker()
    broker.publish(message("job-1"))
    broker.publish(message("job-2"))
    jobs = [messages.Queued(job_id="job-1", queue="jobs"), messages.Queued(job_id="job-2", queue="jobs")]
    assert broker.still_queued(jobs) == {"job-1", "job-2"}
    # A worker takes job-1's message (kombu moves it to its unacked hash), and job-2's is lost.
    raw = redis.rpop("jobs\x06\x169")
    redis.hset("unacked", "tag-1", json.dumps([json.loads(raw), "", "jobs"]))
    redis.delete("jobs\x06\x169")
    assert broker.still_queued(jobs) == {"job-1"}
    redis.delete("unacked")
    assert broker.still_queued(jobs) == set()


def test_a_job_whose_key_is_gone_has_no_message_queued(redis):
    broker = messages.Broker()
    broker.publish(message("job-1"))
    redis.delete("gravity-jobs:message:job-1")
    assert broker.still_queued([messages.Queued(job_id="job-1", queue="jobs")]) == set()


def test_finding_a_message_queued_renews_its_key(redis):
    broker = messages.Broker()
    broker.publish(message("job-1"))
    redis.expire("gravity-jobs:message:job-1", 60)
    broker.still_queued([messages.Queued(job_id="job-1", queue="jobs")])
    assert redis.ttl("gravity-jobs:message:job-1") > messages.MESSAGE_KEY_TTL - 60


def test_the_mark_says_since_when_messages_may_have_been_lost(redis, caplog):
    broker = messages.Broker()
    before = timezone.now()
    with caplog.at_level("WARNING", logger="jobs.messages"):
        first = broker.lost_before()
        assert broker.lost_before() == first
    assert before <= first <= timezone.now()
    assert caplog.messages == [
        "The broker's mark is missing (its first start, or it lost its data): "
        "sending the messages of waiting jobs again, a batch each sweep"
    ]
    redis.flushall()  # the broker lost its data
    assert broker.lost_before() - first > timedelta(0)


def test_a_worker_sends_its_notes_from_a_thread_in_order_and_a_forked_process_starts_its_own(redis, broker, monkeypatch):
    """In a worker a job's run waits on no note: they leave from a thread, announcements and forgettings in one batch."""
    real = messages.Broker()
    monkeypatch.setattr(messages, "broker", lambda: real)
    sent = real.publish(message())
    batches: list[list[messages.Note]] = []
    notify = real.notify
    monkeypatch.setattr(real, "notify", lambda notes: (batches.append(list(notes)), notify(notes)))
    pubsub = redis.pubsub()
    pubsub.subscribe(messages.EVENTS_CHANNEL.format("job-1"))
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    notes = messages.notes_outbox()
    notes.deferred = True
    # As in a pool process, but long enough that the second note is surely queued before the first
    # leaves, on a busy machine too.
    notes.linger = 0.5
    notes.send(messages.Note.announce("job-1"))
    notes.send(messages.Note.forget("job-1", sent))
    deadline = time.monotonic() + 5
    while redis.get("gravity-jobs:message:job-1") is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert redis.get("gravity-jobs:message:job-1") is None
    assert pubsub.get_message(timeout=1)["data"] == b"changed"
    # The thread lingered after the first note for the next: both went in one round trip.
    assert batches == [[messages.Note("job-1"), messages.Note("job-1", sent)]]
    assert notes._sender.thread is not None and notes._sender.thread.name == "jobs-notes"
    # A pool process forked after the thread started has none of its own: it starts one.
    first = notes._sender.thread
    notes._sender._pid = -1  # as in a process forked after the thread started
    notes.send(messages.Note.announce("job-1"))
    assert notes._sender.thread is not first and notes._sender.thread.is_alive()
    assert pubsub.get_message(timeout=2)["data"] == b"changed"
    pubsub.close()


def test_outside_a_worker_a_note_is_sent_at_once(broker):
    notes = messages.notes_outbox()
    notes.send(messages.Note.announce("job-1"))
    assert broker.announced == ["job-1"] and notes._sender.thread is None


@pytest.mark.parametrize("priority, limits", [(9, {}), (0, {}), (3, {"soft_time_limit": 5.0, "time_limit": 8.0})])
def test_a_message_filled_in_from_its_envelope_is_the_one_celery_sends(redis, priority, limits):
    """The fast path sends what apply_async sends, but for what is unique to each message."""
    from jobs.tasks import run_job

    with current_app.producer_or_acquire() as producer:
        run_job.apply_async(args=["job-1"], producer=producer, queue="jobs", priority=priority, **limits)
    messages.Broker().publish(messages.Outgoing(job_id="job-1", queue="jobs", priority=priority, **limits))
    keys = [key for key in redis.keys("jobs*") if redis.type(key) == b"list"]
    assert len(keys) == 1 and redis.llen(keys[0]) == 2
    celerys, ours = (json.loads(raw) for raw in redis.lrange(keys[0], 0, -1)[::-1])
    unique = {("headers", "id"), ("headers", "root_id"), ("properties", "correlation_id"), ("properties", "delivery_tag")}
    for part in ("headers", "properties"):
        for name in celerys[part].keys() | ours[part].keys():
            if (part, name) not in unique:
                assert ours[part][name] == celerys[part][name], (part, name)
    assert {k: v for k, v in ours.items() if k not in ("headers", "properties")} == {
        k: v for k, v in celerys.items() if k not in ("headers", "properties")
    }
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"] != celerys["headers"]["id"]
    assert ours["properties"]["delivery_tag"] != celerys["properties"]["delivery_tag"]
    assert redis.get("gravity-jobs:message:job-1").decode() == ours["headers"]["id"]


def test_a_batch_of_messages_is_one_round_trip_per_publish_batch(redis, monkeypatch):
    monkeypatch.setattr(messages, "PUBLISH_BATCH", 3)
    executed = []
    from redis.client import Pipeline

    execute = Pipeline.execute
    monkeypatch.setattr(Pipeline, "execute", lambda self, *a, **k: (executed.append(len(self.command_stack)), execute(self, *a, **k))[1])
    ids = messages.Broker().publish_many([message(f"job-{i}") for i in range(7)])
    # A new redis-server lacks the script: the first batch fails whole, goes again once it is loaded.
    assert len(set(ids)) == 7 and executed == [3, 3, 3, 1]
    assert sorted(job for _, job in queued_ids(redis)) == sorted(f"['job-{i}']" for i in range(7))
    assert [redis.get(f"gravity-jobs:message:job-{i}").decode() for i in range(7)] == ids


def test_a_redis_that_forgot_the_scripts_gets_them_again_and_each_message_goes_once(redis):
    broker = messages.Broker()
    first = broker.publish(message("job-1"))
    redis.script_flush()  # as a restart does
    second = broker.publish(message("job-2"))
    assert sorted(job for _, job in queued_ids(redis)) == ["['job-1']", "['job-2']"]
    redis.script_flush()
    broker.forget("job-1", first)
    broker.forget("job-2", second)
    assert redis.keys("gravity-jobs:message:*") == []


def test_a_publish_that_loses_its_connection_is_tried_again_by_celerys_retry_policy(redis, monkeypatch):
    push, tries = messages._push, []

    def flaky(*args):
        tries.append(len(tries))
        if len(tries) < 3 or not args:
            raise redis_py.ConnectionError("Connection reset by peer")
        return push(*args)

    monkeypatch.setattr(messages, "_push", flaky)
    current_app.conf.task_publish_retry_policy = {"max_retries": 3, "interval_start": 0, "interval_step": 0.01}
    try:
        message_id = messages.Broker().publish(message("job-1"))
        assert tries == [0, 1, 2] and [job for _, job in queued_ids(redis)] == ["['job-1']"]
        assert redis.get("gravity-jobs:message:job-1").decode() == message_id
        tries.clear()
        monkeypatch.setattr(messages, "_push", lambda *args: flaky())  # fails every time
        current_app.conf.task_publish_retry_policy = {"max_retries": 1, "interval_start": 0, "interval_step": 0.01}
        with pytest.raises(redis_py.ConnectionError):
            messages.Broker().publish(message("job-2"))
        assert tries == [0, 1]  # the first try and max_retries (1) more, as apply_async counts them
    finally:
        current_app.conf.task_publish_retry_policy = None


def test_what_an_outbox_still_holds_when_its_process_exits_is_sent(tmp_path):
    """A worker's process that stops sends the notes its jobs queued, even those lingering in the thread for more."""
    out = tmp_path / "sent.txt"
    script = (
        "import sys, time, django; django.setup()\n"
        "from jobs.messages import Outbox\n"
        f"def deliver(batch):\n    with open({str(out)!r}, 'a') as f: f.write(','.join(batch) + '\\n')\n"
        "box = Outbox('jobs-test', deliver, 'test items')\n"
        "box.deferred, box.linger = True, 60\n"
        "box.send('a'); time.sleep(0.3); box.send('b')\n"
        "sys.exit(0)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True, timeout=60)
    assert out.read_text() == "a,b\n"


def test_a_flush_sends_what_is_queued_after_the_batch_that_is_out_keeping_the_order():
    delivered, release = [], threading.Event()

    def deliver(batch):
        if batch == ["a"]:
            release.wait(10)
        delivered.append(list(batch))

    box = messages.Outbox("jobs-test", deliver, "test items")
    box.deferred = True
    box.send("a")
    deadline = time.monotonic() + 10
    while not box._sending.locked() and time.monotonic() < deadline:
        time.sleep(0.005)
    box.send_many(["b", "c"])
    flusher = threading.Thread(target=box.flush, kwargs={"timeout": 10})
    flusher.start()
    time.sleep(0.1)
    release.set()
    flusher.join(10)
    assert delivered == [["a"], ["b", "c"]]
