"""YAML from Python and Python from YAML: jamjet.load with Python
functions, YAML errors, a Workflow written out and read back, and
run_child (a YAML workflow as a durable sub-workflow of a Python step)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import jamjet
from jamjet import State, Workflow

from conftest import child_env

ENRICH = """\
workflow:
  id: enrich
  version: 0.1.0
  state_schema: { text: str, words: int, tags: list, score: float }
  start: count
nodes:
  count:
    type: function
    function: count_words
    input: { text: "{{ state.text }}" }
    output_key: words
    next: tag
  tag:
    type: function
    function: tag
    next: rate
  rate:
    type: function
    function: score
"""


def count_words(inp: dict[str, Any]) -> int:
    return len(inp["text"].split())


def tag(state: State) -> dict[str, Any]:
    return {"tags": sorted(set(state.text.split()))}


async def score(state: State) -> dict[str, Any]:
    return {"score": state["words"] / 10}


FUNCTIONS = {"count_words": count_words, "tag": tag, "score": score}


@pytest.fixture
def enrich(tmp_path: Path) -> Path:
    path = tmp_path / "enrich.yaml"
    path.write_text(ENRICH)
    return path


def test_load_runs_a_yaml_workflow_whose_function_nodes_are_python(enrich: Path) -> None:
    wf = jamjet.load(enrich, functions=FUNCTIONS, runtime=jamjet.Runtime())
    assert (wf.name, wf.version) == ("enrich", "0.1.0")
    assert wf.function_names() == ["count_words", "score", "tag"]
    result = wf.run_sync({"text": "b a b"})
    assert result.status == "completed" and result.steps_executed == 3
    assert isinstance(result.state, State)
    assert result.state == {"text": "b a b", "words": 3, "tags": ["a", "b"], "score": 0.3}
    assert wf.to_yaml() == ENRICH
    assert wf.content_hash() == jamjet._native.compile(ENRICH, "x.yaml").content_hash()


async def test_load_runs_async_too_and_durably_with_a_key(enrich: Path, store: str) -> None:
    wf = jamjet.load(enrich, functions=FUNCTIONS, store=store)
    first = await wf.run({"text": "x y"}, key="doc-1")
    again = await wf.run({"text": "x y"}, key="doc-1")
    assert first.execution_id == again.execution_id
    assert again.state["score"] == 0.2
    wf.runtime.close()


def test_a_yaml_file_with_errors_raises_its_line_column_findings(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nstate_schema: { a: int }\nnodes:\n  a:\n    type: function\n    function: f\n    next: nowhere\n")
    with pytest.raises(jamjet.ValidationError) as e:
        jamjet.load(bad, functions={"f": lambda s: s})
    assert f"{bad}:7:11" in str(e.value)
    assert [(f["line"], f["column"], f["node"]) for f in e.value.findings] == [(7, 11, "a")]
    assert "`next` names node `nowhere`" in e.value.findings[0]["message"]
    with pytest.raises(jamjet.ValidationError, match=r"cannot read"):
        jamjet.load(tmp_path / "missing.yaml")


def test_a_function_not_given_is_named_before_anything_runs(enrich: Path) -> None:
    rt = jamjet.Runtime()
    wf = jamjet.load(enrich, functions={"tag": tag}, runtime=rt)
    assert wf.missing_functions() == ["count_words", "score"]
    with pytest.raises(jamjet.ValidationError) as e:
        wf.run_sync({"text": "a"})
    message = str(e.value)
    assert "calls 2 function(s) it was not given: `count_words`, `score` (given: `tag`)" in message
    assert str(enrich) in message
    assert rt.executions() == [], "nothing started"
    with pytest.raises(jamjet.ValidationError, match=r"is not callable"):
        jamjet.load(enrich, functions={"tag": "tag"})  # type: ignore[dict-item]


def test_a_function_that_raises_fails_its_node_with_the_traceback(enrich: Path) -> None:
    def broken(state: State) -> dict[str, Any]:
        raise KeyError("no such tag")

    wf = jamjet.load(enrich, functions={**FUNCTIONS, "tag": broken}, runtime=jamjet.Runtime())
    with pytest.raises(jamjet.StepFailed, match=r"function `tag` raised KeyError: 'no such tag'") as e:
        wf.run_sync({"text": "a"})
    assert e.value.node == "tag" and "Traceback" in str(e.value)


class Doc(BaseModel):
    text: str
    words: int = 0


def _counter(name: str, runtime: jamjet.Runtime | None = None) -> Workflow:
    wf = Workflow(name, state=Doc, runtime=runtime or jamjet.Runtime())

    @wf.step
    def count(d: Doc) -> Doc:
        return d.model_copy(update={"words": len(d.text.split())})

    return wf


def test_a_workflow_written_out_as_yaml_and_loaded_back_is_the_same_workflow(tmp_path: Path) -> None:
    wf = _counter("counter")
    path = tmp_path / "counter.yaml"
    path.write_text(wf.to_yaml())
    loaded = jamjet.load(path, runtime=wf.runtime)
    assert loaded.content_hash() == wf.compile().content_hash()
    assert wf.compile().source == loaded.to_yaml()
    # The loaded file runs on the runtime that has the Workflow's steps.
    wf.register()
    assert loaded.missing_functions() == []
    assert loaded.run_sync({"text": "one two"}).state == {"text": "one two", "words": 2}
    # Elsewhere it names what it needs.
    assert jamjet.load(path, runtime=jamjet.Runtime()).missing_functions() == ["counter/count"]


def test_run_child_runs_a_yaml_workflow_from_a_step(enrich: Path) -> None:
    class S(BaseModel):
        text: str
        enriched: dict[str, Any] = {}
        counted: int = 0

    rt = jamjet.Runtime()
    wf = Workflow("parent", state=S, runtime=rt)

    @wf.step
    async def enrich_it(s: S) -> S:
        out = await jamjet.run_child(enrich, {"text": s.text}, functions=FUNCTIONS)
        return s.model_copy(update={"enriched": dict(out)})

    @wf.step
    def count_again(s: S) -> S:
        out = jamjet.run_child_sync(_counter("child-counter", rt), {"text": s.text})
        return s.model_copy(update={"counted": out["words"]})

    result = wf.run_sync(S(text="c a"))
    assert result.state.enriched == {"text": "c a", "words": 2, "tags": ["a", "c"], "score": 0.2}
    assert result.state.counted == 2
    rows = {r["workflow_id"]: r for r in rt.executions()}
    assert set(rows) == {"parent", "enrich", "child-counter"}
    parent = result.execution_id
    assert rows["enrich"]["key"] == f"{parent}/enrich_it/1/child/1"
    assert rows["child-counter"]["key"] == f"{parent}/count_again/1/child/1"
    pieces = [r["event"]["Call"]["call"] for r in result.events if "Call" in r["event"]]
    assert [(p["kind"], p["name"]) for p in pieces] == [("run", "child:enrich"), ("run", "child:child-counter")]
    # Outside a step it simply runs.
    assert jamjet.run_child_sync(enrich, {"text": "z"}, functions=FUNCTIONS)["score"] == 0.1


def test_a_child_that_fails_fails_the_step_naming_the_child(enrich: Path) -> None:
    class S(BaseModel):
        text: str

    wf = Workflow("failing-parent", state=S, runtime=jamjet.Runtime())

    def broken(state: State) -> dict[str, Any]:
        raise ValueError("tagger down")

    @wf.step
    async def enrich_it(s: S) -> S:
        await jamjet.run_child(enrich, {"text": s.text}, functions={**FUNCTIONS, "tag": broken})
        return s

    with pytest.raises(jamjet.StepFailed) as e:
        wf.run_sync(S(text="a"))
    message = str(e.value)
    assert "step `enrich_it`" in message and "child execution exec_" in message
    assert "of `enrich` failed at step `tag`" in message and "tagger down" in message


_PARENT = """
import json, os, sys, time
from typing import Any
from pydantic import BaseModel
import jamjet
from jamjet import Workflow

