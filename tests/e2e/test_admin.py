"""The admin in a real browser on the real stack: the dashboard's counts and chart, a retry the worker runs, beat."""

import json
import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from onboarding.schedule import NAME as DAILY_FLOW
from onboarding.schedule import TASK as DAILY_FLOW_TASK

from .pages import admin_log_in, wait_for
from .stack import wait_until

STAFF, PASSWORD = "ops", "an-operators-pass-phrase-42"
STATES = ("waiting", "delayed", "active", "completed", "failed")
# A queue no worker of the stack reads: a job added to it stays waiting.
UNREAD_QUEUE = "e2e-unread"


@pytest.fixture(scope="module")
def staff(stack):
    stack.manage("createsuperuser", "--noinput", "--username", STAFF, "--email", "ops@example.com",
                 env={"DJANGO_SUPERUSER_PASSWORD": PASSWORD})
    return STAFF


def table_counts(stack) -> dict[str, int]:
    """Jobs per state, every owner's, as the database has them now."""
    code = "import json; from jobs import selectors; print(json.dumps(selectors.job_counts(owner=None)))"
    return json.loads(stack.manage("shell", "-c", code).strip().splitlines()[-1])


def test_the_dashboard_shows_every_state_and_draws_what_finished(stack, browser, staff):
    gate = stack.gate()
    try:
        done = [stack.add("noop", {"n": n})["id"] for n in range(3)]
        failed = [stack.add("fails", {"message": f"dashboard {n}"})["id"] for n in range(2)]
        stack.add("noop", opts={"delay": 600_000})
        held = stack.add("waits_for_gate", {"gate": str(gate), "timeout": 120})["id"]
        stack.manage("shell", "-c", f"import jobs; jobs.Queue({UNREAD_QUEUE!r}).add({{}}, name='noop')")
        for job_id in done + failed:
            stack.wait_for(job_id)
        stack.wait_for(held, "active")
        admin_log_in(browser, stack.base_url, staff, PASSWORD)
        seen: dict = {}

        def the_page_matches_a_settled_table() -> bool:
            # Jobs of other tests may still move: compare when the table held still around the page.
            before = table_counts(stack)
            browser.get(f"{stack.base_url}/admin/jobs/job/dashboard/")
            wait_for(browser, "#jobs-throughput")
            seen["page"] = {state: int(browser.find_element(By.ID, f"count-{state}").text) for state in STATES}
            seen["chart"] = browser.execute_script(
                "const chart = Chart.getChart('jobs-throughput');"
                "const bars = chart.getDatasetMeta(0).data.concat(chart.getDatasetMeta(1).data);"
                "return {labels: chart.data.labels.length,"
                "        series: Object.fromEntries(chart.data.datasets.map(set => [set.label, set.data])),"
                "        drawn: bars.length, tallest: Math.max(...bars.map(bar => bar.height))};"
            )
            if table_counts(stack) != before:
                return False
            assert seen["page"] == {state: before[state] for state in STATES}
            return True

        wait_until(the_page_matches_a_settled_table, 60, f"a settled table ({seen})", stack)
        assert all(seen["page"][state] >= 1 for state in STATES), seen["page"]
        chart = seen["chart"]
        # The default window is 3 h, one bar per minute; this stack's jobs all finished inside it.
        assert chart["labels"] == 180 and chart["drawn"] == 2 * 180 and chart["tallest"] > 0
        assert sum(chart["series"]["completed"]) == seen["page"]["completed"]
        assert sum(chart["series"]["failed"]) == seen["page"]["failed"]
        failing = browser.execute_script("return Chart.getChart('jobs-failing').data.labels")
        assert "fails" in failing
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 1366
    finally:
        gate.touch()


def test_retry_in_the_admin_runs_a_failed_job_again_on_the_worker(stack, browser, staff):
    gate = stack.gate()
    job_id = stack.add("waits_for_gate", {"gate": str(gate), "timeout": 0.3, "run": uuid.uuid4().hex})["id"]
    first = stack.wait_for(job_id)
    assert first["state"] == "failed" and first["failedReason"] == f"gate {gate} never opened"
    gate.touch()
    admin_log_in(browser, stack.base_url, staff, PASSWORD)
    browser.get(f"{stack.base_url}/admin/jobs/job/?q={job_id}")
    # alice's job has no jobId of its own: its id is the internal one, which the checkbox carries.
    browser.find_element(By.CSS_SELECTOR, f'input[name="_selected_action"][value="{job_id}"]').click()
    Select(browser.find_element(By.CSS_SELECTOR, 'select[name="action"]')).select_by_value("retry_jobs")
    browser.find_element(By.CSS_SELECTOR, 'button[name="index"]').click()
    assert wait_for(browser, ".messagelist .success").text == "1 job is waiting to run again."

    again = stack.wait_for(job_id, "completed")
    assert again["processedOn"] > first["finishedOn"] and again["returnvalue"]["gate"] == str(gate)
    browser.get(f"{stack.base_url}/admin/jobs/job/{job_id}/change/")
    history = wait_for(browser, ".jobs-history").text
    assert f"failure 1 failed TimeoutError: gate {gate} never opened" in history
    assert "latest completed started " in history


def test_the_daily_flow_shows_as_a_registered_task(stack, browser, staff):
    admin_log_in(browser, stack.base_url, staff, PASSWORD)
    browser.get(f"{stack.base_url}/admin/django_celery_beat/periodictask/")
    browser.find_element(By.LINK_TEXT, DAILY_FLOW).click()
    assert Select(wait_for(browser, "#id_regtask")).first_selected_option.get_attribute("value") == DAILY_FLOW_TASK
    assert browser.find_element(By.ID, "id_task").get_attribute("value") == ""
