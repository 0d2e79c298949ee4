"""The job API over DRF's test client: shapes, status codes, ownership and scopes."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey, Membership
from accounts.services import account_for_user
from jobs import services
from jobs.models import Job
from tests.clients import bearer_client

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def client_for(api_key):
    def make(username="alice", scopes=("job.create", "job.read", "job.update", "job.delete")):
        _, key = api_key(username, scopes)
        return bearer_client(key)

    return make


@pytest.fixture
def alice(client_for):
    return client_for("alice")


def post(client, body, **kwargs):
    return client.post("/api/job", body, format="json", **kwargs)


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"status", "code", "message", "details"}
    assert (body["error"]["status"], body["error"]["code"]) == (status, code)
    return body["error"]


def test_post_creates_a_job_with_location_and_bull_json(alice):
    response = post(alice, {"name": "noop", "data": {"a": 1}, "opts": {"attempts": 2}})
    assert response.status_code == 201
    body = response.json()
    assert response["Location"] == f"/api/job/{body['id']}"
    assert (body["name"], body["data"], body["state"], body["opts"]) == ("noop", {"a": 1}, "waiting", {"attempts": 2, "delay": 0})
    assert isinstance(body["id"], str) and isinstance(body["timestamp"], int)


def test_post_with_an_empty_body_adds_a_default_job(alice):
    response = alice.post("/api/job")
    assert response.status_code == 201
    assert (response.json()["name"], response.json()["data"]) == ("__default__", {})


@pytest.mark.parametrize("path", ["/api/job", "/api/job/"])
def test_the_trailing_slash_is_optional(alice, path):
    assert alice.post(path, {}, format="json").status_code == 201


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        ({"name": "nope"}, "unknown_name", "known names: "),
        ({"name": 5}, "invalid", "not valid"),
        ({"data": [1, 2]}, "invalid", "data must be a JSON object."),
        ({"data": "x"}, "invalid", "data must be a JSON object."),
        ({"opts": {"lifo": True}}, "invalid", "Unknown option 'lifo'"),
        ({"opts": {"delay": "soon"}}, "invalid", "opts.delay must be a whole number"),
        ({"opts": []}, "invalid", "opts must be a JSON object."),
        ({"nmae": "noop"}, "invalid", "not valid"),
        ([1, 2, 3], "invalid", "not valid"),
    ],
)
def test_bad_bodies_are_400_and_create_nothing(alice, body, code, needle):
    error = assert_error(post(alice, body), 400, code)
    assert needle in error["message"]
    assert Job.objects.count() == 0


def test_unknown_name_lists_the_known_names(alice):
    error = assert_error(post(alice, {"name": "nope"}), 400, "unknown_name")
    assert {"__default__", "noop"} <= set(error["details"]["knownNames"])


def test_malformed_json_is_400(alice):
    response = alice.post("/api/job", data="{bad", content_type="application/json")
    assert_error(response, 400, "malformed_json")


def test_a_form_body_is_415(alice):
    response = alice.post("/api/job", data="a=b", content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")


def test_a_taken_job_id_is_409_and_leaves_the_job_alone(alice):
    post(alice, {"name": "noop", "data": {"v": 1}, "opts": {"jobId": "report-7"}})
    error = assert_error(post(alice, {"name": "fails", "data": {"v": 2}, "opts": {"jobId": "report-7"}}), 409, "job_exists")
    assert error["message"] == "A job with id 'report-7' already exists."
    job = Job.objects.get(public_id="report-7")
    assert (job.name, job.data) == ("noop", {"v": 1})


def test_get_returns_the_job(alice):
    job_id = post(alice, {"name": "noop"}).json()["id"]
    response = alice.get(f"/api/job/{job_id}")
    assert response.status_code == 200
    assert response.json()["id"] == job_id


@pytest.mark.parametrize("job_id", ["missing", "%20", "a.b", "..", "x" * 300])
def test_unknown_or_malformed_ids_are_404(alice, job_id):
    assert_error(alice.get(f"/api/job/{job_id}"), 404, "not_found")


def test_patch_merges_top_level_keys(alice):
    job_id = post(alice, {"name": "noop", "data": {"a": 1, "b": {"x": 1}}}).json()["id"]
    response = alice.patch(f"/api/job/{job_id}", {"b": {"y": 2}, "c": 3}, format="json")
    assert response.status_code == 200
    assert response.json()["data"] == {"a": 1, "b": {"y": 2}, "c": 3}


@pytest.mark.parametrize("body", [[1], "text", 7, None])
def test_patch_with_a_body_that_is_not_an_object_is_400_and_keeps_the_data(alice, body):
    job_id = post(alice, {"name": "noop", "data": {"a": 1}}).json()["id"]
    response = alice.patch(f"/api/job/{job_id}", data=json.dumps(body), content_type="application/json")
    assert_error(response, 400, "invalid")
    assert Job.objects.get(pk=job_id).data == {"a": 1}


def test_delete_of_a_waiting_job_is_204_and_it_is_gone(alice):
    job_id = post(alice, {"name": "noop"}).json()["id"]
    assert alice.delete(f"/api/job/{job_id}").status_code == 204
    assert_error(alice.get(f"/api/job/{job_id}"), 404, "not_found")


def test_delete_of_a_started_job_is_409_and_leaves_it(alice):
    job_id = post(alice, {"name": "noop"}).json()["id"]
    services.job_claim(job_id=job_id, worker="w")
    error = assert_error(alice.delete(f"/api/job/{job_id}"), 409, "job_started")
    assert error["message"] == f"Job {job_id!r} is active: only a waiting or delayed job can be removed."
    assert error["details"]["state"] == "active"
    assert Job.objects.get(pk=job_id).state == "active"


def test_delete_of_an_unknown_job_is_404(alice):
    assert_error(alice.delete("/api/job/missing"), 404, "not_found")


def test_another_accounts_job_is_404_for_every_method(alice, client_for):
    job_id = post(alice, {"name": "noop", "data": {"a": 1}}).json()["id"]
    bob = client_for("bob")
    assert_error(bob.get(f"/api/job/{job_id}"), 404, "not_found")
    assert_error(bob.patch(f"/api/job/{job_id}", {"a": 2}, format="json"), 404, "not_found")
    assert_error(bob.delete(f"/api/job/{job_id}"), 404, "not_found")
    job = Job.objects.get(pk=job_id)
    assert job.data == {"a": 1}


def test_members_of_the_same_account_share_jobs(alice, make_user, api_key):
    job_id = post(alice, {"name": "noop"}).json()["id"]
    carol = make_user("carol")
    Membership.objects.filter(user=carol).delete()
    Membership.objects.create(user=carol, account=account_for_user(User.objects.get(username="alice")))
    _, key = api_key("carol")
    client = bearer_client(key)
    assert client.get(f"/api/job/{job_id}").json()["id"] == job_id


def test_no_credentials_is_401():
    error = assert_error(APIClient().post("/api/job", {}, format="json"), 401, "unauthenticated")
    assert error["message"] == "Authentication credentials were not provided."


@pytest.mark.parametrize("header", ["Bearer wrong", "Bearer", "Bearer a b", "Bearer \u00e9"])
def test_a_bad_key_is_401(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.encode("utf-8").decode("latin-1"))
    assert_error(client.get("/api/job/x"), 401, "unauthenticated")


def test_a_revoked_key_is_401(api_key):
    _, key = api_key("alice")
    ApiKey.objects.update(revoked_at=timezone.now())
    client = bearer_client(key)
    assert_error(client.get("/api/job/x"), 401, "unauthenticated")


@pytest.mark.parametrize(
    ("method", "scope"),
    [("post", "job.create"), ("get", "job.read"), ("patch", "job.update"), ("delete", "job.delete")],
)
def test_a_key_without_the_scope_is_403(client_for, alice, method, scope):
    job_id = post(alice, {"name": "noop"}).json()["id"]
    others = tuple(s for s in ("job.create", "job.read", "job.update", "job.delete") if s != scope)
    client = client_for("alice", others)
    path = "/api/job" if method == "post" else f"/api/job/{job_id}"
    error = assert_error(getattr(client, method)(path, {}, format="json"), 403, "forbidden")
    assert error["message"] == f"Your API key does not have the {scope!r} scope."
    assert Job.objects.count() == 1


def test_a_logged_in_session_works(make_user):
    user = make_user("dora")
    client = APIClient()
    client.force_login(user)
    response = client.post("/api/job", {"name": "noop"}, format="json")
    assert response.status_code == 201
    assert client.get(response["Location"]).status_code == 200


def test_put_is_405(alice):
    job_id = post(alice, {"name": "noop"}).json()["id"]
    assert_error(alice.put(f"/api/job/{job_id}", {}, format="json"), 405, "method_not_allowed")


def test_unknown_api_paths_are_json_404(alice):
    assert_error(alice.get("/api/nothing"), 404, "not_found")
    assert_error(alice.post("/api/nothing", {}, format="json"), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/job/a%0A/", "/api/job/%0A", "/api/nothing%0Ahere", "/api/job/abc%0A"])
def test_paths_with_a_newline_are_json_404(alice, path):
    assert_error(alice.get(path), 404, "not_found")
