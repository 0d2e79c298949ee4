"""The sweep benchmark keeps working: a tiny run, on a throwaway database of the suite's kind."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def test_a_tiny_run_times_idle_sweeps_and_sweeps_that_resend_after_a_broker_loss():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "devtools.bench_sweep", "--finished", "2000", "--waiting", "300", "--repeat", "3", "--loss-sweeps", "3"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("BENCH "))[len("BENCH "):])
    assert result["rows"] == 2300
    # Each sweep after the loss sends a batch (SWEEP_BATCH, 500): all 300 waiting jobs. The stand-in
    # broker keeps no message keys, so every timed sweep finds them missing again.
    assert (result["loss_batches"], result["loss_messages"]) == (3, 900)
    assert 0 < result["idle_median_ms"] and 0 < result["finished_only_median_ms"]
