"""Rate limits per client address for the anonymous endpoints (sign-up, verify, sign-in)."""

from __future__ import annotations

from types import SimpleNamespace

from django.conf import settings

from jobs.api import SharedRateThrottle


class ClientRateThrottle(SharedRateThrottle):
    """Limit a view's `throttle_scope` per client: settings.ACCOUNT_RATE_LIMITS[scope] requests.

    The client is the connection's address, or the address that the last of TRUSTED_PROXIES
    proxies saw (DRF's NUM_PROXIES); X-Forwarded-For is never trusted beyond that.
    """

    def get_rate_for(self, request, view) -> str | None:
        self.scope = view.throttle_scope
        return settings.ACCOUNT_RATE_LIMITS[self.scope]

    def get_cache_key(self, request, view) -> str:
        return f"throttle:{self.scope}:client:{self.get_ident(request)}"


def client_throttle_wait(request, scope: str) -> float | None:
    """For views outside DRF: None if the client may go on, else the seconds until it may."""
    throttle = ClientRateThrottle()
    if throttle.allow_request(request, SimpleNamespace(throttle_scope=scope)):
        return None
    return throttle.wait() or 1.0
