"""/metrics: Prometheus' format from the job table, and who may read it."""

from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from jobs import metrics, services
from jobs.models import Job

pytestmark = pytest.mark.django_db

TOKEN = "scrape-me-0123456789abcdef"


@pytest.fixture
def metrics_settings(settings):
    """Set who may read /metrics; the rest of JOBS as the suite has it."""

    def configure(**values):
        settings.JOBS = {**settings.JOBS, **values}

    return configure


def scrape(client, token: str | None = TOKEN, address: str = "127.0.0.1", **headers):
    if token is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.get("/metrics", REMOTE_ADDR=address, **headers)


def samples(response) -> dict[tuple, float]:
    """Every sample as {(name, (label, value), …): value}."""
    assert response.status_code == 200, response.content
    text = response.content.decode()
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def error_of(response, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert (error["status"], error["code"], error["details"]) == (status, code, {})
    return error["message"]


def job_that(name: str, state: str, *, ran: float | None = None, finished_ago: float = 1.0, queue: str | None = None,
             waited: float | None = None) -> Job:
    job = services.job_create(name=name, queue=queue)
    now = timezone.now()
    fields: dict = {"state": state}
    if state in ("completed", "failed"):
        fields["finished_on"] = now - timedelta(seconds=finished_ago)
        fields["processed_on"] = None if ran is None else fields["finished_on"] - timedelta(seconds=ran)
    if waited is not None:
        fields["run_at"] = now - timedelta(seconds=waited)
    Job.objects.filter(pk=job.pk).update(**fields)
    return job


# -- who may read ------------------------------------------------------------------------------


def test_metrics_are_off_until_a_setting_says_who_may_read_them(client):
    assert error_of(scrape(client), 403, "forbidden") == metrics.OFF
    assert metrics.OFF == "Metrics are off: no token or address may read them (METRICS_TOKEN, METRICS_ALLOWED_IPS)."


def test_with_a_token_a_scraper_needs_exactly_that_token(client, metrics_settings):
    metrics_settings(METRICS_TOKEN=TOKEN)
    for token in (None, "wrong", TOKEN[:-1], TOKEN + "x", ""):
        response = scrape(client, token)
        assert error_of(response, 401, "unauthenticated") == metrics.TOKEN_NEEDED, token
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert error_of(scrape(client, None, HTTP_AUTHORIZATION=f"Basic {TOKEN}"), 401, "unauthenticated")
    response = scrape(client, address="203.0.113.9")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert metrics.TOKEN_NEEDED == "Reading the metrics needs the metrics token: Authorization: Bearer <METRICS_TOKEN>."


def test_with_an_allow_list_only_those_addresses_may_read(client, metrics_settings):
    metrics_settings(METRICS_ALLOWED_IPS=["127.0.0.1", "10.0.0.0/8", "2001:db8::/32"])
    for address in ("127.0.0.1", "10.20.30.40", "2001:db8::7", "::ffff:10.1.2.3"):
        assert scrape(client, None, address).status_code == 200, address
    for address in ("127.0.0.2", "192.0.2.1", "2001:db9::1", "not-an-address"):
        assert error_of(scrape(client, None, address), 403, "forbidden") == metrics.ADDRESS_REFUSED, address
    assert metrics.ADDRESS_REFUSED == "This address may not read the metrics (METRICS_ALLOWED_IPS)."


def test_x_forwarded_for_counts_only_behind_trusted_proxies(client, metrics_settings, settings):
    metrics_settings(METRICS_ALLOWED_IPS=["10.0.0.0/8"])
    assert scrape(client, None, "192.0.2.1", HTTP_X_FORWARDED_FOR="10.0.0.1").status_code == 403
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    # Behind one proxy the client is the address that proxy saw (the last one in the header).
    assert scrape(client, None, "192.0.2.1", HTTP_X_FORWARDED_FOR="10.0.0.1").status_code == 200
    assert scrape(client, None, "192.0.2.1", HTTP_X_FORWARDED_FOR="10.0.0.1, 192.0.2.7").status_code == 403


def test_with_both_a_scraper_needs_the_address_and_the_token(client, metrics_settings):
    metrics_settings(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_IPS=["10.0.0.0/8"])
    assert error_of(scrape(client, TOKEN, "192.0.2.1"), 403, "forbidden") == metrics.ADDRESS_REFUSED
    assert error_of(scrape(client, "wrong", "10.0.0.1"), 401, "unauthenticated") == metrics.TOKEN_NEEDED
    assert scrape(client, TOKEN, "10.0.0.1").status_code == 200


def test_only_get_is_answered(client, metrics_settings):
    metrics_settings(METRICS_TOKEN=TOKEN)
    response = client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert error_of(response, 405, "method_not_allowed") == 'Method "POST" not allowed.'


def test_a_database_outage_is_503_in_the_error_shape(client, metrics_settings, monkeypatch):
    metrics_settings(METRICS_TOKEN=TOKEN)

    def down():
        raise OperationalError("connection refused")

    monkeypatch.setattr(metrics.selectors, "oldest_waiting_by_queue", down)
    response = scrape(client)
    assert error_of(response, 503, "unavailable") == "The database is unavailable; try again shortly."
    assert response["Retry-After"] == "5"


def test_bad_metrics_settings_are_refused_at_start(settings):
    from jobs.checks import check_jobs_settings

    def ids(**values):
        settings.JOBS = {**settings.JOBS, **values}
        return [error.id for error in check_jobs_settings()]

    assert ids(METRICS_TOKEN="short") == ["jobs.E012"]
    assert ids(METRICS_TOKEN=TOKEN, METRICS_ALLOWED_IPS="10.0.0.0/8") == ["jobs.E013"]
    assert ids(METRICS_ALLOWED_IPS=["10.0.0.0/8", "intranet"]) == ["jobs.E013"]
    assert ids(METRICS_ALLOWED_IPS=["10.0.0.0/8"], METRICS_WINDOW=0) == ["jobs.E014"]
    assert ids(METRICS_WINDOW=300) == []


# -- what they read ----------------------------------------------------------------------------


def test_jobs_per_state_and_queue_and_the_oldest_wait(client, metrics_settings):
    metrics_settings(METRICS_TOKEN=TOKEN)
    job_that("noop", "waiting", waited=90)
    job_that("noop", "waiting", waited=30)
    job_that("noop", "waiting", queue="reports", waited=5)
    job_that("noop", "delayed")
    job_that("noop", "completed", ran=1)
    read = samples(scrape(client))
    assert read[("jobs_in_state", ("queue", "jobs"), ("state", "waiting"))] == 2
    assert read[("jobs_in_state", ("queue", "jobs"), ("state", "delayed"))] == 1
    assert read[("jobs_in_state", ("queue", "jobs"), ("state", "active"))] == 0
    assert read[("jobs_in_state", ("queue", "jobs"), ("state", "completed"))] == 1
    assert read[("jobs_in_state", ("queue", "reports"), ("state", "waiting"))] == 1
    assert 90 <= read[("jobs_oldest_waiting_seconds", ("queue", "jobs"))] < 100
    assert 5 <= read[("jobs_oldest_waiting_seconds", ("queue", "reports"))] < 15
    job_that("noop", "completed", queue="idle", ran=1)
    assert samples(scrape(client))[("jobs_oldest_waiting_seconds", ("queue", "idle"))] == 0


def test_a_job_added_between_the_oldest_and_the_counts_read_is_no_error(client, metrics_settings, monkeypatch):
    """The oldest waiting jobs and the counts are two reads: the counts may hold a waiting job the first did not see."""
    metrics_settings(METRICS_TOKEN=TOKEN)
    read_counts = metrics.selectors.job_counts

    def a_job_is_added_first(**kwargs):
        job_that("noop", "waiting", queue="reports")
        return read_counts(**kwargs)

    monkeypatch.setattr(metrics.selectors, "job_counts", a_job_is_added_first)
    read = samples(scrape(client))
    assert read[("jobs_in_state", ("queue", "reports"), ("state", "waiting"))] == 1
    assert read[("jobs_oldest_waiting_seconds", ("queue", "reports"))] == 0


def test_jobs_finished_in_the_window_and_their_run_times(client, metrics_settings):
    metrics_settings(METRICS_TOKEN=TOKEN, METRICS_WINDOW=600)
    for ran in (0.04, 0.3, 3, 45):
        job_that("sleeps", "completed", ran=ran)
    job_that("fails", "failed", ran=0.2)
    job_that("fails", "failed", ran=None)  # never started: counted, but not timed
    job_that("sleeps", "completed", ran=1, finished_ago=601)  # before the window
    read = samples(scrape(client))
    sleeps = (("name", "sleeps"), ("queue", "jobs"), ("state", "completed"))
    fails = (("name", "fails"), ("queue", "jobs"), ("state", "failed"))
    assert read[("jobs_finished_in_window", *sleeps)] == 4
    assert read[("jobs_finished_in_window", *fails)] == 2
    buckets = {le: read[("jobs_run_seconds_in_window_bucket", ("le", le), *sleeps)]
               for le in ("0.05", "0.5", "1.0", "5.0", "30.0", "60.0", "+Inf")}
    assert buckets == {"0.05": 1, "0.5": 2, "1.0": 2, "5.0": 3, "30.0": 3, "60.0": 4, "+Inf": 4}
    assert read[("jobs_run_seconds_in_window_gcount", *sleeps)] == 4
    assert read[("jobs_run_seconds_in_window_gsum", *sleeps)] == pytest.approx(48.34)
    assert read[("jobs_run_seconds_in_window_gcount", *fails)] == 1
    assert read[("jobs_metrics_window_seconds",)] == 600


def test_the_text_format_names_types_and_helps_every_metric(client, metrics_settings):
    metrics_settings(METRICS_TOKEN=TOKEN)
    job_that("noop", "completed", ran=1)
    text = scrape(client).content.decode()
    for name, kind in [("jobs_in_state", "gauge"), ("jobs_oldest_waiting_seconds", "gauge"),
                       ("jobs_finished_in_window", "gauge"), ("jobs_run_seconds_in_window", "histogram"),
                       ("jobs_metrics_window_seconds", "gauge")]:
        assert f"# TYPE {name} {kind}\n" in text and f"# HELP {name} " in text, name
    assert 'jobs_in_state{queue="jobs",state="completed"} 1.0\n' in text


def test_openmetrics_when_the_scraper_asks_for_it(client, metrics_settings):
    metrics_settings(METRICS_TOKEN=TOKEN)
    job_that("noop", "completed", ran=1)
    response = scrape(client, HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")
    assert response["Content-Type"].startswith("application/openmetrics-text")
    text = response.content.decode()
    assert "# TYPE jobs_run_seconds_in_window gaugehistogram\n" in text and text.endswith("# EOF\n")


def test_metrics_name_queues_and_job_names_never_owners_ids_or_data(client, metrics_settings):
    metrics_settings(METRICS_TOKEN=TOKEN)
    secret = services.job_create(name="noop", data={"card": "4242"}, opts={"jobId": "acme-payroll"}, owner="account:7")
    Job.objects.filter(pk=secret.pk).update(state="completed", processed_on=timezone.now(), finished_on=timezone.now())
    response = scrape(client)
    labels = {label for key in samples(response) for label, _ in key[1:]}
    assert labels == {"queue", "name", "state", "le"}
    text = response.content.decode()
    assert "account:7" not in text and "acme-payroll" not in text and "4242" not in text and secret.pk not in text


def test_a_scrape_costs_three_queries_whatever_the_table_holds(client, metrics_settings):
    metrics_settings(METRICS_TOKEN=TOKEN)
    for name in ("noop", "sleeps", "fails", "flaky"):
        job_that(name, "completed", ran=1)
    with CaptureQueriesContext(connection) as queries:
        scrape(client)
    # The counts kept as jobs change, the oldest waiting job per queue, what finished in the window.
    assert len(queries.captured_queries) == 3
