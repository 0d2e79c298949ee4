"""What each kind of caller may do with accounts: scopes, keys that stop working, sign-in, throttles, pages."""

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts.models import SCOPES, Account, ApiKey, EmailVerification, Membership
from accounts.services import account_create, api_key_create, verification_token
from jobs.models import Job
from tests.clients import bearer_client

pytestmark = pytest.mark.django_db
User = get_user_model()
PASSWORD = "a-long-pass-phrase-42"


def error_of(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    return error


def signed_up(email="kim@example.com", *, verified=True):
    """A user who signed up through the API (and clicked the link, unless verified=False)."""
    response = APIClient().post("/api/account", {"email": email, "password": PASSWORD, "name": "Kim"}, format="json")
    assert response.status_code == 201, response.content
    user = User.objects.get(username=email)
    if verified:
        assert APIClient().post("/api/user/verify", {"token": verification_token(user)}, format="json").status_code == 200
    return user


def sign_in(email="kim@example.com", password=PASSWORD, **extra):
    return APIClient().post("/api/auth/token", {"email": email, "password": password, **extra}, format="json")


# -- every authenticated endpoint checks a scope ------------------------------------------------


def api_routes():
    """(route name, method) of every DRF endpoint the URLconf routes to."""
    found = set()

    def walk(patterns):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern) and getattr(pattern.callback, "cls", None):
                callback = pattern.callback
                methods = getattr(callback, "actions", None) or [m for m in ("get", "post", "patch", "delete") if hasattr(callback.cls, m)]
                # HEAD follows GET (DRF adds it to a viewset's actions on the first GET).
                found.update((pattern.name, method) for method in methods if method != "head")

    walk(get_resolver().url_patterns)
    return found


# What each endpoint needs, found by trying it: None = anonymous.
EXPECTED = {
    ("job-list", "post"): "job.create",
    ("job-list", "get"): "job.read",
    ("job-counts", "get"): "job.read",
    ("job-detail", "get"): "job.read",
    ("job-detail", "patch"): "job.update",
    ("job-detail", "delete"): "job.delete",
    ("job-retry", "post"): "job.update",
    ("job-promote", "post"): "job.update",
    ("account", "get"): "account.read",
    ("account", "post"): None,
    ("account-plan", "post"): "account.update",
    ("user-verify", "get"): None,
    ("user-verify", "post"): None,
    ("auth-token", "post"): None,
    ("schema", "get"): None,
    ("api-docs", "get"): None,
}
SAMPLE_PATHS = {
    "job-list": "/api/job", "job-counts": "/api/job/counts", "job-detail": "/api/job/{job}",
    "job-retry": "/api/job/{job}/retry", "job-promote": "/api/job/{job}/promote", "account": "/api/account",
    "account-plan": "/api/account/plan", "user-verify": "/api/user/verify", "auth-token": "/api/auth/token",
    "schema": "/api/schema", "api-docs": "/api/docs",
}


def test_every_api_endpoint_needs_exactly_one_scope_or_is_one_of_the_anonymous_ones(api_key):
    assert api_routes() == set(EXPECTED), "a new endpoint: add it to EXPECTED (and docs/security.md)"
    keys = {scope: bearer_client(api_key("alice", [scope])[1]) for scope in SCOPES}
    job = keys["job.create"].post("/api/job", {"name": "noop", "opts": {"delay": 60_000}}, format="json").json()["id"]
    for (view, method), needed in EXPECTED.items():
        path = SAMPLE_PATHS[view].format(job=job)
        anonymous = getattr(APIClient(), method)(path, {}, format="json").status_code
        let_through = {
            scope for scope, client in keys.items()
            if getattr(client, method)(path, {"name": "noop"} if method == "post" else {}, format="json").status_code != 403
        }
        if needed is None:
            assert anonymous not in (401, 403), (view, method, anonymous)
        else:
            assert anonymous == 401, (view, method, anonymous)
            assert let_through == {needed}, (view, method, let_through)


def test_scopes_cover_jobs_and_accounts():
    assert SCOPES == ("job.create", "job.read", "job.update", "job.delete", "account.read", "account.update")


