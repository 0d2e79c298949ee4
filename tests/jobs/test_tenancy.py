"""Tenants on one installation: job ids per account, internal job functions, no system ids, unstorable text."""

import io
import json

import pytest
from django.test import RequestFactory

import jobs
from jobs import registry, services
from jobs.errors import InvalidJob, JobExists
from jobs.middleware import ChunkedBodyMiddleware
from jobs.models import Job
from jobs.runner import job_execute
from tests.clients import bearer_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(api_key):
    return bearer_client(api_key("alice")[1])


@pytest.fixture
def bob(api_key):
    return bearer_client(api_key("bob")[1])


def post(client, body):
    return client.post("/api/job", body, format="json")


def error_of(response, status, code):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    return error


# -- job ids belong to an owner ----------------------------------------------------------------


def test_two_accounts_may_use_the_same_job_id_and_each_sees_its_own(alice, bob):
    a = post(alice, {"name": "noop", "data": {"who": "alice"}, "opts": {"jobId": "report-7"}})
    b = post(bob, {"name": "noop", "data": {"who": "bob"}, "opts": {"jobId": "report-7"}})
    assert (a.status_code, b.status_code) == (201, 201), (a.content, b.content)
    assert a.json()["id"] == b.json()["id"] == "report-7"
    assert b["Location"] == "/api/job/report-7"
    assert alice.get("/api/job/report-7").json()["data"] == {"who": "alice"}
    assert bob.get("/api/job/report-7").json()["data"] == {"who": "bob"}
    assert bob.patch("/api/job/report-7", {"by": "bob"}, format="json").json()["data"] == {"who": "bob", "by": "bob"}
    assert bob.delete("/api/job/report-7").status_code == 204
    assert alice.get("/api/job/report-7").json()["data"] == {"who": "alice"}
    # two rows, two internal ids: the broker never confuses them
    assert Job.objects.filter(public_id="report-7").count() == 1


def test_job_exists_answers_only_within_one_account(alice, bob):
    post(alice, {"name": "noop", "opts": {"jobId": "nightly"}})
    error = error_of(post(alice, {"name": "noop", "opts": {"jobId": "nightly"}}), 409, "job_exists")
    assert error["message"] == "A job with id 'nightly' already exists."
    assert post(bob, {"name": "noop", "opts": {"jobId": "nightly"}}).status_code == 201


def test_the_ids_the_system_uses_are_out_of_a_tenants_reach(alice):
    system = jobs.Queue().add({"date": "2026-12-13"}, name="noop", job_id="onboarding-daily-2026-12-13")
    error_of(alice.get("/api/job/onboarding-daily-2026-12-13"), 404, "not_found")
    error_of(alice.get(f"/api/job/{system._record.pk}"), 404, "not_found")
    error_of(alice.delete("/api/job/onboarding-daily-2026-12-13"), 404, "not_found")
    # the tenant's own job of that id is its own: the system's job is untouched and still found
    created = post(alice, {"name": "noop", "opts": {"jobId": "onboarding-daily-2026-12-13"}})
    assert created.status_code == 201
    found = jobs.Queue().get_job("onboarding-daily-2026-12-13")
    assert (found.owner, found.data) == ("", {"date": "2026-12-13"})
    with pytest.raises(JobExists):
        jobs.Queue().add(name="noop", job_id="onboarding-daily-2026-12-13")


def test_python_code_acts_for_an_account_with_owner():
    queue = jobs.Queue()
    mine = queue.add({"n": 1}, name="noop", job_id="r-1", owner="account:7")
    assert queue.get_job("r-1") is None
    assert queue.get_job("r-1", owner="account:8") is None
    found = queue.get_job("r-1", owner="account:7")
    assert (found.id, found.owner, found.data) == ("r-1", "account:7", {"n": 1})
    found.update({"n": 2})
    assert mine.reload().data == {"n": 2}
    mine.remove()
    assert queue.get_job("r-1", owner="account:7") is None


