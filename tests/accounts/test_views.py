"""Sign-up, verification and plan endpoints: good and bad input, and the email jobs they start."""

import pytest
from django.core import signing
from rest_framework.test import APIClient

from accounts.models import Account, EmailVerification
from accounts.services import verification_token
from jobs.models import Job
from onboarding.days import flow_today
from tests.clients import bearer_client

pytestmark = pytest.mark.django_db
GOOD = {"email": "Kim@Example.com", "password": "a-long-pass-phrase-42", "name": "Kim"}


def email_jobs():
    return sorted(Job.objects.filter(name__startswith="onboarding.send_").values_list("name", flat=True))


@pytest.fixture
def anon():
    return APIClient()


def signup(anon, django_capture_on_commit_callbacks, body=GOOD):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = anon.post("/api/account", body, format="json")
    return response, callbacks


def test_signup_creates_user_account_trial_and_the_verification_job(anon, django_capture_on_commit_callbacks, settings):
    response, callbacks = signup(anon, django_capture_on_commit_callbacks)
    assert response.status_code == 201
    body = response.json()
    assert body["user"] == {"id": body["user"]["id"], "email": "kim@example.com", "name": "Kim", "verified": False}
    account = Account.objects.get(pk=body["account"]["id"])
    assert (account.trial_ends_on - flow_today(account.created_at)).days == settings.ACCOUNT_TRIAL_DAYS
    assert email_jobs() == ["onboarding.send_verification_email"]
    assert len(callbacks) == 1  # the job's message leaves after commit
    assert Account.objects.count() == 1, "no extra personal account"


def test_a_taken_email_is_409_in_any_case(anon, django_capture_on_commit_callbacks):
    signup(anon, django_capture_on_commit_callbacks)
    response, _ = signup(anon, django_capture_on_commit_callbacks, {**GOOD, "email": "KIM@example.COM"})
    assert response.status_code == 409
    assert response.json()["error"]["message"] == "An account with the email 'kim@example.com' already exists."
    assert email_jobs() == ["onboarding.send_verification_email"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**GOOD, "email": "not-an-email"}, "email"),
        ({**GOOD, "password": "123"}, "password"),
        ({**GOOD, "password": "password"}, "password"),
        ({"email": "a@b.co"}, "password"),
        ({**GOOD, "email": 7}, "email"),
    ],
)
def test_bad_email_or_weak_password_is_400_and_creates_nothing(anon, django_capture_on_commit_callbacks, body, field):
    response, _ = signup(anon, django_capture_on_commit_callbacks, body)
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]["fields"]
    assert (Account.objects.count(), email_jobs()) == (0, [])


def verify(anon, token, method="post"):
    if method == "get":
        return anon.get("/api/user/verify", {"token": token})
    return anon.post("/api/user/verify", {"token": token}, format="json")


@pytest.mark.parametrize("method", ["post", "get"])
def test_verify_marks_the_address_and_starts_one_welcome_job(anon, django_capture_on_commit_callbacks, method):
    response, _ = signup(anon, django_capture_on_commit_callbacks)
    verification = EmailVerification.objects.get()
    token = verification_token(verification.user)
    first = verify(anon, token, method)
    assert first.json() == {"verified": True, "email": "kim@example.com", "alreadyVerified": False}
    second = verify(anon, token, method)
    assert (second.status_code, second.json()["alreadyVerified"]) == (200, True)
    assert email_jobs() == ["onboarding.send_verification_email", "onboarding.send_welcome_email"]
    verification.refresh_from_db()
    assert verification.verified_at is not None


@pytest.mark.parametrize("token", ["", "garbage", signing.dumps({"user": 1, "email": "x@y.z"}, salt="other")])
def test_a_bad_token_is_400(anon, token):
    response = verify(anon, token)
    assert response.status_code == 400


def test_an_expired_token_is_400(anon, django_capture_on_commit_callbacks, monkeypatch):
    signup(anon, django_capture_on_commit_callbacks)
    user = EmailVerification.objects.get().user
    import time as real_time

    eight_days_ago = real_time.time() - 8 * 24 * 3600
    monkeypatch.setattr(signing.time, "time", lambda: eight_days_ago)
    token = verification_token(user)
    monkeypatch.undo()
    response = verify(anon, token)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "The verification link is invalid or has expired."
    assert EmailVerification.objects.get().verified_at is None


def test_choosing_a_plan_records_it_and_starts_the_plan_job(api_key):
    user, key = api_key("alice")
    client = bearer_client(key)
    response = client.post("/api/account/plan", {"plan": "pro"}, format="json")
    assert (response.status_code, response.json()["plan"]) == (200, "pro")
    assert email_jobs() == ["onboarding.send_plan_selected_email"]
    assert Account.objects.get(memberships__user=user).plan == "pro"


@pytest.mark.parametrize("body", [{"plan": "gold"}, {"plan": ""}, {}, {"plan": 3}])
def test_an_unknown_plan_is_400_and_changes_nothing(api_key, body):
    user, key = api_key("alice")
    client = bearer_client(key)
    response = client.post("/api/account/plan", body, format="json")
    assert response.status_code == 400
    assert (Account.objects.get(memberships__user=user).plan, email_jobs()) == ("", [])


def test_choosing_a_plan_needs_credentials(anon):
    assert anon.post("/api/account/plan", {"plan": "pro"}, format="json").status_code == 401
