"""The migration guide's example (python/examples/migrate_openai.py): a raw
OpenAI SDK loop and the same loop as `@wf.step` functions, both with the
real `openai` package pointed at the loopback server through
OPENAI_BASE_URL, give the same answer; the workflow's model calls carry
their steps' idempotency keys, and a durable run of it resumes without
sending a completed call again."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from jamjet import Workflow
from jamjet.testing import ModelServer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "migrate_openai.py"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("migrate_openai_example", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def script(server: ModelServer) -> None:
    server.reply_tools([("web_search", {"query": "agent frameworks"})], when=lambda r: r.turn == 1)
    server.reply(lambda r: f"From {r.last_user.removeprefix('tool said: ')}: many.")


def plain(messages: list[dict]) -> str:
    """The messages without the server's call ids (its counter differs per request)."""
    return re.sub(r'"(id|tool_call_id)": "call_\d+_\d+"', '"id": "-"', json.dumps(messages, sort_keys=True))


def test_the_raw_loop_and_the_workflow_give_the_same_answer(example: ModuleType, model_server: ModelServer) -> None:
    script(model_server)
    question = "Latest AI agent frameworks?"
    raw = example.run_agent(question)
    assert raw == "From [results for: agent frameworks]: many."
    raw_requests = len(model_server.requests)
    assert raw_requests == 2

    result = example.wf.run_sync(example.AgentState(question=question))
    assert result.state.answer == raw
    assert isinstance(result.state, example.AgentState)
    # The same conversation reached the model: system, user, tool call, tool result.
    loop_last, wf_last = model_server.requests[raw_requests - 1], model_server.requests[-1]
    assert plain(wf_last.body["messages"]) == plain(loop_last.body["messages"])
    # Each model call carried its step's idempotency key.
    keys = [r.idempotency_key for r in model_server.requests[raw_requests:]]
    assert keys == [f"{result.execution_id}/think/1", f"{result.execution_id}/think/2"]
    assert model_server.requests[-1].headers["user-agent"].startswith("OpenAI/Python")


def test_the_migrated_workflow_is_durable_with_a_store(example: ModuleType, model_server: ModelServer, store: str) -> None:
    script(model_server)
    durable = Workflow("research-agent-durable", store=store, state=example.AgentState)
    for name in ("start", "think", "act", "finish"):
        step = next(n for n in example.wf._nodes if n.name == name)
        durable.step(step.fn, name=name, next=step.routes and {k: v for k, v in step.routes.items()})
    first = durable.run_sync(example.AgentState(question="q"), key="q-1")
    again = durable.run_sync(example.AgentState(question="q"), key="q-1")
    assert again.execution_id == first.execution_id and again.state == first.state
    assert len(model_server.requests) == 2  # the completed run sent nothing again
