"""Onboarding end to end: the API starts email jobs, a real worker sends them, the test reads the files."""

import time
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from .stack import wait_until


PEOPLE = {"kim@example.com", "lee@example.com"}


def mailbox(stack):
    """The messages sent to this test's people (other tests sign up people of their own)."""
    return [message for message in stack.mailbox() if message[0] in PEOPLE]


def wait_for_mail(stack, count):
    wait_until(lambda: len(mailbox(stack)) >= count, 60, f"{count} emails", stack)
    return mailbox(stack)


def run_flow_twice_at_once(stack, day):
    """Two flow jobs for one day, added together so the worker's two processes run them at the same time."""
    ids = stack.add_from_code("onboarding.daily_flow", {"date": day.isoformat()}, count=2)
    return [stack.wait_for(job_id, timeout=60) for job_id in ids]


@pytest.mark.slow
def test_signup_verify_plan_and_the_daily_flow_send_each_email_once(stack):
    london_today = datetime.now(ZoneInfo("Europe/London")).date()
    anon = {"key": None}
    bad = stack.request("POST", "/api/account", json={"email": "nope", "password": "x"}, **anon)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid"
    for email in ("kim@example.com", "lee@example.com"):
        response = stack.request("POST", "/api/account", json={"email": email, "password": "a-long-pass-phrase-42", "name": email[:3]}, **anon)
        assert response.status_code == 201, response.text
        trial_ends = date.fromisoformat(response.json()["account"]["trialEndsOn"])
    assert stack.request("POST", "/api/account", json={"email": "KIM@example.com", "password": "a-long-pass-phrase-42"}, **anon).status_code == 409

    sent = wait_for_mail(stack, 2)
    assert sorted((to, subject) for to, subject, _ in sent) == [
        ("kim@example.com", "Verify your email address"), ("lee@example.com", "Verify your email address")]
    link = next(body for to, _, body in sent if to == "lee@example.com").split("http", 1)[1].split()[0]
    path = urlsplit("http" + link)
    verified = stack.request("GET", f"{path.path}?{path.query}", **anon)
    assert verified.json() == {"verified": True, "email": "lee@example.com", "alreadyVerified": False}
    page = stack.request("GET", f"{path.path}?{path.query}", headers={"Accept": "text/html,*/*;q=0.8"}, **anon)
    assert page.headers["Content-Type"].startswith("text/html") and "is verified" in page.text
    again = stack.request("POST", "/api/user/verify", json={"token": path.query.split("=", 1)[1]}, **anon)
    assert again.json()["alreadyVerified"] is True
    assert stack.request("POST", "/api/user/verify", json={"token": "forged"}, **anon).status_code == 400
    wait_for_mail(stack, 3)

    # sign in (kim has not verified yet), then jobs and the plan with the key it gives
    unverified = stack.request("POST", "/api/auth/token", json={"email": "kim@example.com", "password": "a-long-pass-phrase-42"}, **anon)
    assert (unverified.status_code, unverified.json()["error"]["code"]) == (403, "email_unverified")
    assert stack.request("POST", "/api/auth/token", json={"email": "lee@example.com", "password": "wrong"}, **anon).status_code == 401
    signed_in = stack.request("POST", "/api/auth/token", json={"email": "lee@example.com", "password": "a-long-pass-phrase-42"}, **anon)
    assert signed_in.status_code == 201, signed_in.text
    stack.keys["lee"] = signed_in.json()["key"]
    job = stack.add("noop", {"from": "lee"}, key="lee")
    assert stack.request("GET", f"/api/job/{job['id']}", key="lee").json()["data"] == {"from": "lee"}
    assert stack.request("POST", "/api/account/plan", key="lee", json={"plan": "gold"}).status_code == 400
    chosen = stack.request("POST", "/api/account/plan", key="lee", json={"plan": "pro"})
    assert chosen.status_code == 200 and chosen.json()["plan"] == "pro"
    wait_for_mail(stack, 4)

    # The daily flow for tomorrow (kim is still unverified), in 11 days (trials end in 3) and in
    # 14 days (trials end today), each run twice at once, as if two workers ran it together.
    for day in (london_today + timedelta(days=1), trial_ends - timedelta(days=3), trial_ends):
        assert [job["state"] for job in run_flow_twice_at_once(stack, day)] == ["completed", "completed"]
    wait_for_mail(stack, 8)
    time.sleep(3)  # nothing more may arrive
    subjects = sorted((to, subject) for to, subject, _ in mailbox(stack))
    assert subjects == sorted([
        ("kim@example.com", "Verify your email address"),
        ("kim@example.com", "Reminder: please verify your email address"),
        ("kim@example.com", "Your trial ends in 3 days"),
        ("lee@example.com", "Verify your email address"),
        ("lee@example.com", "Welcome aboard"),
        ("lee@example.com", "You chose the pro plan"),
        ("lee@example.com", "Your trial ends in 3 days"),
        ("lee@example.com", "Your trial has ended: welcome to pro"),
    ])
