"""Fuzz the whole API against the live stack: no input may produce a 5xx, nothing is stored from a refused request.

The suite's run is reproducible (a fixed seed); `./dev fuzz` runs a longer campaign with a new
seed each time (FUZZ_SEED=random) and prints how to replay a failure.
"""

import itertools
import json
import time

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from tests.seeding import EXAMPLES, seeded

@pytest.fixture(scope="module", autouse=True)
def fuzzing_started() -> float:
    return time.time()


fuzz_settings = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def a_day_later(job):
    """The job spec with its delay set to a day, where it has the shape of one (`opts` null means none).

    A POST without a body adds a job with no options (tests/jobs/test_hostile_input.py covers it):
    here it gets a body holding only the delay, or it would run while the tests after this one wait.
    """
    if job is NOT_SET:
        return {"opts": {"delay": 86_400_000}}
    if isinstance(job, dict) and isinstance(job.get("opts") or {}, dict):
        return {**job, "opts": {**(job.get("opts") or {}), "delay": 86_400_000}}
    return job


def generated_schema() -> dict:
    """The schema the app serves at /api/schema, generated here so pytest can parametrize on it."""
    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))


schema = schemathesis.openapi.from_dict(generated_schema())
addresses = itertools.count(1)
LONGEST_REQUEST_LINE = 8190


def test_the_served_schema_is_the_one_fuzzed(stack):
    response = stack.http.get(f"{stack.base_url}/api/schema", headers={"Accept": "application/vnd.oai.openapi+json"}, timeout=10)
    assert response.status_code == 200
    assert response.json() == generated_schema()


@schema.parametrize()
@seeded
@fuzz_settings
def test_no_input_produces_a_server_error(case, stack):
    if case.method == "POST" and case.path == "/api/job/":
        # Fuzz the API, not the job functions: whatever is accepted waits a day and never runs here
        # (a list adds up to a thousand jobs at once; left to run they would keep the worker busy
        # for the tests after this one).
        case.body = [a_day_later(job) for job in case.body] if isinstance(case.body, list) else a_day_later(case.body)
    # The anonymous endpoints' per-address limits would soon answer only 429: give each case an address.
    n = next(addresses)
    headers = {"Authorization": f"Bearer {stack.keys['alice']}", "X-Forwarded-For": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"}
    response = case.call(base_url=stack.base_url, headers=headers, timeout=30)
    if response.status_code == 414 and len(response.request.url) > LONGEST_REQUEST_LINE:
        return  # gunicorn's own answer to a request line over its limit (gunicorn.conf.py), before the app
    case.validate_response(
        response,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )


# Text as hostile clients send it: any code point, lone surrogates and NUL included, escaped in JSON.
hostile_text = st.text(st.characters(codec=None, categories=None), max_size=12) | st.sampled_from(["\x00", "\ud800", "a\udfffb", "\ud83d\ude00"])
hostile_json = st.recursive(
    st.none() | st.booleans() | st.integers() | hostile_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=12,
)


def unstorable(value) -> bool:
    """Whether any string in `value`, key or value, holds NUL or a lone surrogate (worked out independently of the app)."""
    if isinstance(value, str):
        return any(char == "\x00" or 0xD800 <= ord(char) <= 0xDFFF for char in value)
    if isinstance(value, dict):
        return any(unstorable(key) or unstorable(item) for key, item in value.items())
    if isinstance(value, list):
        return any(unstorable(item) for item in value)
    return False


def send_json(stack, method, path, body):
    # json.dumps escapes every non-ASCII character, so lone surrogates travel as \udXXX escapes, as hostile clients send them.
    return stack.request(method, path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


@seeded
@fuzz_settings
@given(data=hostile_json, patch=hostile_json, key=hostile_text)
def test_any_text_in_a_job_is_stored_as_sent_or_refused_with_a_400(stack, data, patch, key):
    # What the server reads: a high and a low surrogate side by side arrive as one character.
    data, patch, key = json.loads(json.dumps([data, patch, key]))
    created = send_json(stack, "POST", "/api/job", {"name": "noop", "data": {"v": data, key: 1}, "opts": {"delay": 86_400_000}})
    if unstorable({"v": data, key: 1}):
        assert created.status_code == 400 and created.json()["error"]["code"] == "invalid", created.text
        return
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    assert stack.get(job_id)["data"] == {"v": data, key: 1}
    patched = send_json(stack, "PATCH", f"/api/job/{job_id}", {"p": patch})
    assert patched.status_code == (400 if unstorable(patch) else 200), patched.text
    expected = {"v": data, key: 1, **({} if unstorable(patch) else {"p": patch})}
    assert stack.get(job_id)["data"] == expected
    assert stack.request("DELETE", f"/api/job/{job_id}").status_code == 204


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(stack):
    key = stack.manage("create_api_key", "alice", "--scopes", "job.read", "--rate-limit", "5/minute").strip()
    statuses = [
        stack.http.get(f"{stack.base_url}/api/job/nope", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        for _ in range(7)
    ]
    # the counters live in Redis, so both gunicorn processes share them
    assert [r.status_code for r in statuses] == [404] * 5 + [429] * 2
    assert int(statuses[-1].headers["Retry-After"]) > 0
    assert statuses[-1].json()["error"]["code"] == "rate_limited"


def test_the_fuzzing_left_the_workers_nothing_to_run(stack, fuzzing_started):
    """Every job the fuzzing added waits a day: the tests after it find idle workers."""
    code = (
        "import datetime; from jobs.models import Job; "
        f"since = datetime.datetime.fromtimestamp({fuzzing_started}, datetime.UTC); "
        "print(Job.objects.filter(state__in=['waiting', 'active'], created_at__gte=since).count())"
    )
    assert stack.manage("shell", "-c", code).strip().splitlines()[-1] == "0"
