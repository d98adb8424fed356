"""The package as installed: its command line, its types, its errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import jamjet

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_the_jamjet_command_is_the_rust_command_line() -> None:
    out = subprocess.run([BIN / "jamjet", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"jamjet {jamjet.__version__}"
    ok = subprocess.run(
        [BIN / "jamjet", "validate", str(ROOT / "examples" / "hello.yaml")], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    assert "workflow `hello`" in ok.stdout


def test_a_bad_command_line_exits_2_with_the_usage() -> None:
    out = subprocess.run([BIN / "jamjet", "frobnicate"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "frobnicate" in out.stderr


def test_the_package_is_typed() -> None:
    pkg = Path(jamjet.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "_native.pyi").exists()


def test_every_error_is_a_jamjet_error_and_keeps_its_fields() -> None:
    import pickle

    for name in jamjet.errors.__all__:
        cls = getattr(jamjet.errors, name)
        assert issubclass(cls, jamjet.JamjetError)
    e = jamjet.StepFailed("boom", execution_id="exec_1", node="n")
    back = pickle.loads(pickle.dumps(e))
    assert (type(back), back.execution_id, back.node, str(back)) == (jamjet.StepFailed, "exec_1", "n", "boom")


def test_a_yaml_file_with_errors_names_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workflow:\n  id: bad\n  version: 0.1.0\nnodes:\n  a:\n    type: set\n    values: {x: 1}\n    next: nowhere\n")
    with pytest.raises(jamjet.ValidationError) as e:
        jamjet._native.compile_file(str(bad))
    (finding,) = [f for f in e.value.findings if "nowhere" in f["message"]]
    assert finding["file"].endswith("bad.yaml") and finding["line"] == 8 and finding["column"] > 0
    assert finding["node"] == "a"
    assert "bad.yaml:8:" in str(e.value)


def test_a_forked_child_is_told_to_open_its_own_runtime() -> None:
    import os

    from pydantic import BaseModel

    class S(BaseModel):
        n: int = 0

    wf = jamjet.Workflow("fork-check", state=S)

    @wf.step
    def inc(s: S) -> dict:
        return {"n": s.n + 1}

    assert wf.run_sync(S()).state.n == 1  # the runtime's threads start in this process
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what a run says, then leave without cleanup
        os.close(r)
        try:
            jamjet.Runtime().native
            msg = "opened"
        except jamjet.JamjetError as e:
            msg = str(e)
        os.write(w, msg.encode()[:4000])
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        said = f.read().decode()
    os.waitpid(pid, 0)
    assert "was forked from the one that started the JamJet runtime" in said
