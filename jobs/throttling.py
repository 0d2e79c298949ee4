"""Rate limits for the API (429 with Retry-After), counted in the cache (Redis) so all web processes share them."""

from __future__ import annotations

import logging

from rest_framework.throttling import SimpleRateThrottle

from . import conf

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """Return (requests, seconds) for a rate such as '600/minute'; raise ValueError otherwise."""
    try:
        count, period = rate.split("/")
        requests = int(count)
        seconds = PERIODS[period]
    except (AttributeError, KeyError, ValueError):
        raise ValueError(f"{rate!r} is not a rate such as '600/minute'.") from None
    if requests < 1:
        raise ValueError(f"{rate!r} allows no requests.")
    return requests, seconds


class SharedRateThrottle(SimpleRateThrottle):
    """A rate limit whose rate comes from get_rate() at each request; while the cache is down, it lets requests through."""

    def __init__(self):
        # The rate is read per request (settings may change, a key may carry its own).
        pass

    def parse_rate(self, rate):
        return (None, None) if rate is None else parse_rate(rate)

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate_for(request, view)
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except Exception:
            # The counters live in Redis; while it is down, serve rather than refuse.
            logger.warning("Rate limit store unavailable; letting the request through", exc_info=True)
            return True

    def get_rate_for(self, request, view) -> str | None:
        raise NotImplementedError


class ApiKeyRateThrottle(SharedRateThrottle):
    """Limit each API key (or logged-in user) to its rate: the key's own, else JOBS["RATE_LIMIT"]."""

    scope = "jobs"

    def get_rate_for(self, request, view) -> str | None:
        return getattr(request.auth, "rate_limit", None) or conf.get("RATE_LIMIT")

    def get_cache_key(self, request, view) -> str | None:
        auth = request.auth
        if getattr(auth, "pk", None) is not None:
            return f"throttle:jobs:key:{auth.pk}"
        if request.user and request.user.is_authenticated:
            return f"throttle:jobs:user:{request.user.pk}"
        return None  # unauthenticated requests end in 401 anyway
