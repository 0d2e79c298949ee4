"""The end-to-end stack, started once for the e2e tests and stopped after them."""

import pytest

from .stack import Stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("e2e")).start()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def workers(stack):
    """Stop the stack's own worker for the test, so the test decides which workers run; restore it after."""
    stack.stop("worker")
    started = []

    def start(name, concurrency=2, *extra, **options):
        started.append(name)
        return stack.start_worker(name, concurrency, *extra, **options)

    yield start
    for name in started:
        if name in stack.processes:
            stack.stop(name)
    stack.start_worker("worker")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Mark a test whose body failed, so fixtures (the browser's screenshot) can tell at teardown."""
    report = yield
    if report.when == "call" and report.failed:
        item.failed = True
    return report
