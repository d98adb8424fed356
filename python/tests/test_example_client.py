"""python/examples/client.py runs as written (it starts its own jamjet dev)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "client.py"


def test_the_client_example_runs_offline() -> None:
    p = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "is waiting: approval `Refund 30 to Ada?`" in out
    assert "now waiting for the event `refund:Ada`" in out
    assert "completed: refunded 30 (approved by ops)" in out
    assert "ApprovalDecided" in out and "SignalReceived" in out and out.count("ExecutionCompleted") == 1
    assert "a wrong key: 401 unauthorized" in out
