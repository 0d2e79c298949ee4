"""Fuzz the whole API from its own OpenAPI schema (schemathesis): no input may produce a 5xx."""

import json

import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance


def generated_schema() -> dict:
    """The schema the app serves at /api/schema, generated here so pytest can parametrize on it."""
    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))


schema = schemathesis.openapi.from_dict(generated_schema())


def test_the_served_schema_is_the_one_fuzzed(stack):
    response = stack.http.get(f"{stack.base_url}/api/schema", headers={"Accept": "application/vnd.oai.openapi+json"}, timeout=10)
    assert response.status_code == 200
    assert response.json() == generated_schema()


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_produces_a_server_error(case, stack):
    if case.method == "POST" and case.path == "/api/job/" and isinstance(case.body, dict) and isinstance(case.body.get("opts", {}), dict):
        # Fuzz the API, not the job functions: whatever is accepted waits a day and never runs here.
        case.body = {**case.body, "opts": {**case.body.get("opts", {}), "delay": 86_400_000}}
    response = case.call(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.keys['alice']}"}, timeout=30)
    case.validate_response(
        response,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
    )


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
