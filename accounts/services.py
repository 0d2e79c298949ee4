"""Writes and lookups for accounts and API keys."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from jobs.throttling import parse_rate

from .models import SCOPES, Account, ApiKey, Membership, hash_key

KEY_PREFIX = "gj_"


def ensure_personal_account(sender=None, instance=None, created: bool = False, **kwargs) -> None:
    """Give a newly created user with no account a personal one (post_save on the user model)."""
    if created and not kwargs.get("raw") and not Membership.objects.filter(user=instance).exists():
        account_create(name=instance.get_username(), owner=instance)


def account_create(*, name: str, owner) -> Account:
    with transaction.atomic():
        account = Account.objects.create(name=name)
        Membership.objects.create(user=owner, account=account)
    return account


def account_for_user(user) -> Account:
    """Return the user's (first) account, creating a personal one if the user has none."""
    membership = Membership.objects.filter(user=user).select_related("account").order_by("pk").first()
    if membership is not None:
        return membership.account
    return account_create(name=user.get_username(), owner=user)


def account_key_for_request(request) -> str:
    """The tenant of a request (JOBS["OWNER_RESOLVER"]): the API key's account, else the user's."""
    if isinstance(request.auth, ApiKey):
        return f"account:{request.auth.account_id}"
    return f"account:{account_for_user(request.user).pk}"


def api_key_create(
    *, user, scopes: Iterable[str], name: str = "", account: Account | None = None, rate_limit: str = ""
) -> tuple[ApiKey, str]:
    """Create an API key for `user`; return it with the clear key, which is never stored."""
    scopes = sorted(set(scopes))
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if unknown:
        raise ValueError(f"Unknown scope {', '.join(unknown)}; known scopes are {', '.join(SCOPES)}.")
    if not scopes:
        raise ValueError(f"An API key needs at least one scope of {', '.join(SCOPES)}.")
    if rate_limit:
        parse_rate(rate_limit)
    clear = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        user=user,
        account=account or account_for_user(user),
        name=name,
        prefix=clear[:10],
        key_hash=hash_key(clear),
        scopes=scopes,
        rate_limit=rate_limit,
    )
    return api_key, clear


def api_key_authenticate(clear: str) -> ApiKey | None:
    """Return the live API key for `clear` whose user is active, or None."""
    api_key = (
        ApiKey.objects.select_related("user")
        .filter(key_hash=hash_key(clear), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if api_key is not None:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    return api_key


def user_get(username: str):
    User = get_user_model()
    return User.objects.get(**{User.USERNAME_FIELD: username})
