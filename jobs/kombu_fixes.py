"""A guard for kombu's Redis channel, so that a worker survives the restart of its Redis.

With Celery 5.7 and kombu 5.7, a worker that loses its broker connection collects the connection
(which detaches its transport) and then closes it; when the consumer's channel was not closed by
the collection (it was mid-BRPOP, under load), the second close restores its unacknowledged
messages, which asks the detached transport for its host, and the AttributeError that follows is
no connection error: Celery reports "Unrecoverable error: AttributeError("'NoneType' object has no
attribute 'hostname'")" and the worker exits. Found by tests/e2e/test_faults.py (Redis killed and
restarted empty under load) on a loaded machine, with every worker gone and the jobs left waiting.

The guard turns that case into the connection error it is: Celery ignores it, reconnects, and the
messages the channel held stay in Redis's unacked set (restored after the visibility timeout, or,
when Redis lost them, sent again by the sweep). Remove it once kombu handles a detached transport.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

_connparams = kombu_redis.Channel._connparams


def _guarded_connparams(self: kombu_redis.Channel, asynchronous: bool = False) -> Any:
    if self.connection.client is None:
        raise RedisConnectionError("the broker connection is closed (its transport was detached)")
    return _connparams(self, asynchronous)


def install() -> None:
    """Guard kombu's Redis channel (idempotent)."""
    kombu_redis.Channel._connparams = _guarded_connparams
