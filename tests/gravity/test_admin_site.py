"""The admin as this project sets it up: no empty Celery results, the daily flow's task shown as registered."""

import threading

import pytest
from django_celery_beat.admin import TaskSelectWidget
from django_celery_beat.models import PeriodicTask

from onboarding.schedule import NAME, TASK

pytestmark = pytest.mark.django_db


def in_another_thread(function):
    """Call `function` in a new thread, as gunicorn's threaded workers serve requests; return its result."""
    result = []
    thread = threading.Thread(target=lambda: result.append(function()))
    thread.start()
    thread.join(30)
    return result[0]


def test_the_web_process_knows_the_beat_task_in_every_thread():
    # Celery's current app is per thread; the admin's task choices must see ours in any thread.
    choices = in_another_thread(lambda: [value for value, _ in TaskSelectWidget().choices])
    assert TASK in choices


def test_the_daily_flow_shows_as_a_registered_task(admin_client):
    task = PeriodicTask.objects.get(name=NAME)
    html = admin_client.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/").content.decode()
    assert f'<option value="{TASK}" selected>{TASK}</option>' in html
    assert '<input type="text" name="task" maxlength="200" id="id_task">' in html


def test_saving_the_periodic_task_keeps_its_task(admin_client):
    task = PeriodicTask.objects.get(name=NAME)
    form = {
        "name": NAME, "regtask": TASK, "task": "", "enabled": "on", "crontab": task.crontab_id, "args": "[]",
        "kwargs": "{}", "description": task.description, "headers": "{}", "priority": "", "expire_seconds": "",
    }
    response = admin_client.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert PeriodicTask.objects.get(pk=task.pk).task == TASK


def test_celery_results_sections_are_hidden_because_jobs_are_the_record(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert "Celery Results" not in page and "/admin/django_celery_results/" not in page
    assert admin_client.get("/admin/django_celery_results/taskresult/").status_code == 404
