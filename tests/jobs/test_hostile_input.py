"""Hostile and broken input: every answer is the JSON error shape with the right status, nothing changes."""

import json

import pytest
from django.db import OperationalError

from jobs import selectors
from jobs.models import Job
from jobs.parsers import json_depth
from tests.clients import bearer_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(api_key):
    _, key = api_key("alice")
    return bearer_client(key)


def error_of(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()["error"]


def raw_post(client, body: str, content_type="application/json"):
    return client.generic("POST", "/api/job", body, content_type=content_type)


def test_an_oversized_body_is_413(alice, settings):
    settings.JOBS = {**settings.JOBS, "MAX_BODY_BYTES": 1000}
    body = json.dumps({"name": "noop", "data": {"blob": "x" * 2000}})
    error = error_of(raw_post(alice, body), 413)
    assert (error["code"], error["message"]) == ("too_large", "The request body is over the limit of 1000 bytes.")
    assert Job.objects.count() == 0


def test_a_body_just_under_the_limit_is_accepted(alice, settings):
    settings.JOBS = {**settings.JOBS, "MAX_BODY_BYTES": 1000}
    body = json.dumps({"name": "noop", "data": {"blob": "x" * 900}})
    assert raw_post(alice, body).status_code == 201


@pytest.mark.parametrize("depth", [40, 100_000])
def test_json_nested_too_deep_is_400(alice, depth):
    body = '{"name": "noop", "data": {"a": ' + "[" * depth + "]" * depth + "}}"
    error = error_of(raw_post(alice, body), 400)
    assert (error["code"], error["message"]) == ("too_deep", "The JSON body is nested deeper than 32 levels.")
    assert Job.objects.count() == 0


@pytest.mark.parametrize("body", ['{"data": {"x": NaN}}', '{"data": {"x": Infinity}}', '{"name": "noop"', "\xff\xfe", ""])
def test_what_is_not_json_is_400(alice, body):
    response = raw_post(alice, body)
    if body == "":
        assert response.status_code == 201  # an empty body is an empty job, like curl -X POST
        return
    assert error_of(response, 400)["code"] == "malformed_json"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=x"])
def test_a_wrong_content_type_is_415(alice, content_type):
    assert error_of(raw_post(alice, "{}", content_type), 415)["code"] == "unsupported_media_type"


def test_patch_nested_too_deep_is_400_and_keeps_the_data(alice):
    job_id = alice.post("/api/job", {"name": "noop", "data": {"a": 1}}, format="json").json()["id"]
    body = "{" + '"a": {' * 40 + "}" * 40 + "}"
    error_of(alice.generic("PATCH", f"/api/job/{job_id}", body, content_type="application/json"), 400)
    assert Job.objects.get(pk=job_id).data == {"a": 1}


def test_json_depth_counts_containers_only():
    assert [json_depth(v) for v in (1, [], {"a": 1}, {"a": [1, {"b": []}]})] == [0, 1, 1, 4]


def test_a_key_over_its_rate_gets_429_with_retry_after(api_key):
    from accounts.models import ApiKey

    _, key = api_key("alice")
    ApiKey.objects.update(rate_limit="3/minute")
    client = bearer_client(key)
    statuses = [client.get("/api/job/missing").status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    response = client.get("/api/job/missing")
    error = error_of(response, 429)
    assert error["code"] == "rate_limited" and 0 < int(response["Retry-After"]) <= 60


def test_rate_limits_are_per_key(api_key, settings):
    settings.JOBS = {**settings.JOBS, "RATE_LIMIT": "2/minute"}
    clients = []
    for name in ("alice", "bob"):
        _, key = api_key(name)
        clients.append(bearer_client(key))
    assert [clients[0].get("/api/job/x").status_code for _ in range(3)] == [404, 404, 429]
    assert clients[1].get("/api/job/x").status_code == 404


def test_the_rate_limit_lets_requests_through_when_its_store_is_down(alice, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.2}}}
    settings.JOBS = {**settings.JOBS, "RATE_LIMIT": "1/minute"}
    assert [alice.get("/api/job/x").status_code for _ in range(3)] == [404, 404, 404]


def test_the_database_down_is_503(alice, monkeypatch):
    def down(**kwargs):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(selectors, "job_get", down)
    response = alice.get("/api/job/x")
    error = error_of(response, 503)
    assert (error["code"], response["Retry-After"]) == ("unavailable", "5")
    assert "Connection refused" not in response.content.decode()


def test_the_database_down_during_authentication_is_503(api_key, monkeypatch):
    from accounts import services

    _, key = api_key("alice")

    def down(clear):
        raise OperationalError("database is locked")

    monkeypatch.setattr(services, "api_key_authenticate", down)
    client = bearer_client(key)
    assert error_of(client.get("/api/job/x"), 503)["code"] == "unavailable"


def test_the_schema_describes_the_api(client):
    response = client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {
        "/api/job/", "/api/job/{id}/", "/api/job/counts/", "/api/job/{id}/retry/", "/api/job/{id}/promote/",
        "/api/account/", "/api/account/plan/", "/api/user/verify/", "/api/auth/token/"
    }
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer", "description": "An API key from `manage.py create_api_key`."
    }
