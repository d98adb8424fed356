"""The decorator API: ``@workflow`` classes of ``@node`` methods over a
dict-like State, ``self.model`` as a durable model call."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import jamjet
from jamjet import State, node, workflow
from jamjet.testing import ModelServer

from conftest import child_env


def test_the_issues_example_runs_as_written(model_server: ModelServer) -> None:
    @workflow(id="data-processor", version="0.1.0")
    class DataProcessor:
        @node(start=True)
        async def process(self, state: State) -> State:
            return {"analysis": f"{len(state['rows'])} rows, total {sum(state['rows'])}"}

        @node
        async def report(self, state: State) -> State:
            response = await self.model(model="claude-sonnet-4-6", prompt=f"Write a report on: {state['analysis']}")
            return {"report": response.text}

    result = DataProcessor().run_sync({"rows": [1, 2, 3]})
    assert result.status == "completed"
    assert isinstance(result.state, State)
    assert result.state["analysis"] == "3 rows, total 6"
    assert result.state.report == "echo: Write a report on: 3 rows, total 6"
    assert result.steps_executed == 2
    # One model call, on Anthropic's wire, keyed by the node's visit; its usage is the run's.
    (request,) = model_server.requests
    assert request.path == "/v1/messages" and request.model == "claude-sonnet-4-6"
    assert request.idempotency_key == f"{result.execution_id}/report/1"
    assert result.usage["output_tokens"] == len(result.state.report.split())
    calls = [r["event"]["Call"]["call"] for r in result.events if "Call" in r["event"]]
    assert [(c["kind"], c["name"]) for c in calls] == [("model", "claude-sonnet-4-6")]
    # Keys not declared are inferred from the nodes, typed `any`.
    assert DataProcessor.document()["workflow"]["state_schema"] == {"analysis": "any", "report": "any", "rows": "any"}


async def test_await_run_and_a_system_prompt_with_an_openai_model(model_server: ModelServer) -> None:
    @workflow(id="ask", state={"question": str, "answer": str})
    class Ask:
        @node
        async def answer(self, state: State) -> dict[str, Any]:
            r = await self.model(model="gpt-4o-mini", prompt=state["question"], system="Answer in one line.")
            assert r.model == "gpt-4o-mini" and r.usage["output_tokens"] == 4
            return {"answer": r.text}

    result = await Ask().run({"question": "what is jamjet"})
    assert result.state["answer"] == "echo: what is jamjet"
    (request,) = model_server.requests
    assert request.path == "/v1/chat/completions" and request.system == "Answer in one line."
    assert Ask.document()["workflow"]["state_schema"] == {"question": "str", "answer": "str"}


def test_sync_nodes_routing_and_a_start_node_that_is_not_the_first(model_server: ModelServer) -> None:
    @workflow(state={"n": int, "log": list, "verdict": str})
    class Loop:
        @node(end=True)
        def finish(self, state: State) -> State:
            return {"log": state["log"] + ["finish"], "verdict": self.model_sync(model="gpt-4o-mini", prompt="done").text}

        @node(start=True, next={"finish": lambda s: s.n >= 3, "step": lambda s: s.n < 3})
        def step(self, state: State) -> State:
            return {"n": state["n"] + 1, "log": state["log"] + [f"step {state['n'] + 1}"]}

    doc = Loop.document()
    assert doc["workflow"]["id"] == "loop" and doc["workflow"]["start"] == "step"
    assert "next" not in doc["nodes"]["finish"]
    result = Loop().run_sync({"n": 0, "log": []})
    assert result.state["log"] == ["step 1", "step 2", "step 3", "finish"]
    assert result.state["verdict"] == "echo: done"
    assert "_route" not in result.state


def test_the_instance_that_runs_it_answers_its_nodes() -> None:
    @workflow(id="greeter")
    class Greeter:
        def __init__(self, greeting: str) -> None:
            self.greeting = greeting

        @node
        def greet(self, state: State) -> State:
            return {"line": f"{self.greeting}, {state['name']}!"}

    assert Greeter("Hello").run_sync({"name": "Ada"}).state["line"] == "Hello, Ada!"
    assert Greeter("Hi").run_sync({"name": "Lin"}).state["line"] == "Hi, Lin!"


def test_bad_input_gets_clear_errors() -> None:
    @workflow(id="strict", state={"x": int, "y": int})
    class Strict:
        @node
        def bump(self, state: State) -> State:
            if state["x"] < 0:
                return {"z": 1}
            if state["x"] == 0:
                return ["not", "a", "dict"]  # type: ignore[return-value]
            return {"y": state["x"] + 1}

    with pytest.raises(jamjet.ValidationError, match=r"the initial state has `w`, which its state does not declare"):
        Strict().run_sync({"x": 1, "w": 2})
    with pytest.raises(jamjet.StepFailed, match=r"node `bump`: returned `z`, which the state of `strict` does not") as e:
        Strict().run_sync({"x": -1})
    assert e.value.node == "bump"
    with pytest.raises(jamjet.StepFailed, match=r"node `bump`: returned list .*a node returns a dict"):
        Strict().run_sync({"x": 0})
    with pytest.raises(jamjet.ValidationError, match=r"state key `x` must be int, got a string"):
        Strict().run_sync({"x": "text"})  # the runtime checks the types
    assert Strict().run_sync({"x": 4}).state["y"] == 5

    with pytest.raises(jamjet.ValidationError, match=r"has no @node methods"):

        @workflow()
        class Empty:
            pass

    with pytest.raises(jamjet.ValidationError, match=r"2 nodes are marked start=True"):

        @workflow()
        class TwoStarts:
            @node(start=True)
            def a(self, state: State) -> None: ...

            @node(start=True)
            def b(self, state: State) -> None: ...

    with pytest.raises(jamjet.ValidationError, match=r"next= names `nowhere`"):

        @workflow()
        class Lost:
            @node(next="nowhere")
            def a(self, state: State) -> None: ...

        Lost.compile()


def test_a_model_call_outside_a_node_or_of_an_unknown_model_is_refused(model_server: ModelServer) -> None:
    @workflow(id="models")
    class Models:
        @node
        async def ask(self, state: State) -> State:
            r = await self.model(model=state["model"], prompt="hi")
            return {"out": r.text}

    with pytest.raises(jamjet.JamjetError, match=r"durable call inside a node of `models`"):
        Models().model_sync(model="gpt-4o-mini", prompt="hi")
    with pytest.raises(jamjet.StepFailed, match=r"unknown model `llama3.2`") as e:
        Models().run_sync({"model": "llama3.2"})
    assert e.value.node == "ask"
    assert model_server.requests == []


def test_models_name_a_local_server(model_server: ModelServer) -> None:
    @workflow(id="local", models={"local": {"provider": "openai", "model": "llama3.2", "base_url": model_server.base_url}})
    class Local:
        @node
        async def ask(self, state: State) -> State:
            return {"out": (await self.model(model="local", prompt=state["q"])).text}

    assert Local().run_sync({"q": "hi"}).state["out"] == "echo: hi"
    (request,) = model_server.requests
    assert request.model == "llama3.2" and "authorization" not in request.headers


_KILLED_SCRIPT = """
import os, sys, time
from jamjet import workflow, node, State

