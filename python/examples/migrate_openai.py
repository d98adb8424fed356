"""Migrating a raw OpenAI SDK loop to a JamJet workflow: the loop's state
becomes a Pydantic model, its phases `@wf.step` functions (the same
`openai` client calls inside), and `wf.run_sync(State(...))` runs it.

    python python/examples/migrate_openai.py

It runs offline: `offline()` starts a loopback OpenAI-compatible server
(jamjet.testing.ModelServer) and points OPENAI_BASE_URL at it, which the
`openai` package reads. Against OpenAI itself, leave `offline()` out and
set OPENAI_API_KEY. Both versions run, and give the same answer.
"""

from __future__ import annotations

import json
import os
from typing import Any

from openai import OpenAI
from pydantic import BaseModel

import jamjet
from jamjet import Workflow

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "web_search",
            "description": "Search the web for current information",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        },
    }
]
SYSTEM = "You are a helpful research assistant."


def web_search(query: str) -> str:
    return f"[results for: {query}]"  # your real search here


# ----- before: the raw loop -----


def run_agent(question: str) -> str:
    client = OpenAI()
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    while True:
        resp = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
        msg = resp.choices[0].message
        if not msg.tool_calls:
            return msg.content or ""
        messages.append(msg.model_dump(exclude_none=True))
        for tc in msg.tool_calls:
            args = json.loads(tc.function.arguments)
            messages.append({"role": "tool", "tool_call_id": tc.id, "content": web_search(**args)})


# ----- after: the same loop as a workflow -----


class State(BaseModel):
    question: str
    messages: list[dict] = []
    tool_calls: list[dict] = []
    answer: str = ""


wf = Workflow("research-agent")


@wf.state
class AgentState(State):
    pass


@wf.step
def start(state: AgentState) -> AgentState:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": state.question}]
    return state.model_copy(update={"messages": messages})


@wf.step(next={"act": lambda s: bool(s.tool_calls), "finish": lambda s: not s.tool_calls})
def think(state: AgentState) -> AgentState:
    # The step's idempotency key is the same when it is retried or resumed:
    # send it, and a provider (or proxy) that honours it answers a repeat
    # once. A completed step never runs again.
    key = jamjet.current_step().idempotency_key
    resp = OpenAI().chat.completions.create(
        model="gpt-4o-mini",
        messages=state.messages,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        extra_headers={"Idempotency-Key": key},
    )
    msg = resp.choices[0].message
    if not msg.tool_calls:
        return state.model_copy(update={"answer": msg.content or "", "tool_calls": []})
    turn = msg.model_dump(exclude_none=True)
    return state.model_copy(update={"messages": [*state.messages, turn], "tool_calls": turn["tool_calls"]})


@wf.step(next="think")
def act(state: AgentState) -> AgentState:
    results = [
        {"role": "tool", "tool_call_id": tc["id"], "content": web_search(**json.loads(tc["function"]["arguments"]))}
        for tc in state.tool_calls
    ]
    return state.model_copy(update={"messages": [*state.messages, *results], "tool_calls": []})


@wf.step
def finish(state: AgentState) -> AgentState:
    return state


def offline() -> Any:
    """Start the loopback model server and point the environment at it."""
    from jamjet.testing import ModelServer

    server = ModelServer()
    os.environ["OPENAI_BASE_URL"] = server.base_url
    os.environ["OPENAI_API_KEY"] = "sk-offline"
    server.reply_tools([("web_search", {"query": "AI agent frameworks 2025"})], when=lambda r: r.turn == 1)
    server.reply(lambda r: f"From {r.last_user.removeprefix('tool said: ')}: many.")
    return server


def main() -> None:
    server = offline()
    question = "Latest AI agent frameworks?"
    print("raw loop:", run_agent(question))
    result = wf.run_sync(AgentState(question=question))
    print("workflow:", result.state.answer)
    print(f"Ran {result.steps_executed} steps in {result.total_duration_us / 1000:.1f}ms")
    server.close()


if __name__ == "__main__":
    main()
