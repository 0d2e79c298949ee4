"""Bull-style job options: what is accepted, what is refused and with which message."""

import pytest

from jobs.errors import InvalidJob
from jobs.options import Backoff, JobOptions, parse_options


def test_no_options_means_one_attempt_now():
    assert parse_options(None) == JobOptions(delay=0, attempts=1, backoff=None, priority=None, job_id=None)
    assert parse_options({}).to_json() == {"attempts": 1, "delay": 0}


def test_all_options_are_parsed_and_echoed_as_bull_opts():
    options = parse_options(
        {"delay": 5000, "attempts": 3, "backoff": {"type": "exponential", "delay": 1000}, "priority": 1, "jobId": "report-7"}
    )
    assert options == JobOptions(5000, 3, Backoff("exponential", 1000), 1, "report-7")
    assert options.to_json() == {
        "attempts": 3,
        "delay": 5000,
        "backoff": {"type": "exponential", "delay": 1000},
        "priority": 1,
        "jobId": "report-7",
    }


def test_a_number_backoff_is_a_fixed_backoff():
    assert parse_options({"backoff": 250}).backoff == Backoff("fixed", 250)


@pytest.mark.parametrize(
    ("backoff", "attempts_made", "wait"),
    [
        (Backoff("fixed", 1000), 1, 1000),
        (Backoff("fixed", 1000), 4, 1000),
        (Backoff("exponential", 1000), 1, 1000),
        (Backoff("exponential", 1000), 2, 3000),
        (Backoff("exponential", 1000), 3, 7000),
    ],
)
def test_backoff_follows_bulls_formulas(backoff, attempts_made, wait):
    assert backoff.delay_after(attempts_made) == wait


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ([], "opts must be a JSON object."),
        ({"lifo": True}, "Unknown option 'lifo'; known options are delay, attempts, backoff, priority, jobId, timeout, removeOnComplete, removeOnFail."),
        ({"delay": -1}, "opts.delay must be a whole number from 0 to 31536000000."),
        ({"delay": "10"}, "opts.delay must be a whole number from 0 to 31536000000."),
        ({"delay": 1.5}, "opts.delay must be a whole number from 0 to 31536000000."),
        ({"delay": True}, "opts.delay must be a whole number from 0 to 31536000000."),
        ({"attempts": 0}, "opts.attempts must be a whole number from 1 to 100."),
        ({"attempts": 101}, "opts.attempts must be a whole number from 1 to 100."),
        ({"priority": 0}, "opts.priority must be a whole number from 1 to 2097152."),
        ({"backoff": {"type": "linear", "delay": 5}}, 'opts.backoff must be a number of ms or {"type": "fixed" or "exponential", "delay": ms}.'),
        ({"backoff": {"type": "fixed", "delay": 5, "x": 1}}, 'opts.backoff must be a number of ms or {"type": "fixed" or "exponential", "delay": ms}.'),
        ({"backoff": {"type": "fixed", "delay": -5}}, "opts.backoff.delay must be a whole number from 0 to 31536000000."),
        ({"jobId": ""}, "opts.jobId must be 1 to 200 characters of letters, digits and _ . : @ ~ -."),
        ({"jobId": "a/b"}, "opts.jobId must be 1 to 200 characters of letters, digits and _ . : @ ~ -."),
        ({"jobId": 7}, "opts.jobId must be 1 to 200 characters of letters, digits and _ . : @ ~ -."),
        ({"jobId": "x" * 201}, "opts.jobId must be 1 to 200 characters of letters, digits and _ . : @ ~ -."),
    ],
)
def test_bad_options_are_refused_with_an_exact_message(opts, message):
    with pytest.raises(InvalidJob) as caught:
        parse_options(opts)
    assert str(caught.value) == message
