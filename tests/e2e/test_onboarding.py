"""Onboarding end to end: the API starts email jobs, a real worker sends them, the test reads what was sent."""

import json
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from .stack import wait_until
from .test_faults import report, runs_of


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
    anon = {"key": None, "client": "192.0.2.21"}  # an address of its own for the per-address limits
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


class FakeMailServer(socketserver.ThreadingTCPServer):
    """A mail server on a free loopback port that accepts connections and never answers, until told to answer.

    Then it speaks just enough SMTP to take messages. It records when a silent connection came and
    when the client gave up on it, and every message it took.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), SmtpHandler)
        self.port = self.server_address[1]
        self.answering = threading.Event()
        self.silent: list[dict] = []
        self.messages: list[tuple[list[str], str]] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class SmtpHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server = self.server
        if not server.answering.is_set():
            seen = {"connected": time.time(), "gave_up": None}
            server.silent.append(seen)
            while self.request.recv(1024):  # never a word back; the client times out and closes
                pass
            seen["gave_up"] = time.time()
            return
        self.say("220 fake ESMTP")
        recipients: list[str] = []
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.say("250 fake")
            elif verb == b"MAIL":
                recipients = []
                self.say("250 OK")
            elif verb == b"RCPT":
                recipients.append(line.decode().split(":", 1)[1].strip().strip("<>"))
                self.say("250 OK")
            elif verb == b"DATA":
                self.say("354 go ahead")
                body = b"".join(iter(self.rfile.readline, b".\r\n"))
                server.messages.append((recipients, body.decode(errors="replace")))
                self.say("250 OK queued")
            elif verb == b"QUIT":
                self.say("221 bye")
                return
            else:
                self.say("250 OK")

    def say(self, reply: str) -> None:
        self.wfile.write(reply.encode() + b"\r\n")


@pytest.fixture
def mail_server():
    server = FakeMailServer()
    yield server
    server.stop()


EMAIL_TIMEOUT = 20
SHOW_EMAIL_JOB = """
import json
from jobs.models import Job
from onboarding.models import SentEmail
job = next(j for j in Job.objects.filter(name="onboarding.send_verification_email") if j.data["args"] == [{user_id}])
outbox = list(SentEmail.objects.filter(user_id={user_id}).values_list("state", flat=True))
print(json.dumps({{"state": job.state, "attemptsMade": job.attempts_made, "failedReason": job.failed_reason, "outbox": outbox}}))
"""


@pytest.mark.slow
def test_a_mail_server_that_never_answers_holds_no_lock_and_the_email_goes_once_it_answers(
    stack, workers, mail_server, tmp_path
):
    # A worker of its own whose emails go to the silent server; the stack's worker is stopped meanwhile.
    workers("mailer", 2, env={"EMAIL_URL": f"smtp://127.0.0.1:{mail_server.port}", "EMAIL_TIMEOUT": str(EMAIL_TIMEOUT)})

    def email_job() -> dict:
        return json.loads(stack.manage("shell", "-c", SHOW_EMAIL_JOB.format(user_id=user_id)).strip().splitlines()[-1])

    signup = stack.request("POST", "/api/account", key=None, client="192.0.2.22",
                           json={"email": "mo@example.com", "password": "a-long-pass-phrase-42"})
    assert signup.status_code == 201, signup.text
    user_id = signup.json()["user"]["id"]
    wait_until(lambda: mail_server.silent, 30, "the worker to connect to the mail server", stack)

    # While one worker process waits on the mail server, the API takes jobs and the other process runs them.
    marker = tmp_path / "runs.txt"

    def timed_add(_):
        started = time.monotonic()
        job_id = stack.add("records", {"path": str(marker)})["id"]
        return job_id, time.monotonic() - started

    with ThreadPoolExecutor(4) as pool:
        added = list(pool.map(timed_add, range(20)))
    ids = [job_id for job_id, _ in added]
    slowest = max(seconds for _, seconds in added)
    done = [stack.wait_for(job_id, timeout=EMAIL_TIMEOUT) for job_id in ids]
    assert [job["state"] for job in done] == ["completed"] * 20
    assert slowest < 5, f"a POST took {slowest:.1f} s while the mail server hung"
    assert mail_server.silent[0]["gave_up"] is None, "all that happened while the send was still hanging"

    # EMAIL_TIMEOUT ends the send: the attempt fails, the reservation is released, the job will retry.
    wait_until(lambda: mail_server.silent[0]["gave_up"] is not None, EMAIL_TIMEOUT + 30, "the send to time out", stack)
    assert mail_server.silent[0]["gave_up"] - mail_server.silent[0]["connected"] == pytest.approx(EMAIL_TIMEOUT, abs=5)
    failed = {}
    wait_until(lambda: failed.update(email_job()) or failed["attemptsMade"] == 1, 30, "the failed attempt to be recorded", stack)
    assert (failed["state"], failed["outbox"]) == ("delayed", [])
    assert "timed out" in failed["failedReason"]

    # The mail server answers again: the retry (30 s later) sends, once.
    mail_server.answering.set()
    sent = {}
    wait_until(lambda: sent.update(email_job()) or sent["state"] == "completed", 90, "the retry to send", stack, interval=2)
    assert sent == {"state": "completed", "attemptsMade": 1, "failedReason": failed["failedReason"], "outbox": ["sent"]}
    assert [recipients for recipients, _ in mail_server.messages] == [["mo@example.com"]]
    assert "Subject: Verify your email address" in mail_server.messages[0][1]

    runs = runs_of(marker)
    delivered = len(mail_server.messages)
    report(f"Mail server accepts and never answers (EMAIL_TIMEOUT {EMAIL_TIMEOUT} s) during a sign-up's email and 20 POSTs;"
           f" slowest POST {slowest:.2f} s", 21, len(done) + min(delivered, 1), 21 - len(runs) - min(delivered, 1),
           sum(n > 1 for n in runs.values()) + max(delivered - 1, 0),
           "./dev test tests/e2e/test_onboarding.py -k never_answers")
