"""/metrics from the stack's gunicorn after real jobs ran on the real worker: what a Prometheus scrape reads."""

from prometheus_client.parser import text_string_to_metric_families

from .stack import METRICS_TOKEN, wait_until

# Jobs added from code to a queue no worker of the stack reads stay waiting.
UNREAD_QUEUE = "metrics-e2e-unread"


def scrape(stack, token: str | None = METRICS_TOKEN) -> dict[tuple, float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = stack.http.get(f"{stack.base_url}/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_a_scrape_without_the_token_is_refused(stack):
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        response = stack.http.get(f"{stack.base_url}/metrics", headers=headers, timeout=30)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"


def test_metrics_count_and_time_the_jobs_the_worker_ran(stack):
    runs = [stack.add("metered", {"seconds": seconds})["id"] for seconds in (0, 0, 1.2)]
    runs += [stack.add("metered", {"fail": True})["id"] for _ in range(2)]
    for job_id in runs:
        stack.wait_for(job_id)
    stack.manage("shell", "-c", f"import jobs; jobs.Queue({UNREAD_QUEUE!r}).add({{}}, name='noop')")

    read = scrape(stack)
    done = (("name", "metered"), ("queue", "jobs"), ("state", "completed"))
    failed = (("name", "metered"), ("queue", "jobs"), ("state", "failed"))
    assert read[("jobs_finished_in_window", *done)] == 3
    assert read[("jobs_finished_in_window", *failed)] == 2
    assert read[("jobs_run_seconds_in_window_bucket", ("le", "+Inf"), *done)] == 3
    # The 1.2 s run is the one above a second; the quick ones are far below it.
    assert read[("jobs_run_seconds_in_window_bucket", ("le", "1.0"), *done)] == 2
    assert read[("jobs_run_seconds_in_window_bucket", ("le", "2.5"), *done)] == 3
    assert 1.2 <= read[("jobs_run_seconds_in_window_gsum", *done)] < 5
    assert read[("jobs_in_state", ("queue", UNREAD_QUEUE), ("state", "waiting"))] == 1
    waited = read[("jobs_oldest_waiting_seconds", ("queue", UNREAD_QUEUE))]
    assert waited > 0
    # Nothing is kept in a web process: whichever of gunicorn's processes answers, the numbers
    # are the table's, and the wait keeps growing.
    wait_until(lambda: scrape(stack)[("jobs_oldest_waiting_seconds", ("queue", UNREAD_QUEUE))] > waited + 1, 10,
               "the oldest wait to grow", stack)
    for _ in range(4):
        again = scrape(stack)
        assert again[("jobs_finished_in_window", *done)] == 3
        assert again[("jobs_in_state", ("queue", UNREAD_QUEUE), ("state", "waiting"))] == 1
