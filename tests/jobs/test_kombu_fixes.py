"""A worker's broker connection closed after it was collected: a connection error, which Celery survives, not an AttributeError."""

import pytest
from kombu import Connection, Exchange, Queue
from kombu.common import ignore_errors
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

from devtools import redis as dev_redis
from jobs import kombu_fixes


@pytest.fixture
def delivered(tmp_path):
    """A kombu connection to a real redis-server whose default channel holds one unacknowledged message."""
    port = dev_redis.free_port()
    server = dev_redis.start(port, tmp_path / "redis")
    connection = Connection(f"redis://127.0.0.1:{port}/0")
    queue = Queue("t", Exchange("t"), "t")
    connection.Producer().publish({"n": 1}, exchange=queue.exchange, routing_key="t", declare=[queue])
    channel = connection.default_channel
    got = []
    connection.Consumer([queue], callbacks=[lambda body, message: got.append(message)], channel=channel).consume()
    connection.drain_events(timeout=5)
    assert len(got) == 1 and len(channel.qos._delivered) == 1
    try:
        yield connection, channel
    finally:
        server.terminate()
        server.wait()


def detach(connection):
    """What Celery 5.7's collect leaves when the channel's first close failed: a detached transport, the channel open."""
    connection._do_close_transport()


def test_without_the_guard_closing_the_channel_of_a_detached_transport_is_an_attribute_error(delivered, monkeypatch):
    connection, channel = delivered
    monkeypatch.setattr(kombu_redis.Channel, "_connparams", kombu_fixes._connparams)
    detach(connection)
    with pytest.raises(AttributeError, match="hostname"):
        ignore_errors(connection, channel.close)


def test_with_the_guard_it_is_a_connection_error_that_celery_ignores(delivered):
    connection, channel = delivered
    assert kombu_redis.Channel._connparams is kombu_fixes._guarded_connparams  # installed by the jobs app
    detach(connection)
    with pytest.raises(RedisConnectionError):
        channel.close()
    ignore_errors(connection, connection.close)  # what Celery does next: no error escapes
