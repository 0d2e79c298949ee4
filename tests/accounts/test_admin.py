"""The API keys admin: who a key is for and what it may do at a glance, and revoking keys with an action."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import ApiKey
from tests.clients import bearer_client

pytestmark = pytest.mark.django_db

LIST = "/admin/accounts/apikey/"


def revoke(client, *keys: ApiKey) -> list[tuple[str, str]]:
    response = client.post(LIST, {"action": "revoke", "_selected_action": [key.pk for key in keys], "index": 0},
                           follow=True)
    return [(message.level_tag, message.message) for message in response.context["messages"]]


def test_the_list_shows_name_user_account_scopes_and_last_use(admin_client, api_key):
    alice, _ = api_key("alice")
    api_key("bob", ["job.read", "job.create"])
    used = timezone.now().replace(year=2026, month=3, day=4, hour=5, minute=6)
    ApiKey.objects.filter(user=alice).update(name="deploy bot", last_used_at=used)
    page = admin_client.get(LIST).content.decode()
    row = page[page.index("deploy bot"):]
    row = row[:row.index("</tr>")]
    for cell in ('<td class="field-user nowrap">alice</td>', '<td class="field-account nowrap">alice</td>',
                 '<td class="field-scopes_shown">all</td>', '<td class="field-last_used">2026-03-04 05:06</td>',
                 '<td class="field-status">active</td>'):
        assert cell in row, cell
    assert '<td class="field-scopes_shown">job.create, job.read</td>' in page
    assert '<td class="field-last_used">never</td>' in page


def test_the_list_costs_the_same_queries_for_one_key_or_many(admin_client, api_key):
    api_key("alice")
    with CaptureQueriesContext(connection) as one:
        admin_client.get(LIST)
    for number in range(6):
        api_key(f"user{number}")
    with CaptureQueriesContext(connection) as many:
        admin_client.get(LIST)
    assert len(many.captured_queries) == len(one.captured_queries)


def test_the_revoke_action_revokes_keys_and_their_requests_get_401(admin_client, api_key):
    _, kept = api_key("alice")
    _, first = api_key("bob")
    _, second = api_key("carol")
    keys = ApiKey.objects.exclude(user__username="alice")
    assert revoke(admin_client, *keys) == [("success", "2 API keys revoked: requests with them are now refused (401).")]
    for clear in (first, second):
        assert bearer_client(clear).get("/api/job").status_code == 401
    assert bearer_client(kept).get("/api/job").status_code == 200
    assert '<td class="field-status">revoked ' in admin_client.get(f"{LIST}?status=revoked").content.decode()


def test_a_key_revoked_earlier_keeps_its_time_and_is_named_as_such(admin_client, api_key):
    api_key("alice")
    api_key("bob")
    earlier = timezone.now().replace(year=2025, microsecond=0)
    old = ApiKey.objects.get(user__username="alice")
    ApiKey.objects.filter(pk=old.pk).update(revoked_at=earlier)
    assert revoke(admin_client, *ApiKey.objects.all()) == [
        ("success", "1 API key revoked: requests with it are now refused (401)."),
        ("warning", "1 selected key was already revoked."),
    ]
    assert ApiKey.objects.get(pk=old.pk).revoked_at == earlier


def test_a_key_cannot_be_revoked_or_unrevoked_by_editing_it(admin_client, api_key):
    api_key("alice")
    key = ApiKey.objects.get()
    page = admin_client.get(f"{LIST}{key.pk}/change/").content.decode()
    assert 'name="revoked_at' not in page and 'name="name"' in page
    edit = {"name": "renamed", "revoked_at_0": "2026-01-01", "revoked_at_1": "00:00"}
    assert admin_client.post(f"{LIST}{key.pk}/change/", edit).status_code == 302
    key.refresh_from_db()
    assert (key.name, key.revoked_at) == ("renamed", None)


def test_the_status_filter_tells_live_keys_from_revoked_ones(admin_client, api_key):
    api_key("alice")
    api_key("bob")
    ApiKey.objects.filter(user__username="bob").update(revoked_at=timezone.now())
    alice, bob = '<td class="field-user nowrap">alice</td>', '<td class="field-user nowrap">bob</td>'
    live = admin_client.get(LIST, {"status": "active"}).content.decode()
    assert alice in live and bob not in live
    revoked = admin_client.get(LIST, {"status": "revoked"}).content.decode()
    assert bob in revoked and alice not in revoked
