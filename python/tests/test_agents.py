"""Agents from Python: @tool schemas, agents inside steps (journaled),
stand-alone runs, strategies, budgets, approvals, models by name, MCP
servers as tools, and a Python agent as a YAML workflow's tool. Every
model is the loopback ModelServer."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Optional

import pytest
from pydantic import BaseModel

import jamjet
from jamjet import Agent, MCPServer, Model, Workflow, tool
from jamjet.testing import ModelServer

SCRIPTS = Path(__file__).parent / "scripts"


class Research(BaseModel):
    topic: str
    research: str = ""
    article: str = ""


class Filter(BaseModel):
    """Which results to keep."""

    site: str
    newest_first: bool = True


def keys_sent(server: ModelServer) -> list[str]:
    return [r.idempotency_key or "" for r in server.requests]


# ----- @tool -----


def test_a_tools_json_schema_comes_from_its_hints_and_docstring() -> None:
    @tool
    def search_web(query: str, limit: int = 5, tags: Optional[list[str]] = None, only: Filter | None = None) -> dict:
        """Search the web for information.

        Args:
            query: What to look for.
            limit: How many results
                to give back.
            tags: Only results with these tags.
        """
        return {"query": query, "limit": limit}

    assert search_web.name == "search_web"
    assert search_web.description == "Search the web for information."
    p = search_web.parameters
    assert p["type"] == "object"
    assert p["required"] == ["query"]
    assert p["properties"]["query"] == {"type": "string", "description": "What to look for."}
    assert p["properties"]["limit"] == {
        "type": "integer",
        "description": "How many results to give back.",
        "default": 5,
    }
    assert p["properties"]["tags"]["anyOf"][0] == {"type": "array", "items": {"type": "string"}}
    assert p["properties"]["tags"]["description"] == "Only results with these tags."
    assert p["properties"]["only"]["anyOf"][0] == {"$ref": "#/$defs/Filter"}
    assert p["$defs"]["Filter"]["properties"]["site"] == {"title": "Site", "type": "string"}
    # It stays the function it was.
    assert search_web("agents", limit=2) == {"query": "agents", "limit": 2}

    @tool(name="lookup", description="Look a record up.")
    async def do_lookup(record_id: str) -> str:
        return record_id

    assert (do_lookup.name, do_lookup.description) == ("lookup", "Look a record up.")
    assert asyncio.run(do_lookup("r-1")) == "r-1"


def test_a_plain_function_is_not_a_tool_and_bad_names_are_refused() -> None:
    def search(query: str) -> str:
        return query

    with pytest.raises(TypeError, match="decorate it with @jamjet.tool"):
        Agent("a", model="gpt-4o-mini", tools=[search])
    with pytest.raises(jamjet.ValidationError, match="agent name"):
        Agent("no spaces", model="gpt-4o-mini")
    with pytest.raises(jamjet.ValidationError, match="unknown strategy `ponder`"):
        Agent("a", model="gpt-4o-mini", strategy="ponder")
    with pytest.raises(jamjet.ValidationError, match="max_iterations must be an integer of at least 1"):
        Agent("a", model="gpt-4o-mini", max_iterations=0)
    with pytest.raises(jamjet.ValidationError, match="names no tools"):
        Agent("a", model="gpt-4o-mini", tools=[MCPServer("shop", command=["python3", "x.py"])])


def test_tool_arguments_are_validated_and_a_mismatch_is_told_to_the_model(model_server: ModelServer) -> None:
    seen: list[object] = []

    @tool
    def fetch(only: Filter, pages: int) -> str:
        """Fetch pages."""
        seen.append((only, pages))
        return f"{pages} pages of {only.site}"

    model_server.reply_tools([("fetch", {"only": {"site": "a.example"}, "pages": "many"})], when=lambda r: r.turn == 1)
    model_server.reply_tools([("fetch", {"only": {"site": "a.example"}, "pages": "3"})], when=lambda r: r.turn == 2)
    agent = Agent("fetcher", model="gpt-4o-mini", tools=[fetch])
    result = agent.run_sync("Fetch a.example")
    first, second = result.tool_calls
    assert first.result.startswith("error: ") and "`pages`" in first.result, first.result
    assert second.result == "3 pages of a.example"
    # Validated into the hinted types: a model, an int.
    assert seen == [(Filter(site="a.example"), 3)]
    assert result.output == "tool said: 3 pages of a.example"


# ----- stand-alone runs -----


def test_a_standalone_run_gives_output_tool_calls_and_usage(model_server: ModelServer) -> None:
    runs: list[str] = []

    @tool
    async def search_web(query: str) -> dict:
        """Search the web for information."""
        runs.append(query)
        return {"hits": [f"{query} one", f"{query} two"]}

    model_server.reply_tools([("search_web", {"query": "agents"})], when=lambda r: r.turn == 1)
    researcher = Agent(
        "researcher",
        model="gpt-4o-mini",
        tools=[search_web],
        instructions="Find accurate information on the given topic.",
        strategy="react",
        max_iterations=5,
    )

    async def main() -> jamjet.AgentResult:
        return await researcher.run("Research: agents")

    result = asyncio.run(main())
    assert result.status == "completed"
    assert result.output == 'tool said: {"hits":["agents one","agents two"]}'
    assert runs == ["agents"]
    [call] = result.tool_calls
    assert (call.name, call.arguments) == ("search_web", {"query": "agents"})
    assert json.loads(call.result) == {"hits": ["agents one", "agents two"]}
    assert result.usage["input_tokens"] > 0 and result.usage["output_tokens"] > 0
    assert result.usage["cost_usd"] > 0  # gpt-4o-mini has a built-in price
    assert [c["kind"] for c in result.calls] == ["model", "tool"]
    # The model was offered the tool, with its schema, and told the instructions.
    first = model_server.requests[0]
    assert first.system == "Find accurate information on the given topic."
    offered = first.body["tools"][0]["function"]
    assert offered["name"] == "search_web" and offered["parameters"]["required"] == ["query"]
    assert first.headers["authorization"] == "Bearer sk-test"

    # run_sync, and a key: the second run with the key attaches to the first.
    again = researcher.run_sync("Research: agents", key="research-1")
    same = researcher.run_sync("Research: agents", key="research-1")
    assert same.execution_id == again.execution_id and same.output == again.output
    assert runs == ["agents", "agents"]


def test_output_type_gives_a_typed_answer(model_server: ModelServer) -> None:
    class Verdict(BaseModel):
        ok: bool
        reason: str

    model_server.reply("no JSON here", when=lambda r: "Again" in r.last_user)
    model_server.reply('{"ok": true, "reason": "it holds"}')
    judge = Agent("judge", model="gpt-4o-mini", output_type=Verdict)
    result = judge.run_sync("Does it hold?")
    assert result.output == Verdict(ok=True, reason="it holds")
    assert json.loads(result.text) == {"ok": True, "reason": "it holds"}

    with pytest.raises(jamjet.AgentFailed) as e:
        judge.run_sync("Again?")
    assert e.value.error_class == "invalid_output"
    assert "agent `judge`" in str(e.value)


# ----- strategies -----


def test_strategies_react_critic_plan_and_execute_and_reflection(model_server: ModelServer) -> None:
    s = model_server
    s.reply('{"score": 2, "reasons": ["too short"]}', when=lambda r: "Score the answer" in r.last_user, times=1)
    s.reply('{"score": 5, "reasons": []}', when=lambda r: "Score the answer" in r.last_user)
    s.reply("a longer draft", when=lambda r: "Revise your answer" in r.last_user)
    s.reply('["look it up", "write it down"]', when=lambda r: "Make a plan" in r.last_user)
    s.reply(lambda r: "did: " + r.last_user.split("Now carry out step ")[1].split("\n")[0],
            when=lambda r: "Now carry out step" in r.last_user)
    s.reply("the synthesis", when=lambda r: "Write the final answer to the task" in r.last_user)
    s.reply("my reflection", when=lambda r: r.last_user.startswith("Reflect on your answer"))
    s.reply("the final answer", when=lambda r: "Here is a reflection" in r.last_user)

    critic = Agent("writer", model="gpt-4o-mini", strategy="critic", min_score=4, max_iterations=3)
    r = critic.run_sync("Write about agents")
    assert r.output == "a longer draft"
    assert [c["kind"] for c in r.calls] == ["model", "critique", "model", "critique"]

    planner = Agent("planner", model="gpt-4o-mini", strategy="plan-and-execute", max_iterations=4)
    r = planner.run_sync("Find and record")
    assert r.output == "the synthesis"
    kinds = [c["kind"] for c in r.calls]
    # A stand-alone run's last reply ends its node: the node's completion journals it, not a call.
    assert kinds == ["plan", "model", "model"], kinds
    assert r.calls[1]["response"]["choices"][0]["message"]["content"] == "did: 1: look it up"

    reflective = Agent("thinker", model="gpt-4o-mini", strategy="reflection")
    r = reflective.run_sync("Think")
    assert r.output == "the final answer"
    assert [c["kind"] for c in r.calls] == ["model", "reflect"]


def test_consensus_and_debate_run_their_agents(model_server: ModelServer) -> None:
    s = model_server
    s.reply("merged", when=lambda r: "Independent answers" in r.last_user)
    s.reply("decided", when=lambda r: r.last_user.startswith("Debate topic") and "Decide the question" in r.last_user)
    s.reply(lambda r: f"argument from {r.system}", when=lambda r: "Give your argument" in r.last_user)
    r = Agent("panel", model="gpt-4o-mini", strategy="consensus", samples=2).run_sync("Pick one")
    assert r.output == "merged"
    pro = Agent("pro", model="gpt-4o-mini", instructions="pro")
    con = Agent("con", model="gpt-4o-mini", instructions="con")
    r = Agent("moot", model="gpt-4o-mini", strategy="debate", debaters=[pro, con], rounds=1).run_sync("Tabs?")
    assert r.output == "decided"
    said = [c["response"]["choices"][0]["message"]["content"] for c in r.calls if c["name"] in ("pro", "con")]
    assert said == ["argument from pro", "argument from con"]


# ----- budgets, models -----


def test_a_crossed_budget_fails_the_agent_as_budget_exceeded(model_server: ModelServer) -> None:
    model_server.reply("word " * 50)
    thrifty = Agent("thrifty", model="gpt-4o-mini", max_tokens=10)
    with pytest.raises(jamjet.AgentFailed) as e:
        thrifty.run_sync("Say a lot")
    assert e.value.error_class == "budget_exceeded"
    assert "thrifty" in str(e.value) and "max_tokens" in str(e.value)

    wf = Workflow("thrift", state=Research)

    @wf.step(retry=3)
    async def research(state: Research) -> Research:
        r = await thrifty.run(state.topic)
        return state.model_copy(update={"research": r.text})

    with pytest.raises(jamjet.StepFailed) as e:
        wf.run_sync(Research(topic="Say a lot"))
    assert e.value.node == "research"
    assert "agent `thrifty`" in str(e.value) and "max_tokens" in str(e.value)
    # Spent is spent: the step fails as budget_exceeded, which no policy retries.
    failed = [r["event"]["NodeFailed"] for r in wf.runtime.events(e.value.execution_id) if "NodeFailed" in r["event"]]
    assert [(f["attempt"], f["class"]) for f in failed] == [(1, "BudgetExceeded")]


def test_an_unknown_model_names_the_agent_and_the_model() -> None:
    with pytest.raises(jamjet.UnknownModel) as e:
        Agent("scout", model="llama3.2")
    message = str(e.value)
    assert "agent `scout`" in message and "`llama3.2`" in message and "openai/llama3.2" in message
    with pytest.raises(jamjet.UnknownModel, match="agent `scout` \\(judge=\\): unknown model `mystery`"):
        Agent("scout", model="gpt-4o-mini", strategy="consensus", judge="mystery")
    with pytest.raises(jamjet.ValidationError, match="unknown provider `ollama`"):
        Model("llama3.2", provider="ollama")


def test_models_by_name_and_explicit(model_server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # "claude-*" goes to Anthropic's wire format through ANTHROPIC_BASE_URL.
    r = Agent("a", model="claude-sonnet-4-6").run_sync("hello")
    assert r.output == "echo: hello"
    req = model_server.requests[-1]
    assert req.path == "/v1/messages" and req.model == "claude-sonnet-4-6"
    assert req.headers["x-api-key"] == "sk-ant-test"
    # "provider/model" names the provider of any model id.
    r = Agent("b", model="openai/llama3.2").run_sync("hi")
    assert (model_server.requests[-1].path, model_server.requests[-1].model) == ("/v1/chat/completions", "llama3.2")
    # An explicit Model: its own base url and key variable.
    monkeypatch.setenv("LOCAL_KEY", "sk-local")
    local = Model(provider="openai", model="qwen3", base_url=model_server.base_url, api_key_env="LOCAL_KEY")
    r = Agent("c", model=local).run_sync("hey")
    assert r.output == "echo: hey"
    assert model_server.requests[-1].headers["authorization"] == "Bearer sk-local"
    # The workflow keeps the variables' names, never their values.
    assert Model.named("gpt-4o-mini", where="x").entry() == {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": "${OPENAI_BASE_URL:-https://api.openai.com/v1}",
        "api_key_env": "OPENAI_API_KEY",
    }
    # Without the key, the call says which variable is missing.
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(jamjet.AgentFailed, match="OPENAI_API_KEY"):
        Agent("d", model="gpt-4o-mini").run_sync("hi")


# ----- inside a step -----


def test_an_agent_inside_a_step_journals_every_call_and_a_retry_reads_them_back(
    model_server: ModelServer, store: str
) -> None:
    tool_runs: list[str] = []
    attempts: list[int] = []
    seen_calls: list[list[tuple[str, str]]] = []

    @tool
    def search_notes(query: str) -> str:
        """Search the notes."""
        tool_runs.append(query)
        return f"notes on {query}"

    model_server.reply_tools([("search_notes", {"query": "journals"})], when=lambda r: r.turn == 1)
    researcher = Agent("researcher", model="gpt-4o-mini", tools=[search_notes])
    wf = Workflow("journaled", state=Research, store=store)

    @wf.step(retry=2)
    async def research(state: Research) -> Research:
        attempts.append(jamjet.current_step().attempt)
        r = await researcher.run(f"Research: {state.topic}")
        seen_calls.append([(c.name, c.result) for c in r.tool_calls])
        if len(attempts) == 1:
            raise RuntimeError("the disk was full")
        return state.model_copy(update={"research": r.output})

    result = wf.run_sync(Research(topic="journals"), key="journaled-1")
    assert result.state.research == "tool said: notes on journals"
    assert attempts == [1, 2]
    # The tool ran once, each model call was sent once; the retry read them back.
    assert tool_runs == ["journals"]
    visit = f"{result.execution_id}/research/1"
    assert keys_sent(model_server) == [visit, f"{visit}/call/3"]
    assert [model_server.count(k) for k in (visit, f"{visit}/call/3")] == [1, 1]
    assert seen_calls == [[("search_notes", "notes on journals")]] * 2
    calls = [e["event"]["Call"] for e in result.events if isinstance(e["event"], dict) and "Call" in e["event"]]
    assert [(c["attempt"], c["call"]["n"], c["call"]["kind"], c["call"]["name"]) for c in calls] == [
        (1, 1, "model", "researcher"),
        (1, 2, "tool", "search_notes"),
        (1, 3, "model", "researcher"),
    ]
    # The workflow declared the agent it found in the step, and its model.
    doc = wf.document()
    assert doc["agents"]["researcher"]["tools"] == ["search_notes"]
    assert doc["models"]["gpt-4o-mini"]["base_url"] == "${OPENAI_BASE_URL:-https://api.openai.com/v1}"

    # Run again with the key: the execution is done, nothing is sent again.
    again = wf.run_sync(Research(topic="journals"), key="journaled-1")
    assert again.execution_id == result.execution_id and again.state == result.state
    assert len(model_server.requests) == 2 and tool_runs == ["journals"]


def test_sync_steps_run_agents_with_run_sync(model_server: ModelServer) -> None:
    helper = Agent("helper", model="gpt-4o-mini")
    wf = Workflow("sync-agent", state=Research)

    @wf.step
    def research(state: Research) -> Research:
        return state.model_copy(update={"research": helper.run_sync(state.topic).output})

    assert wf.run_sync(Research(topic="sync")).state.research == "echo: sync"
    assert model_server.requests[0].idempotency_key.endswith("/research/1")


def test_an_agent_a_step_reaches_indirectly_must_be_declared(model_server: ModelServer) -> None:
    hidden = {"agent": Agent("hidden", model="gpt-4o-mini")}

    def ask(text: str) -> str:
        return hidden["agent"].run_sync(text).output

    wf = Workflow("indirect", state=Research)

    @wf.step
    def research(state: Research) -> Research:
        return state.model_copy(update={"research": ask(state.topic)})

    with pytest.raises(jamjet.StepFailed) as e:
        wf.run_sync(Research(topic="t"))
    assert "step `research` ran agent `hidden`, which its workflow does not declare" in str(e.value)
    assert "agents=[hidden]" in str(e.value)

    declared = Workflow("indirect-declared", state=Research, agents=[hidden["agent"]])
    declared.step(research)
    assert declared.run_sync(Research(topic="t")).state.research == "echo: t"


def test_an_agent_calling_an_agent_inside_a_step_journals_both(model_server: ModelServer) -> None:
    model_server.reply_tools(
        [("expert", {"message": "what is a journal?"})], when=lambda r: r.system == "lead" and r.turn == 1
    )
    model_server.reply(lambda r: "an append-only log", when=lambda r: r.system == "expert")
    model_server.reply(lambda r: r.last_user, when=lambda r: r.system == "lead" and r.turn == 2)
    expert = Agent("expert", model="gpt-4o-mini", instructions="expert")
    lead = Agent("lead", model="gpt-4o-mini", instructions="lead", tools=[expert], max_iterations=3)
    wf = Workflow("nested", state=Research)

    @wf.step
    async def research(state: Research) -> Research:
        return state.model_copy(update={"research": (await lead.run(state.topic)).output})

    result = wf.run_sync(Research(topic="journals"))
    assert "an append-only log" in result.state.research
    assert set(wf.document()["agents"]) == {"lead", "expert"}


# ----- approvals -----


def test_human_approval_parks_a_standalone_run_and_fails_a_step_clearly(model_server: ModelServer) -> None:
    refunds: list[float] = []

    @tool
    def refund(amount: float) -> str:
        """Refund an amount."""
        refunds.append(amount)
        return f"refunded {amount}"

    model_server.reply_tools([("refund", {"amount": 12.5})], when=lambda r: r.turn == 1)
    clerk = Agent("clerk", model="gpt-4o-mini", tools=[refund], human_approval=[refund])
    parked = clerk.run_sync("Refund order 7")
    assert parked.status == "waiting" and refunds == []
    [w] = parked.waiting
    assert w.kind == "approval" and w.call == "run.1" and "refund" in (w.prompt or "")
    done = asyncio.run(clerk.approve(parked, True, by="ada"))
    assert done.status == "completed" and refunds == [12.5]
    assert done.output == "tool said: refunded 12.5"

    wf = Workflow("clerk-step", state=Research)

    @wf.step
    async def research(state: Research) -> Research:
        return state.model_copy(update={"research": (await clerk.run(state.topic)).output})

    with pytest.raises(jamjet.StepFailed) as e:
        wf.run_sync(Research(topic="Refund order 8"))
    assert "a step cannot wait for one: put human_approval=True on the step" in str(e.value)
    assert "agent `clerk` asked for tool calls that need a person's decision (research.1)" in str(e.value)
    assert refunds == [12.5]


# ----- MCP -----


def test_an_mcp_servers_tools_are_an_agents_tools(model_server: ModelServer) -> None:
    if importlib.util.find_spec("mcp") is None:
        if os.environ.get("CI"):
            pytest.fail("the `mcp` package is missing from the test virtualenv")
        pytest.skip("needs the `mcp` package: bash python/test.sh installs python/requirements-test.txt")
    shop = MCPServer("shop", command=[sys.executable, str(SCRIPTS / "mcp_shop.py")], tools=["lookup_order"])
    model_server.reply_tools([("lookup_order", {"order_id": "A-17"})], when=lambda r: r.turn == 1)
    clerk = Agent("clerk", model="gpt-4o-mini", tools=[shop])
    result = clerk.run_sync("Where is order A-17?")
    [call] = result.tool_calls
    assert call.name == "lookup_order" and json.loads(call.result) == {"order_id": "A-17", "status": "shipped", "items": 2}
    assert result.output.startswith("tool said: ")
    offered = model_server.requests[0].body["tools"][0]["function"]
    assert offered["name"] == "lookup_order" and "order_id" in offered["parameters"]["properties"]


# ----- a Python agent as a YAML workflow's tool -----


def test_a_yaml_workflow_calls_a_python_agent_as_a_tool(model_server: ModelServer, tmp_path: Path) -> None:
    notes: list[str] = []

    @tool
    def read_notes(topic: str) -> str:
        """Read the notes on a topic."""
        notes.append(topic)
        return f"notes: {topic} are durable"

    researcher = Agent("researcher", model="gpt-4o-mini", tools=[read_notes], instructions="python researcher")
    path = tmp_path / "coordinator.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            workflow:
              id: coordinator
              version: 0.1.0
              state_schema: { question: str, answer: str }
              start: ask
            models:
              fast: { provider: openai, model: gpt-4o-mini, base_url: "${OPENAI_BASE_URL}", api_key_env: OPENAI_API_KEY }
            agents:
              coordinator:
                model: fast
                instructions: "yaml coordinator"
                tools: [researcher]
            nodes:
              ask: { type: agent, agent: coordinator, message: "{{ state.question }}", output_key: answer }
            """
        )
    )
    s = model_server
    s.reply_tools([("researcher", {"message": "journals"})], when=lambda r: r.system == "yaml coordinator" and r.turn == 1)
    s.reply_tools([("read_notes", {"topic": "journals"})], when=lambda r: r.system == "python researcher" and r.turn == 1)

    rt = jamjet.Runtime()
    try:
        researcher.as_tool().register(rt)
        compiled = jamjet._native.compile_file(str(path))
        report = json.loads(rt.native.run(compiled, json.dumps({"question": "What are journals?", "answer": ""})))
        assert report["status"] == "completed", report
        assert report["state"]["answer"] == "tool said: tool said: notes: journals are durable"
        assert notes == ["journals"]
        # The coordinator's journal has the call of the Python agent, with its answer.
        calls = [e["event"]["Call"]["call"] for e in rt.events(report["id"]) if "Call" in e["event"]]
        assert [(c["kind"], c["name"]) for c in calls] == [("model", "coordinator"), ("tool", "researcher")]
        assert calls[1]["response"] == "tool said: notes: journals are durable"
        # The agent ran as a workflow of its own, keyed by the tool call's key.
        runs = [x for x in rt.executions() if x["workflow_id"] == "agent-researcher"]
        assert len(runs) == 1 and runs[0]["key"] == f"as-tool/{report['id']}/ask/1/call/2"
    finally:
        rt.close()