DIR = sys.argv[1]

def tag(state):
    with open(os.path.join(DIR, "tag-calls"), "a") as f:
        f.write("call\\n")
    if not os.path.exists(os.path.join(DIR, "mark")):
        open(os.path.join(DIR, "mark"), "w").write("the child runs")
        time.sleep(120)  # killed here, inside the child
    return {"tags": state["text"].split()}

def count_words(inp):
    return len(inp["text"].split())

def score(state):
    return {"score": 1.0}

class S(BaseModel):
    text: str
    enriched: dict[str, Any] = {}

wf = Workflow("parent", state=S, store=os.path.join(DIR, ".jamjet"))

@wf.step
async def enrich(s: S) -> S:
    out = await jamjet.run_child(os.path.join(DIR, "enrich.yaml"), {"text": s.text},
                                 functions={"tag": tag, "count_words": count_words, "score": score})
    return s.model_copy(update={"enriched": dict(out)})

result = wf.run_sync(S(text="p q"), key="parent-1")
print(json.dumps({"id": result.execution_id, "enriched": result.state.enriched,
                  "executions": wf.runtime.executions()}))
"""


def test_a_rerun_after_kill_9_attaches_to_the_child_it_started(tmp_path: Path) -> None:
    (tmp_path / "enrich.yaml").write_text(ENRICH)
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    env = child_env()
    first = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env, stdout=subprocess.DEVNULL)
    try:
        for _ in range(600):  # up to 60 s
            if (tmp_path / "mark").exists() or first.poll() is not None:
                break
            time.sleep(0.1)
        assert (tmp_path / "mark").exists(), "the child started"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
    second = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    assert out["enriched"] == {"text": "p q", "words": 2, "tags": ["p", "q"], "score": 1.0}
    # One child, started by the first run and finished by the second, under the step's key.
    children = [e for e in out["executions"] if e["workflow_id"] == "enrich"]
    assert len(children) == 1, out["executions"]
    assert children[0]["key"] == f"{out['id']}/enrich/1/child/1"
    assert children[0]["status"] == "completed"
    # Its interrupted node ran again (at least once, as any interrupted node); nothing else did.
    assert (tmp_path / "tag-calls").read_text().count("call") == 2
    # A third run reads everything back: no new execution, no new call.
    third = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stderr
    assert len(json.loads(third.stdout)["executions"]) == 2
    assert (tmp_path / "tag-calls").read_text().count("call") == 2


def test_run_child_refuses_what_is_not_a_workflow() -> None:
    with pytest.raises(jamjet.ValidationError, match=r"run_child runs a workflow file's path"):
        jamjet.run_child_sync(42)
    with pytest.raises(jamjet.ValidationError, match=r"cannot read workflow file"):
        jamjet.run_child_sync("no/such/file.yaml")
    assert os.environ.get("JAMJET_TEST_UNUSED") is None