def test_a_job_read_key_cannot_change_the_plan(api_key):
    user, key = api_key("alice", ["job.read"])
    error = error_of(bearer_client(key).post("/api/account/plan", {"plan": "pro"}, format="json"), 403, "forbidden")
    assert error["message"] == "Your API key does not have the 'account.update' scope."
    assert Account.objects.get(memberships__user=user).plan == ""
    assert not Job.objects.filter(name="onboarding.send_plan_selected_email").exists()


def test_an_account_update_key_changes_the_plan(api_key):
    user, key = api_key("alice", ["account.update"])
    response = bearer_client(key).post("/api/account/plan", {"plan": "pro"}, format="json")
    assert (response.status_code, response.json()["plan"]) == (200, "pro")


def test_reading_the_account_needs_account_read(api_key):
    user, key = api_key("alice", ["account.read"])
    body = bearer_client(key).get("/api/account").json()
    assert (body["user"]["id"], body["account"]["name"], body["scopes"]) == (user.pk, "alice", ["account.read"])
    _, jobs_only = api_key("alice", ["job.read", "job.create"])
    error_of(bearer_client(jobs_only).get("/api/account"), 403, "forbidden")
    error_of(APIClient().get("/api/account"), 401, "unauthenticated")


def test_options_is_405_everywhere(api_key):
    client = bearer_client(api_key("alice")[1])
    for path in ("/api/job", "/api/job/x", "/api/account", "/api/account/plan", "/api/auth/token", "/api/user/verify"):
        error_of(client.options(path), 405, "method_not_allowed")


# -- keys that stop working ---------------------------------------------------------------------


def test_the_key_of_an_inactive_user_is_401(api_key):
    user, key = api_key("alice")
    User.objects.filter(pk=user.pk).update(is_active=False)
    error_of(bearer_client(key).get("/api/job/x"), 401, "unauthenticated")


def test_the_key_of_a_user_removed_from_its_account_is_401(api_key, make_user):
    owner = make_user("owner")
    team = account_create(name="team", owner=owner)
    leaver = make_user("leaver")
    Membership.objects.create(user=leaver, account=team)
    _, key = api_key_create(user=leaver, account=team, scopes=SCOPES)
    client = bearer_client(key)
    created = client.post("/api/job", {"name": "noop"}, format="json")
    assert created.status_code == 201
    Membership.objects.filter(user=leaver, account=team).delete()
    error_of(client.get(created["Location"]), 401, "unauthenticated")
    error_of(client.post("/api/job", {"name": "noop"}, format="json"), 401, "unauthenticated")
    error_of(client.post("/api/account/plan", {"plan": "pro"}, format="json"), 401, "unauthenticated")
    # the user's keys for accounts they still belong to keep working
    _, personal = api_key_create(user=leaver, scopes=SCOPES)
    assert bearer_client(personal).get("/api/account").status_code == 200


# -- sign in ------------------------------------------------------------------------------------


def test_sign_up_verify_sign_in_then_jobs_and_plan_with_the_key():
    user = signed_up()
    response = sign_in()
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["key"].startswith("gj_") and body["prefix"] == body["key"][:10]
    assert (body["scopes"], body["user"]["email"], body["user"]["verified"]) == (sorted(SCOPES), "kim@example.com", True)
    client = bearer_client(body["key"])
    job = client.post("/api/job", {"name": "noop", "data": {"n": 1}}, format="json")
    assert job.status_code == 201
    assert client.get(job["Location"]).json()["data"] == {"n": 1}
    assert client.post("/api/account/plan", {"plan": "pro"}, format="json").json()["plan"] == "pro"
    assert ApiKey.objects.get(user=user).account == Account.objects.get(memberships__user=user)


def test_a_sign_in_may_ask_for_fewer_scopes():
    signed_up()
    body = sign_in(scopes=["job.read"], name="dashboard").json()
    assert (body["scopes"], body["name"]) == (["job.read"], "dashboard")
    error_of(bearer_client(body["key"]).post("/api/job", {}, format="json"), 403, "forbidden")


@pytest.mark.parametrize("extra", [{"scopes": ["job.fly"]}, {"scopes": []}, {"scopes": "job.read"}])
def test_unknown_or_empty_scopes_are_400_and_make_no_key(extra):
    signed_up()
    error_of(sign_in(**extra), 400, "invalid")
    assert ApiKey.objects.count() == 0


