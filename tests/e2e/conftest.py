"""The end-to-end stack, started once for the e2e tests and stopped after them; a browser for the page tests."""

import shutil

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from .stack import ROOT, Stack

# Where a failing browser test leaves a screenshot of the page it was on.
ARTIFACTS = ROOT / ".artifacts"


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("e2e")).start()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def browser(request, tmp_path):
    """Debian's chromium, headless, 1366 px wide (a laptop), via chromium-driver; a screenshot if the test fails."""
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1366,900", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(0)
    yield driver
    if getattr(request.node, "failed", False):
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / f"{request.node.name}.png"
        driver.save_screenshot(str(shot))
        print(f"screenshot of the failure: {shot}")
    driver.quit()


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
