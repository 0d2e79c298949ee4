"""Accounts, API keys and the commands that make them."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, Membership, hash_key
from accounts.services import account_for_user, api_key_authenticate, api_key_create

pytestmark = pytest.mark.django_db
User = get_user_model()


def test_a_new_user_gets_a_personal_account(make_user):
    user = make_user("erin")
    assert [m.account.name for m in Membership.objects.filter(user=user)] == ["erin"]


def test_createsuperuser_then_create_api_key_just_works(capsys):
    call_command("createsuperuser", username="root", email="r@example.com", interactive=False, verbosity=0)
    call_command("create_api_key", "root", "--scopes", "job.read")
    key = capsys.readouterr().out.strip()
    api_key = api_key_authenticate(key)
    assert api_key.user.username == "root" and api_key.scopes == ["job.read"]
    assert api_key.account == account_for_user(User.objects.get(username="root"))


def test_keys_are_stored_hashed_and_shown_once(make_user):
    api_key, clear = api_key_create(user=make_user(), scopes=["job.read", "job.create"])
    assert clear.startswith("gj_") and len(clear) > 40
    stored = ApiKey.objects.get()
    assert stored.key_hash == hash_key(clear) and clear not in stored.key_hash
    assert stored.prefix == clear[:10]
    assert stored.scopes == ["job.create", "job.read"]


def test_a_key_of_an_inactive_user_does_not_authenticate(make_user):
    user = make_user()
    _, clear = api_key_create(user=user, scopes=["job.read"])
    user.is_active = False
    user.save()
    assert api_key_authenticate(clear) is None


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        ("job.read,job.fly", "Unknown scope job.fly; known scopes are job.create, job.read, job.update, job.delete, account.read, account.update."),
        (",", "An API key needs at least one scope of job.create, job.read, job.update, job.delete, account.read, account.update."),
    ],
)
def test_create_api_key_refuses_bad_scopes(make_user, scopes, message):
    make_user("alice")
    with pytest.raises(CommandError, match=message.replace(".", r"\.")):
        call_command("create_api_key", "alice", "--scopes", scopes)
    assert ApiKey.objects.count() == 0


def test_create_api_key_for_an_unknown_user_fails_clearly():
    with pytest.raises(CommandError, match="No user named 'ghost'."):
        call_command("create_api_key", "ghost")


def test_create_user_makes_a_user_and_refuses_a_duplicate(capsys):
    call_command("create_user", "frank", "--email", "f@example.com")
    assert User.objects.get(username="frank").email == "f@example.com"
    with pytest.raises(CommandError, match="A user named 'frank' already exists."):
        call_command("create_user", "frank")


def test_bootstrap_demo_keeps_one_live_demo_key(capsys, settings):
    settings.DEBUG = True
    call_command("bootstrap_demo")
    first = capsys.readouterr().out.split("API_KEY=")[1].strip()
    call_command("bootstrap_demo")
    second = capsys.readouterr().out.split("API_KEY=")[1].strip()
    assert api_key_authenticate(first) is None
    assert api_key_authenticate(second).user.username == "demo"
    assert User.objects.get(username="demo").check_password("demo")


def test_bootstrap_demo_refuses_to_run_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="runs only with DEBUG on"):
        call_command("bootstrap_demo")
    assert not User.objects.filter(username="demo").exists()


def test_last_used_is_written_at_most_once_a_minute(make_user):
    from datetime import timedelta

    from django.utils import timezone

    _, clear = api_key_create(user=make_user(), scopes=["job.read"])
    api_key_authenticate(clear)
    first = ApiKey.objects.get().last_used_at
    assert first is not None
    api_key_authenticate(clear)
    assert ApiKey.objects.get().last_used_at == first
    ApiKey.objects.update(last_used_at=first - timedelta(minutes=2))
    api_key_authenticate(clear)
    assert ApiKey.objects.get().last_used_at > first - timedelta(minutes=1)
    assert ApiKey.objects.get().last_used_at <= timezone.now()
