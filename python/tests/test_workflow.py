"""The Workflow API: steps in order, routing, sync and async steps, results."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from pydantic import BaseModel

import jamjet
from jamjet import Workflow


class State(BaseModel):
    question: str
    search_results: str = ""
    answer: str = ""


def test_the_documents_first_example_runs_as_written() -> None:
    wf = Workflow("research-agent")

    @wf.state
    class AgentState(State):
        pass

    @wf.step
    async def search(state: AgentState) -> AgentState:
        return state.model_copy(update={"search_results": f"[results for: {state.question}]"})

    @wf.step
    async def synthesize(state: AgentState) -> AgentState:
        return state.model_copy(update={"answer": f"From {state.search_results}: many."})

    result = wf.run_sync(AgentState(question="Latest AI agent frameworks?"))
    assert result.state.answer == "From [results for: Latest AI agent frameworks?]: many."
    assert isinstance(result.state, AgentState)
    assert result.steps_executed == 2
    assert result.total_duration_us > 0
    assert result.execution_id.startswith("exec_")
    assert result.status == "completed"
    kinds = [next(iter(r["event"])) if isinstance(r["event"], dict) else r["event"] for r in result.events]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionCompleted"
    assert result.usage == {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0}


def test_sync_steps_run_in_a_thread_and_a_step_may_return_a_patch() -> None:
    wf = Workflow("sync-steps", state=State)
    seen: list[str] = []

    @wf.step
    def first(state: State) -> dict:
        seen.append(threading.current_thread().name)
        return {"search_results": "r"}

    @wf.step
    def second(state: State) -> State:
        return state.model_copy(update={"answer": state.search_results * 2})

    result = wf.run_sync(State(question="q"))
    assert result.state.answer == "rr"
    assert seen and seen[0] != threading.main_thread().name


def test_routing_follows_the_first_condition_that_holds_on_the_new_state() -> None:
    class Draft(BaseModel):
        tries: int = 0
        ok: bool = False
        text: str = ""

    wf = Workflow("routed", state=Draft)

    @wf.step(next={"publish": lambda s: s.ok, "draft": lambda s: not s.ok})
    def draft(s: Draft) -> Draft:
        return s.model_copy(update={"tries": s.tries + 1, "ok": s.tries + 1 >= 3})

    @wf.step
    def publish(s: Draft) -> Draft:
        return s.model_copy(update={"text": f"published after {s.tries}"})

    result = wf.run_sync(Draft())
    assert result.state.text == "published after 3"
    assert result.steps_executed >= 4


def test_a_routed_step_naming_no_step_is_refused_with_its_name() -> None:
    wf = Workflow("bad-route", state=State)

    @wf.step(next={"nowhere": lambda s: True})
    def a(s: State) -> State:
        return s

    with pytest.raises(jamjet.ValidationError, match="step `a`: next= names `nowhere`"):
        wf.run_sync(State(question="q"))


async def test_two_hundred_workflows_at_once_from_asyncio() -> None:
    wf = Workflow("many", state=State)

    @wf.step
    async def search(state: State) -> State:
        await asyncio.sleep(0.01)
        return state.model_copy(update={"search_results": state.question})

    @wf.step
    def answer(state: State) -> State:
        return state.model_copy(update={"answer": state.search_results.upper()})

    results = await asyncio.gather(*(wf.run(State(question=f"q{i}")) for i in range(200)))
    assert [r.state.answer for r in results] == [f"Q{i}" for i in range(200)]
    assert len({r.execution_id for r in results}) == 200


async def test_the_event_loop_is_free_while_the_runtime_works() -> None:
    # The step waits until the caller's loop has ticked five times while the
    # run is awaited: were the loop blocked by the run, it never would.
    ticked = threading.Event()
    wf = Workflow("free-loop", state=State)

    @wf.step
    def wait_for_the_loop(state: State) -> dict:
        return {"answer": "free" if ticked.wait(30) else "blocked"}

    async def tick() -> None:
        for _ in range(5):
            await asyncio.sleep(0.01)
        ticked.set()

    result, _ = await asyncio.gather(wf.run(State(question="q")), tick())
    assert result.state.answer == "free"


def test_compile_gives_the_yaml_document_and_the_ir() -> None:
    wf = Workflow("compiled", state=State)

    @wf.step(retry=3, timeout=5)
    def only(s: State) -> State:
        return s

    compiled = wf.compile()
    assert compiled.id == "compiled" and compiled.version == "0.1.0"
    doc = json.loads(compiled.source)
    assert doc["nodes"]["only"] == {
        "type": "function",
        "function": "compiled/only",
        "retry": {
            "max_attempts": 3,
            "delay_ms": 100,
            "backoff": "exponential",
            "retry_on": ["function", "timeout", "rate_limited", "server_error", "connection", "panic"],
        },
        "timeout_ms": 5000,
    }
    ir = json.loads(compiled.ir_json())
    assert ir["id"] == "compiled" and "only" in ir["nodes"]
    # The same document compiled as a file gives the same IR.
    assert jamjet._native.compile(compiled.source, "x.yaml").content_hash() == compiled.content_hash()


def test_a_step_over_its_timeout_fails_naming_the_step() -> None:
    wf = Workflow("timed", state=State)

    @wf.step(timeout=0.2)
    async def slow(state: State) -> State:
        await asyncio.sleep(5)
        return state

    with pytest.raises(jamjet.StepFailed) as e:
        wf.run_sync(State(question="q"))
    assert e.value.node == "slow"
    assert "timed out" in str(e.value) or "timeout" in str(e.value)


def test_a_state_a_step_returns_is_validated_with_the_steps_name() -> None:
    class Typed(BaseModel):
        n: int = 0

    wf = Workflow("typed", state=Typed)

    calls = 0

    @wf.step(retry=3)
    def bad(state: Typed) -> dict:
        nonlocal calls
        calls += 1
        return {"n": "not a number"}

    with pytest.raises(jamjet.StepFailed) as e:
        wf.run_sync(Typed())
    assert e.value.node == "bad"
    text = str(e.value)
    assert "step `bad`" in text and "does not validate as `Typed`" in text and "n\n" in text
    # A state that does not validate is the step's fault: not retried.
    assert calls == 1


def test_a_step_declared_after_a_run_is_run_by_the_next_run() -> None:
    wf = Workflow("growing", state=State)

    @wf.step
    def first(s: State) -> dict:
        return {"search_results": "1"}

    assert wf.run_sync(State(question="q")).state.answer == ""

    @wf.step
    def second(s: State) -> dict:
        return {"answer": s.search_results + "2"}

    assert wf.run_sync(State(question="q")).state.answer == "12"
