"""The benchmark keeps working: a tiny run of every scenario, against real processes, on the suite's database."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.bench import report
from tests.e2e.stack import throwaway_database

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_a_quick_run_measures_every_scenario_and_reports_the_targets(tmp_path):
    # A database of its own (the benchmark empties tables), on the suite's database server.
    url, drop = throwaway_database(tmp_path)
    env = {**{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}, "DATABASE_URL": url}
    try:
        done = subprocess.run([sys.executable, "-m", "devtools.bench", "--quick", "--out", str(tmp_path)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
    finally:
        drop()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(next(tmp_path.glob("bench-*.json")).read_text())["results"]
    # Bull runs beside ours when ./dev bench could install it (node and npm); ./dev test does not install it.
    bull = (ROOT / "devtools" / "bull" / "node_modules" / "bull").is_dir()
    bull_sides = {"add one by one /s": "Bull 4 (Node)", "drain /s": "Bull 4 (Node, concurrency 2)"}
    for scenario in ("add one by one /s", "end to end /s", "drain /s", "worker peak RSS MB"):
        sides = {"ours", "celery, django-celery-results", "celery, Redis results"}
        sides |= {"ours, add_bulk"} if scenario != "add one by one /s" else set()
        sides |= {bull_sides[scenario]} if bull and scenario in bull_sides else set()
        assert set(results[scenario]) == sides
        assert all(value > 0 for values in results[scenario].values() for value in values)
    assert set(results["add_bulk of 10,000 /s"]) == {"ours"} | ({"Bull 4 addBulk (Node)"} if bull else set())
    assert set(results["POST requests/s"]) == {"POST /api/job", "minimal DRF insert"}
    assert set(results["enqueue-to-start ms"]) == {"p50", "p95", "p99"}
    assert set(results["one sweep ms"]) == {"1,000 jobs", "5,000 jobs"}
    table = report(results, "check")
    assert "| end to end /s: ours / celery, django-celery-results ≥ 1.0 |" in table
    assert "| GET /api/job/counts ms: 5,000 jobs / 1,000 jobs ≤ 1.5 |" in table
    for state in ("failed", "completed", "active"):
        assert f"| GET /admin/jobs/job/?state={state} ms: 5,000 jobs / 1,000 jobs ≤ 1.5 |" in table
