"""Two tenants on one installation, against the real stack: nothing one sends reaches the other or the system."""

import json
import time
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

PASSWORD = "a-long-pass-phrase-42"


def client_address():
    """An address of its own, so this test's anonymous requests have limits of their own."""
    return f"198.51.100.{uuid.uuid4().int % 250 + 1}"


def test_two_accounts_run_jobs_with_the_same_id_and_each_reads_its_own(stack):
    job_id = f"report-{uuid.uuid4().hex[:6]}"
    ours = stack.add("noop", {"who": "alice"}, {"jobId": job_id}, key="alice")
    theirs = stack.add("noop", {"who": "bob"}, {"jobId": job_id}, key="bob")
    assert ours["id"] == theirs["id"] == job_id
    done = stack.wait_for(job_id)
    assert done["returnvalue"] == {"data": {"who": "alice"}}
    bob_done = stack.request("GET", f"/api/job/{job_id}", key="bob").json()
    deadline = time.monotonic() + 30
    while bob_done["finishedOn"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
        bob_done = stack.request("GET", f"/api/job/{job_id}", key="bob").json()
    assert bob_done["returnvalue"] == {"data": {"who": "bob"}}
    again = stack.request("POST", "/api/job", key="bob", json={"name": "noop", "opts": {"jobId": job_id}})
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_exists"


def test_a_tenant_cannot_start_the_daily_flow_or_take_its_id(stack):
    day = datetime.now(ZoneInfo("Europe/London")).date().isoformat()
    before = len(stack.mailbox())
    refused = stack.request("POST", "/api/job", key="bob", json={"name": "onboarding.daily_flow", "data": {"date": day}})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "unknown_name"
    assert not [name for name in error["details"]["knownNames"] if name.startswith("onboarding.")]
    # bob's own job with the system's id lives in bob's namespace only
    taken = stack.request("POST", "/api/job", key="bob", json={"name": "noop", "opts": {"jobId": f"onboarding-daily-{day}"}})
    assert taken.status_code == 201
    started = stack.manage("shell", "-c", "from onboarding.tasks import start_daily_flow; print(start_daily_flow())").strip()
    assert started not in ("", "None"), "the system's flow job was blocked by a tenant's id"
    for name in ("onboarding.send_welcome_email", "tests.jobfunctions.add"):
        response = stack.request("POST", "/api/job", key="bob", json={"name": name, "data": {"args": [1]}})
        assert response.status_code == 400
    time.sleep(2)  # the worker is idle: anything the refused requests had started would have sent by now
    assert len(stack.mailbox()) == before


def test_a_job_read_key_cannot_change_the_plan(stack):
    response = stack.request("POST", "/api/account/plan", key="alice-read-only", json={"plan": "pro"})
    assert response.status_code == 403
    assert response.json()["error"]["message"] == "Your API key does not have the 'account.update' scope."
    assert stack.request("GET", "/api/account", key="alice").json()["account"]["plan"] is None


def test_keys_of_an_inactive_or_removed_member_are_401(stack):
    name = f"leaver{uuid.uuid4().hex[:6]}"
    stack.manage("create_user", name)
    stack.keys[name] = stack.manage("create_api_key", name).strip()
    assert stack.request("POST", "/api/job", key=name, json={"name": "noop"}).status_code == 201
    stack.manage("shell", "-c", f"from accounts.models import Membership; Membership.objects.filter(user__username={name!r}).delete()")
    response = stack.request("GET", "/api/account", key=name)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthenticated")

    other = f"inactive{uuid.uuid4().hex[:6]}"
    stack.manage("create_user", other)
    stack.keys[other] = stack.manage("create_api_key", other).strip()
    assert stack.request("GET", "/api/account", key=other).status_code == 200
    stack.manage("shell", "-c", f"from django.contrib.auth.models import User; User.objects.filter(username={other!r}).update(is_active=False)")
    assert stack.request("GET", "/api/account", key=other).status_code == 401


def test_a_sign_up_flood_from_one_client_is_429_whichever_web_process_answers(stack):
    client = client_address()
    statuses = []
    for n in range(12):
        body = {"email": f"flood{n}-{uuid.uuid4().hex[:6]}@example.com", "password": PASSWORD}
        statuses.append(stack.request("POST", "/api/account", key=None, client=client, json=body))
    assert [r.status_code for r in statuses] == [201] * 10 + [429] * 2
    assert int(statuses[-1].headers["Retry-After"]) > 0
    assert statuses[-1].json()["error"]["code"] == "rate_limited"
    # another client is not limited by this one
    other = stack.request("POST", "/api/account", key=None, client=client_address(),
                          json={"email": f"calm-{uuid.uuid4().hex[:6]}@example.com", "password": PASSWORD})
    assert other.status_code == 201


@pytest.mark.parametrize(
    ("method", "body"),
    [
        ("POST", '{"name": "noop", "data": {"note": "a\\u0000b"}}'),
        ("POST", '{"name": "noop", "data": {"note": "\\ud800"}}'),
        ("POST", '{"name": "noop", "opts": {"jobId": "\\u0000"}}'),
        ("PATCH", '{"note": "\\u0000"}'),
        ("PATCH", '{"\\udfff": 1}'),
    ],
)
def test_nul_and_lone_surrogates_are_400_and_leave_jobs_readable(stack, method, body):
    job = stack.add("noop", {"a": 1}, {"delay": 60_000})
    path = "/api/job" if method == "POST" else f"/api/job/{job['id']}"
    response = stack.request(method, path, data=body.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["message"].endswith("text may not contain NUL characters or lone surrogates.")
    assert stack.get(job["id"])["data"] == {"a": 1}
    assert stack.request("DELETE", f"/api/job/{job['id']}").status_code == 204


def test_a_chunked_body_is_read_in_full(stack):
    body = json.dumps({"name": "noop", "data": {"sent": "in chunks", "n": list(range(50))}}).encode()
    chunks = (body[i:i + 16] for i in range(0, len(body), 16))  # a generator: requests sends it chunked
    response = stack.request("POST", "/api/job", data=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    done = stack.wait_for(response.json()["id"])
    assert done["returnvalue"] == {"data": {"sent": "in chunks", "n": list(range(50))}}
    patch = stack.request("PATCH", f"/api/job/{done['id']}", data=iter([b'{"more"', b': true}']), headers={"Content-Type": "application/json"})
    assert patch.json()["data"]["more"] is True


def test_a_chunked_body_over_the_limit_is_413(stack):
    chunks = (b'{"data": {"blob": "' + b"x" * (1024 * 1024) + b'"}}' for _ in range(1))
    response = stack.request("POST", "/api/job", data=chunks, headers={"Content-Type": "application/json"})
    assert (response.status_code, response.json()["error"]["code"]) == (413, "too_large")