MARK = sys.argv[1]

@workflow(id="durable-report", store=sys.argv[2])
class Report:
    @node
    async def draft(self, state: State) -> State:
        r = await self.model(model="gpt-4o-mini", prompt="draft about " + state["topic"])
        return {"draft": r.text}

    @node
    async def review(self, state: State) -> State:
        r = await self.model(model="claude-haiku-4-5", prompt="review: " + state["draft"])
        if not os.path.exists(MARK):
            open(MARK, "w").write("reviewed once")
            time.sleep(120)  # killed here, after the review's model call is journaled
        return {"review": r.text}

result = Report().run_sync({"topic": "durability"}, key="report-1")
print(result.execution_id, result.state["review"], result.steps_executed, flush=True)
"""


def test_a_rerun_after_kill_9_does_not_call_the_model_again(tmp_path: Path, model_server: ModelServer) -> None:
    script = tmp_path / "report.py"
    script.write_text(_KILLED_SCRIPT)
    mark, store = tmp_path / "mark", tmp_path / ".jamjet"
    env = child_env()
    first = subprocess.Popen([sys.executable, str(script), str(mark), str(store)], env=env, stdout=subprocess.PIPE)
    try:
        for _ in range(600):  # up to 60 s
            if mark.exists() or first.poll() is not None:
                break
            time.sleep(0.1)
        assert mark.exists(), "the first run reached the review"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
        if first.stdout is not None:
            first.stdout.close()
    assert len(model_server.requests) == 2
    second = subprocess.run(
        [sys.executable, str(script), str(mark), str(store)], env=env, capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0, second.stderr
    execution, review = second.stdout.split(" ", 1)[0], second.stdout.split(" ", 1)[1].rsplit(" ", 1)[0]
    assert review == "echo: review: echo: draft about durability"
    # Neither call was sent again: each key once.
    assert len(model_server.requests) == 2
    assert model_server.count(f"{execution}/draft/1") == 1
    assert model_server.count(f"{execution}/review/1") == 1


def test_same_class_compiles_to_the_same_document_as_json() -> None:
    @workflow(id="doc", version="1.2.0", state={"a": int})
    class Doc:
        @node
        def one(self, state: State) -> State:
            return {"a": state["a"] + 1}

    text = Doc.to_yaml()
    assert json.loads(text) == Doc.document()
    assert Doc.compile().id == "doc" and Doc.compile().version == "1.2.0"
    assert jamjet.workflow_of(Doc).name == "doc"


def test_inference_reads_returned_names_and_attributes() -> None:
    @workflow(id="infer")
    class Infer:
        @node
        def a(self, s: State) -> State:
            out = {"left": s.get("seed")}
            return out

        @node
        def b(self, s: State) -> State:
            return dict(right=s.left, both=s["seed"])

    assert set(Infer.document()["workflow"]["state_schema"]) == {"seed", "left", "right", "both"}
    assert Infer().run_sync({"seed": 1}).state == {"seed": 1, "left": 1, "right": 1, "both": 1}


def test_a_node_defined_in_a_string_needs_declared_keys() -> None:
    ns: dict[str, Any] = {"node": node, "State": State}
    exec(textwrap.dedent("""
        class Made:
            @node
            def a(self, state):
                return {"x": 1}
    """), ns)
    with pytest.raises(jamjet.ValidationError, match=r"cannot read the source of node `a`.*state="):
        workflow(id="made")(ns["Made"])
    made = workflow(id="made", state={"x": int})(ns["Made"])
    assert made().run_sync({}).state == {"x": 1}