def test_a_resolver_that_names_no_account_is_refused(alice, settings):
    settings.JOBS = {**settings.JOBS, "OWNER_RESOLVER": "tests.jobs.test_tenancy.no_owner"}
    error = error_of(post(alice, {"name": "noop"}), 403, "forbidden")
    assert error["message"] == "These credentials act for no account."
    assert Job.objects.count() == 0


def no_owner(request):
    return ""


# -- job functions are internal unless declared public ----------------------------------------


@pytest.mark.parametrize("name", ["internal_report", "onboarding.daily_flow", "onboarding.send_welcome_email", "tests.jobfunctions.add"])
def test_internal_job_functions_answer_as_if_they_did_not_exist(alice, name):
    internal = error_of(post(alice, {"name": name, "data": {"date": "2026-12-13"}}), 400, "unknown_name")
    unknown = error_of(post(alice, {"name": "no-such-name"}), 400, "unknown_name")
    assert internal["message"] == unknown["message"].replace("'no-such-name'", repr(name))
    assert internal["details"] == unknown["details"]
    assert Job.objects.count() == 0


def test_known_names_lists_only_public_functions(alice):
    known = error_of(post(alice, {"name": "nope"}), 400, "unknown_name")["details"]["knownNames"]
    assert known == registry.names(public_only=True)
    assert {"__default__", "noop"} <= set(known)
    assert not [name for name in known if name.startswith(("onboarding.", "tests.jobfunctions.")) or name == "internal_report"]


def test_code_may_add_internal_jobs_and_they_run():
    job = jobs.Queue().add(name="internal_report")
    assert job_execute(job_id=job._record.pk, worker="w") == "completed"
    assert job.reload().return_value == {"secret": "system only"}


def test_the_schema_offers_only_public_names(client):
    schema = json.loads(client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    assert schema["components"]["schemas"]["JobCreateRequest"]["properties"]["name"]["enum"] == registry.names(public_only=True)


def test_the_default_job_function_is_public():
    assert registry.get(registry.DEFAULT_JOB_NAME, public_only=True) is not None


# -- text that cannot be stored ----------------------------------------------------------------

NUL = "a\u0000b"
SURROGATE = "a\ud800b"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"name": "noop", "data": {"note": "a\\u0000b"}}', "a NUL character (\\u0000) in data.note"),
        ('{"name": "noop", "data": {"note": "a\\ud800b"}}', "a lone surrogate (\\ud800) in data.note"),
        ('{"name": "noop", "data": {"list": [1, "\\udfff"]}}', "a lone surrogate (\\udfff) in data.list[1]"),
        ('{"name": "noop", "data": {"k\\u0000": 1}}', "a NUL character (\\u0000) in a key of data"),
        ('{"name": "no\\u0000op"}', "a NUL character (\\u0000) in name"),
        ('{"name": "noop", "opts": {"jobId": "x\\ud83d"}}', "a lone surrogate (\\ud83d) in opts.jobId"),
        ('{"\\ud800": 1}', "a lone surrogate (\\ud800) in a key of the object"),
    ],
)
def test_nul_and_lone_surrogates_anywhere_in_a_post_are_400_and_store_nothing(alice, body, message):
    error = error_of(alice.generic("POST", "/api/job", body, content_type="application/json"), 400, "invalid")
    assert error["message"] == f"The JSON body holds {message}: text may not contain NUL characters or lone surrogates."
    assert Job.objects.count() == 0


def test_a_surrogate_pair_is_text_and_is_kept(alice):
    response = alice.generic("POST", "/api/job", '{"name": "noop", "data": {"smile": "\\ud83d\\ude00"}}', content_type="application/json")
    assert response.status_code == 201
    assert alice.get(response["Location"]).json()["data"] == {"smile": "\U0001f600"}


@pytest.mark.parametrize("body", ['{"note": "\\u0000"}', '{"note": "\\udc00"}'])
def test_a_patch_with_unstorable_text_is_400_and_keeps_the_job_readable(alice, body):
    job_id = post(alice, {"name": "noop", "data": {"a": 1}}).json()["id"]
    error_of(alice.generic("PATCH", f"/api/job/{job_id}", body, content_type="application/json"), 400, "invalid")
    response = alice.get(f"/api/job/{job_id}")
    assert (response.status_code, response.json()["data"]) == (200, {"a": 1})


