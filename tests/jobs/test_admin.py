"""The jobs admin: list with filters and search, a readable detail page, no edits."""

import pytest

from jobs import services
from jobs.runner import job_execute

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_client):
    return admin_client


def test_the_list_filters_by_state_and_searches_by_id(staff):
    done = services.job_create(name="noop", data={"a": 1})
    job_execute(job_id=done.pk, worker="w")
    waiting = services.job_create(name="fails")
    page = staff.get("/admin/jobs/job/?state__exact=completed").content.decode()
    assert done.pk in page and waiting.pk not in page
    page = staff.get(f"/admin/jobs/job/?q={waiting.pk}").content.decode()
    assert waiting.pk in page and done.pk not in page
    page = staff.get("/admin/jobs/job/?name=fails").content.decode()
    assert waiting.pk in page


def test_the_detail_page_shows_data_result_and_traceback(staff):
    job = services.job_create(name="fails", data={"customer": "acme"})
    job_execute(job_id=job.pk, worker="w")
    page = staff.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert "&quot;customer&quot;: &quot;acme&quot;" in page
    assert "RuntimeError: boom" in page
    assert 'name="_save"' not in page


def test_jobs_cannot_be_added_or_deleted_in_the_admin(staff):
    job = services.job_create(name="noop")
    assert staff.get("/admin/jobs/job/add/").status_code == 403
    assert staff.post(f"/admin/jobs/job/{job.pk}/delete/", {"post": "yes"}).status_code == 403


def test_a_non_staff_user_is_sent_to_the_login(client, make_user):
    client.force_login(make_user())
    assert client.get("/admin/jobs/job/").status_code == 302


def test_the_onboarding_schedule_and_accounts_are_in_the_admin(staff):
    page = staff.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert "onboarding: daily flow" in page
    assert staff.get("/admin/accounts/account/").status_code == 200
    assert staff.get("/admin/onboarding/sentemail/").status_code == 200