def test_bad_credentials_are_401_with_the_same_answer_whether_or_not_the_email_exists():
    signed_up()
    wrong_password = error_of(sign_in(password="not-the-password"), 401, "unauthenticated")
    no_such_user = error_of(sign_in(email="nobody@example.com"), 401, "unauthenticated")
    assert wrong_password == no_such_user
    assert wrong_password["message"] == "Invalid email or password."
    assert ApiKey.objects.count() == 0


def test_an_inactive_user_cannot_sign_in():
    user = signed_up()
    User.objects.filter(pk=user.pk).update(is_active=False)
    assert error_of(sign_in(), 401, "unauthenticated")["message"] == "Invalid email or password."


def test_an_unverified_user_is_told_to_verify_first():
    signed_up(verified=False)
    error = error_of(sign_in(), 403, "email_unverified")
    assert error["message"] == "Verify your email address first: follow the link we sent to kim@example.com."
    assert ApiKey.objects.count() == 0


def test_a_user_made_by_an_operator_signs_in_with_their_email(make_user):
    user = make_user("ops", email="ops@example.com")
    user.set_password(PASSWORD)
    user.save()
    assert sign_in(email="OPS@example.com").status_code == 201
    assert sign_in(email="ops").status_code == 201


# -- anonymous endpoints are throttled per client ------------------------------------------------


def test_a_sign_up_flood_is_429_with_retry_after(settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "3/hour"}
    client = APIClient()
    statuses = [
        client.post("/api/account", {"email": f"u{n}@example.com", "password": PASSWORD}, format="json").status_code
        for n in range(5)
    ]
    assert statuses == [201, 201, 201, 429, 429]
    response = client.post("/api/account", {"email": "late@example.com", "password": PASSWORD}, format="json")
    error = error_of(response, 429, "rate_limited")
    assert 0 < int(response["Retry-After"]) <= 3600 and error["details"]["retryAfter"] > 0
    assert (User.objects.count(), len(Job.objects.filter(name="onboarding.send_verification_email"))) == (3, 3)


def test_the_default_rates_stop_a_script():
    client = APIClient()
    statuses = [
        client.post("/api/account", {"email": f"s{n}@example.com", "password": PASSWORD}, format="json").status_code
        for n in range(12)
    ]
    assert statuses == [201] * 10 + [429] * 2


@pytest.mark.parametrize(("path", "scope"), [("/api/auth/token", "signin"), ("/api/user/verify", "verify")])
def test_sign_in_and_verify_are_throttled_too(settings, path, scope):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, scope: "2/hour"}
    client = APIClient()
    body = {"email": "x@example.com", "password": "y"} if scope == "signin" else {"token": "forged"}
    assert [client.post(path, body, format="json").status_code for _ in range(3)][-1] == 429


def test_clients_are_told_apart_by_the_address_the_trusted_proxy_saw(settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "1/hour"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    client = APIClient()

    def from_address(address, n):
        body = {"email": f"p{n}@example.com", "password": PASSWORD}
        return client.post("/api/account", body, format="json", HTTP_X_FORWARDED_FOR=f"6.6.6.6, {address}").status_code

    assert [from_address("10.0.0.1", 1), from_address("10.0.0.1", 2), from_address("10.0.0.2", 3)] == [201, 429, 201]


def test_x_forwarded_for_is_ignored_without_trusted_proxies(settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "1/hour"}
    client = APIClient()
    statuses = [
        client.post("/api/account", {"email": f"q{n}@example.com", "password": PASSWORD}, format="json",
                    HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code
        for n in range(2)
    ]
    assert statuses == [201, 429]


# -- bad strings in account requests ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/account", '{"email": "a\\u0000@example.com", "password": "a-long-pass-phrase-42"}'),
        ("/api/account", '{"email": "a@example.com", "password": "a-long-pass\\ud800-42"}'),
        ("/api/account", '{"email": "a@example.com", "password": "a-long-pass-phrase-42", "name": "\\udc00"}'),
        ("/api/auth/token", '{"email": "kim@example.com", "password": "\\u0000"}'),
        ("/api/user/verify", '{"token": "\\ud800"}'),
    ],
)
def test_nul_and_surrogates_in_account_requests_are_400_and_change_nothing(path, body):
    response = APIClient().generic("POST", path, body, content_type="application/json")
    assert "text may not contain NUL characters or lone surrogates" in error_of(response, 400, "invalid")["message"]
    assert (User.objects.count(), ApiKey.objects.count()) == (0, 0)