@pytest.mark.parametrize("value", [NUL, SURROGATE, {"k": [SURROGATE]}, {NUL: 1}])
def test_python_callers_get_invalid_job_for_unstorable_text(value):
    with pytest.raises(InvalidJob, match="text may not contain NUL characters or lone surrogates"):
        services.job_create(name="noop", data={"v": value})
    assert Job.objects.count() == 0


def test_the_message_says_what_and_where():
    with pytest.raises(InvalidJob) as caught:
        services.job_create(name="noop", data={"rows": [{"name": NUL}]})
    assert str(caught.value) == "data holds a NUL character (\\u0000) in data.rows[0].name: text may not contain NUL characters or lone surrogates."


@pytest.mark.parametrize("value", [NUL, SURROGATE])
def test_a_job_function_returning_unstorable_text_fails_the_attempt_clearly(value):
    with registered("returns_bad_text", lambda job: {"out": value}):
        job = services.job_create(name="returns_bad_text")
        assert job_execute(job_id=job.pk, worker="w") == "failed"
    job.refresh_from_db()
    assert job.state == "failed"
    assert job.failed_reason.startswith("the return value holds a ")
    assert job.failed_reason.endswith(" in the return value.out: text may not contain NUL characters or lone surrogates.")


def test_a_job_function_reporting_unstorable_progress_fails_the_attempt_clearly():
    def reports(job):
        job.progress({"step": SURROGATE})
        return "never"

    with registered("reports_bad_text", reports):
        job = services.job_create(name="reports_bad_text")
        assert job_execute(job_id=job.pk, worker="w") == "failed"
    job.refresh_from_db()
    assert (job.state, job.progress) == ("failed", 0)
    assert job.failed_reason == "progress holds a lone surrogate (\\ud800) in progress.step: text may not contain NUL characters or lone surrogates."


def test_an_exception_message_with_unstorable_text_is_kept_escaped():
    def raises(job):
        raise ValueError(f"bad byte {NUL} and {SURROGATE}")

    with registered("raises_bad_text", raises):
        job = services.job_create(name="raises_bad_text")
        assert job_execute(job_id=job.pk, worker="w") == "failed"
    job.refresh_from_db()
    assert job.failed_reason == "bad byte a\\u0000b and a\\ud800b"
    assert "\\u0000" in job.stacktrace[0] and "\x00" not in job.stacktrace[0]


# -- bodies the server did not read ------------------------------------------------------------


def chunked_request(body: bytes, *, terminated: bool):
    request = RequestFactory().generic("POST", "/api/job", body, content_type="application/json", HTTP_TRANSFER_ENCODING="chunked")
    del request.META["CONTENT_LENGTH"]
    # as gunicorn hands it over: a stream that ends where the body ends
    request.META["wsgi.input"] = io.BytesIO(body)
    request.META["wsgi.input_terminated"] = terminated
    return request


def test_a_chunked_body_is_read_in_full():
    seen = {}

    def view(request):
        seen["body"] = request.body
        return None

    request = chunked_request(b'{"name": "noop", "data": {"a": 1}}', terminated=True)
    assert ChunkedBodyMiddleware(view)(request) is None
    assert seen["body"] == b'{"name": "noop", "data": {"a": 1}}'


def test_a_chunked_body_a_server_cannot_end_is_411():
    response = ChunkedBodyMiddleware(lambda request: pytest.fail("the view must not run"))(chunked_request(b"{}", terminated=False))
    assert response.status_code == 411
    assert json.loads(response.content)["error"] == {
        "status": 411, "code": "length_required",
        "message": "This server cannot read a chunked body: send a Content-Length.", "details": {},
    }


def test_a_chunked_body_over_the_limit_is_413(settings):
    settings.JOBS = {**settings.JOBS, "MAX_BODY_BYTES": 10}
    response = ChunkedBodyMiddleware(lambda request: pytest.fail("the view must not run"))(chunked_request(b"x" * 11, terminated=True))
    assert (response.status_code, json.loads(response.content)["error"]["code"]) == (413, "too_large")


from tests.jobs.test_runner import registered  # noqa: E402
