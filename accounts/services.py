"""Writes and lookups for accounts and API keys."""

from __future__ import annotations

import secrets
import zoneinfo
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core import signing
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from jobs.api import parse_rate

from . import signals
from .models import SCOPES, Account, ApiKey, EmailVerification, Membership, hash_key

KEY_PREFIX = "gj_"
LAST_USED_PRECISION = timedelta(minutes=1)


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
    """Return the live API key for `clear` whose user is active and still a member of the key's account, or None."""
    still_member = Membership.objects.filter(user=OuterRef("user"), account=OuterRef("account"))
    api_key = (
        ApiKey.objects.select_related("user")
        .filter(key_hash=hash_key(clear), revoked_at__isnull=True, user__is_active=True)
        .filter(Exists(still_member))
        .first()
    )
    now = timezone.now()
    # Recorded at most once a minute: a write per request would put every GET on the write lock.
    if api_key is not None and (api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_PRECISION):
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return api_key


def user_get(username: str):
    User = get_user_model()
    return User.objects.get(**{User.USERNAME_FIELD: username})


class SignupError(Exception):
    """Base class of the errors of signing up, verifying and choosing a plan; never raised itself."""


class InvalidSignup(SignupError):
    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items()))
        self.errors = errors


class EmailTaken(SignupError):
    def __init__(self, email: str):
        super().__init__(f"An account with the email {email!r} already exists.")


class BadToken(SignupError):
    def __init__(self):
        super().__init__("The verification link is invalid or has expired.")


class UnknownPlan(SignupError):
    def __init__(self, plan: str):
        super().__init__(f"Unknown plan {plan!r}; plans are {', '.join(settings.ACCOUNT_PLANS)}.")


class BadCredentials(SignupError):
    def __init__(self):
        super().__init__("Invalid email or password.")


class EmailUnverified(SignupError):
    def __init__(self, email: str):
        super().__init__(f"Verify your email address first: follow the link we sent to {email}.")


VERIFY_SALT = "accounts.verify-email"
VERIFY_MAX_AGE = 7 * 24 * 3600


def account_signup(*, email: str, password: str, name: str = "") -> tuple[object, Account]:
    """Create a user (username = email) with an account on trial; the caller sends the verification email."""
    User = get_user_model()
    email = (email or "").strip().lower()
    errors: dict[str, list[str]] = {}
    try:
        validate_email(email)
    except DjangoValidationError:
        errors["email"] = ["Enter a valid email address."]
    if not errors:
        try:
            validate_password(password or "", user=User(username=email, email=email, first_name=name))
        except DjangoValidationError as exc:
            errors["password"] = list(exc.messages)
    if errors:
        raise InvalidSignup(errors)
    if User.objects.filter(username__iexact=email).exists():
        raise EmailTaken(email)
    try:
        with transaction.atomic():
            user = User(username=email, email=email, first_name=name[:150])
            user.set_password(password)
            user.save()  # the post_save signal gives the user its personal account: the trial one
            account = account_for_user(user)
            account.name = name or email
            # Today in the schedule's zone (London), whose days the flow ends trials on: a UTC date
            # gave a sign-up between midnight and 01:00 BST a trial a day short.
            today = timezone.localdate(timezone=zoneinfo.ZoneInfo(settings.WORKER_SCHEDULE_TIMEZONE))
            account.trial_ends_on = today + timedelta(days=settings.ACCOUNT_TRIAL_DAYS)
            account.save(update_fields=["name", "trial_ends_on"])
            EmailVerification.objects.create(user=user, email=email)
            signals.user_signed_up.send(sender=Account, user=user, account=account)
    except IntegrityError:
        raise EmailTaken(email) from None
    return user, account


def verification_token(user) -> str:
    return signing.dumps({"user": user.pk, "email": user.email}, salt=VERIFY_SALT)


def verification_url(user) -> str:
    return f"{settings.SITE_URL}/api/user/verify?token={verification_token(user)}"


def user_verify(*, token: str) -> tuple[object, bool]:
    """Mark the address in the token verified; return the user and whether it was verified just now."""
    try:
        payload = signing.loads(token or "", salt=VERIFY_SALT, max_age=VERIFY_MAX_AGE)
        user_id, email = payload["user"], payload["email"]
    except (signing.BadSignature, KeyError, TypeError):
        raise BadToken() from None
    verification = EmailVerification.objects.filter(user_id=user_id, email=email).select_related("user").first()
    if verification is None:
        raise BadToken()
    # One guarded write: of two clicks on the link, exactly one verifies (and sends the welcome).
    verified_now = EmailVerification.objects.filter(pk=verification.pk, verified_at__isnull=True).update(
        verified_at=timezone.now()
    )
    if verified_now:
        signals.email_verified.send(sender=Account, user=verification.user)
    return verification.user, bool(verified_now)


def account_select_plan(*, account: Account, plan: str, user) -> Account:
    """Record `user`'s choice of `plan` for `account`."""
    if plan not in settings.ACCOUNT_PLANS:
        raise UnknownPlan(plan)
    Account.objects.filter(pk=account.pk).update(plan=plan, plan_selected_at=timezone.now())
    account.refresh_from_db()
    signals.plan_selected.send(sender=Account, user=user, account=account)
    return account


def user_sign_in(*, email: str, password: str):
    """Return the active, verified user with this email and password; raise BadCredentials or EmailUnverified.

    The answer is the same whether or not the address exists (Django's ModelBackend also hashes
    the password of a user that does not exist, so the time taken tells nothing either).
    """
    User = get_user_model()
    login = (email or "").strip()
    user = User.objects.filter(username__iexact=login).first()
    if user is None:
        # Users made by an operator (create_user) may have a username that is not their address.
        same_email = list(User.objects.filter(email__iexact=login)[:2])
        user = same_email[0] if len(same_email) == 1 else None
    user = authenticate(None, username=user.get_username() if user else login, password=password or "")
    if user is None:
        raise BadCredentials()
    verification = EmailVerification.objects.filter(user=user).first()
    # Users who signed up must prove the address first; users made by an operator have no row.
    if verification is not None and verification.verified_at is None:
        raise EmailUnverified(verification.email)
    return user


def api_key_sign_in(*, email: str, password: str, scopes: Iterable[str] | None = None, name: str = "") -> tuple[ApiKey, str]:
    """Sign a user in: a new API key for their account with `scopes` (default: all); return it with the clear key."""
    user = user_sign_in(email=email, password=password)
    return api_key_create(user=user, scopes=SCOPES if scopes is None else scopes, name=name or "sign-in")


def api_keys_revoke(*, keys: Iterable[ApiKey]) -> int:
    """Revoke those of `keys` that are live (a revoked key keeps the time it was revoked); return how many."""
    live = ApiKey.objects.filter(pk__in=[key.pk for key in keys], revoked_at__isnull=True)
    return live.update(revoked_at=timezone.now())
