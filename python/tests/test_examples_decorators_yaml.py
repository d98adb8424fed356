"""The decorator and YAML examples run as written, offline, as subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT, child_env

EXAMPLES = ROOT / "python" / "examples"


def run(script: str, *args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        env=child_env(), cwd=cwd, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_decorators_example(tmp_path: Path) -> None:
    store = str(tmp_path / ".jamjet")
    out = run("decorators.py", store, cwd=tmp_path)
    assert out.splitlines()[0] == "Report: 5 orders, 14 items, largest 5."
    assert "model requests: 1" in out
    # Its journal kept: run again with the same store, the run is attached to, nothing is asked again.
    again = run("decorators.py", store, cwd=tmp_path)
    assert again.splitlines()[0] == "Report: 5 orders, 14 items, largest 5."
    assert "model requests: 0" in again


def test_the_yaml_functions_example(tmp_path: Path) -> None:
    out = run("yaml_functions.py", cwd=tmp_path).splitlines()
    assert out[0] == "review: accepted (8 words) (score 1.00)"
    assert out[1] == "publisher: too short"
    assert out[2].startswith("  its child: exec_") and out[2].endswith("(review, completed)")
    assert out[3] == "written to publisher.yaml and read back: same content hash: True"
    assert out[4].startswith("served at http://127.0.0.1:")
    assert out[4].endswith("POST /executions -> completed: accepted (9 words)")