@pytest.mark.parametrize("token", ["%00", "%ED%A0%80", "x%00y"])
def test_bad_bytes_in_the_verification_link_are_400(token):
    response = APIClient().get(f"/api/user/verify?token={token}")
    error_of(response, 400, "invalid")


# -- the links in the emails lead somewhere that answers -------------------------------------


def test_the_verification_link_shows_a_page_to_a_browser_and_json_to_a_client(django_capture_on_commit_callbacks):
    user = signed_up(verified=False)
    link = f"/api/user/verify?token={verification_token(user)}"
    browser = APIClient().get(link, HTTP_ACCEPT="text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")
    assert (browser.status_code, browser["Content-Type"]) == (200, "text/html; charset=utf-8")
    page = browser.content.decode()
    assert "Email address verified" in page and 'href="http://127.0.0.1:8000/signin"' in page
    again = APIClient().get(link, HTTP_ACCEPT="*/*")
    assert again.json() == {"verified": True, "email": "kim@example.com", "alreadyVerified": True}


def test_a_bad_link_in_a_browser_is_an_html_page_with_the_reason():
    response = APIClient().get("/api/user/verify?token=forged", HTTP_ACCEPT="text/html")
    assert (response.status_code, response["Content-Type"]) == (400, "text/html; charset=utf-8")
    assert "The verification link is invalid or has expired." in response.content.decode()


def test_the_email_links_use_the_configured_client_urls(settings, make_user):
    from onboarding.emails import send_once
    from onboarding.models import Purpose

    settings.APP_SIGNIN_URL = "https://app.example.com/login"
    settings.APP_PLANS_URL = "https://app.example.com/billing"
    user = make_user("lin", email="lin@example.com")
    account = Account.objects.get(memberships__user=user)
    account.trial_ends_on = account.created_at.date()
    send_once(user=user, purpose=Purpose.WELCOME)
    send_once(user=user, purpose=Purpose.TRIAL_ENDING, context={"account": account})
    welcome, ending = mail.outbox
    assert "https://app.example.com/login" in welcome.body and 'href="https://app.example.com/login"' in welcome.alternatives[0][0]
    assert "https://app.example.com/billing" in ending.body and 'href="https://app.example.com/billing"' in ending.alternatives[0][0]


def test_the_default_link_targets_answer(client):
    assert client.get("/signin").status_code == 200
    assert client.get("/account")["Location"] == "/signin?next=/account"
    assert client.get("/")["Location"] == "/account"


# -- the pages ---------------------------------------------------------------------------------


def test_the_pages_sign_in_choose_a_plan_make_a_key_and_sign_out(client):
    user = signed_up()
    assert client.post("/signin", {"email": "kim@example.com", "password": "wrong"}).status_code == 401
    response = client.post("/signin", {"email": "kim@example.com", "password": PASSWORD, "next": "/account"})
    assert (response.status_code, response["Location"]) == (302, "/account")
    chosen = client.post("/account", {"action": "plan", "plan": "business"}, follow=True)
    assert "You chose the business plan." in chosen.content.decode()
    assert Account.objects.get(memberships__user=user).plan == "business"
    assert client.post("/account", {"action": "plan", "plan": "gold"}).status_code == 400
    page = client.post("/account", {"action": "key"}).content.decode()
    key = page.split('<pre id="new-key">')[1].split("</pre>")[0]
    assert bearer_client(key).get("/api/account").json()["user"]["id"] == user.pk
    assert client.post("/signout").status_code == 302
    assert client.get("/account").status_code == 302


def test_sign_in_never_redirects_off_site(client):
    signed_up()
    response = client.post("/signin", {"email": "kim@example.com", "password": PASSWORD, "next": "https://evil.example/x"})
    assert response["Location"] == "/account"


def test_the_sign_in_page_is_throttled_with_the_api(client, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signin": "2/hour"}
    statuses = [client.post("/signin", {"email": "kim@example.com", "password": "x"}).status_code for _ in range(2)]
    statuses.append(sign_in(password="x").status_code)
    assert statuses == [401, 401, 429]


def test_an_unverified_user_is_told_on_the_page(client):
    signed_up(verified=False)
    response = client.post("/signin", {"email": "kim@example.com", "password": PASSWORD})
    assert response.status_code == 403 and "Verify your email address first" in response.content.decode()
    assert EmailVerification.objects.get().verified_at is None
