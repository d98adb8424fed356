"""The examples of python/examples/ run as written (each starts its own
loopback model server) and print their answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=120, env=env, cwd=EXAMPLES
    )
    assert done.returncode == 0, f"{name}: exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def test_the_research_writer_example_writes_its_article() -> None:
    out = run_example("research_writer.py").splitlines()
    assert out[0] == "  researcher called search_web({'query': 'durable execution'})"
    assert out[1].startswith("Durable execution, in brief. A durable runtime journals each step")
    assert out[2].startswith("Ran 2 steps in ")


def test_the_migration_example_gives_the_raw_loops_answer() -> None:
    out = run_example("migrate_openai.py").splitlines()
    assert out[0] == "raw loop: From [results for: AI agent frameworks 2025]: many."
    assert out[1] == "workflow: From [results for: AI agent frameworks 2025]: many."
    assert out[2].startswith("Ran ")
