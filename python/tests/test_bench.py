"""The step benchmark (python/benches/steps.py) keeps working: run with
tiny counts, jamjet's side only (no LangGraph needed; no timing checked)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, child_env

SCRIPT = ROOT / "python" / "benches" / "steps.py"
TINY = [
    "--rounds", "1", "--runs", "2", "--warmup", "1", "--direct-calls", "10",
    "--executions", "6", "--warmup-executions", "2", "--concurrency", "3",
    "--no-langgraph", "--max-seconds", "240",
]  # fmt: skip


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, *args], capture_output=True, text=True, timeout=300, env=child_env()
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_step_benchmark_gives_its_figures_as_json() -> None:
    out = json.loads(bench("--json").stdout)
    med = out["median"]
    for kind in ("sync", "async"):
        assert set(med[kind]) == {
            "execution10_us", "execution1_us", "per_step_us", "direct_call_us", "overhead_us", "latency_per_step_us",
        }  # fmt: skip
        assert med[kind]["execution10_us"] > 0 and med[kind]["direct_call_us"] > 0
    assert med["durable_executions_per_s"] > 0
    assert out["rounds"][0]["durable"]["executions"] == 6
    assert "latency_ratio" not in med and set(out["targets_met"]) == {"sync_overhead_le_30us", "async_overhead_le_30us"}


def test_the_step_benchmark_prints_a_table() -> None:
    text = bench("--no-durable").stdout
    assert "overhead per step (µs)" in text
    assert "target sync_overhead_le_30us:" in text
    assert "durable" not in text
